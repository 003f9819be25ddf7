"""Bring your own model: a Hugging Face ``config.json`` read as a :class:`TransformerSpec`.

Supported ``model_type`` values (or, when it is missing, the ``architectures`` class names): Llama
1/2/3/3.1 (``rope_scaling`` changes no shape), Mistral, Mixtral, Qwen2, Qwen2-MoE, Qwen3, Qwen3-MoE,
DeepSeek-V2/V3, GPT-2, GPT-NeoX (Pythia), Gemma and Gemma 2. Mapping rules, stated once here and in
docs/model.md:

* **Sequence length**: ``max_position_embeddings`` (GPT-2: ``n_positions``) is the longest sequence
  the model accepts, not the length it is trained at; the spec takes ``min(that, 8192)``
  (:data:`SEQ_LEN_CAP`, the longest pretraining length of the presets that are not long-context
  variants: Llama 3's 8192), or 8192 when the config gives none. ``seq_len`` (``--seq-len``) overrides.
* **MLP**: every gated MLP (SwiGLU, and Gemma's GeGLU) is ``mlp: swiglu`` (three matrices); GPT-2
  and GPT-NeoX have a plain GeLU MLP (two matrices, 4h unless ``n_inner``/``intermediate_size``).
* **MoE**: routed experts, top-k and the expert width map one to one; Qwen2-MoE's shared expert of
  ``shared_expert_intermediate_size`` counts as that many expert widths; the dense layers of
  DeepSeek (``first_k_dense_replace``, ``moe_layer_freq``) and Qwen-MoE (``decoder_sparse_step``,
  ``mlp_only_layers``) become ``first_dense_layers`` (totals exact; their position is taken to be first).
* **DeepSeek MLA** is read as such (``kv_lora_rank``, ``q_lora_rank``, ``qk_rope_head_dim``,
  ``v_head_dim``, ``head_dim`` = ``qk_nope_head_dim``): its down/up-projection GEMMs and its
  192-wide QK^T / 128-wide AV (V3) are priced as they run.
* Left out (a fraction of a per cent of the parameters, none of the FLOPs): Qwen2's QKV biases, the
  q/k norms of Qwen3, Gemma 2's extra norms, DeepSeek's multi-token-prediction module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from planner.errors import PlannerInputError
from planner.transformer.spec import TransformerSpec, transformer_from_dict

SEQ_LEN_CAP = 8192
"""Longest sequence a config.json model gets unless ``--seq-len`` says otherwise (see the module doc)."""

_ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "MixtralForCausalLM": "mixtral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen2MoeForCausalLM": "qwen2_moe",
    "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3_moe",
    "DeepseekV2ForCausalLM": "deepseek_v2",
    "DeepseekV3ForCausalLM": "deepseek_v3",
    "GPT2LMHeadModel": "gpt2",
    "GPTNeoXForCausalLM": "gpt_neox",
    "GemmaForCausalLM": "gemma",
    "Gemma2ForCausalLM": "gemma2",
}
"""``architectures[0]`` -> model_type, for configs that lack ``model_type``."""

_REQUIRED = object()


class _Fields:
    """Reads a config's fields, collecting every missing required one so one message names them all."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.missing: list[str] = []
        self.bad: list[str] = []

    def get(self, key: str, default: Any = _REQUIRED) -> Any:
        """A whole number >= 0 (the shapes are all counts); a missing or bad one is noted and read as 1
        so the caller can go on: :meth:`check` raises before the placeholder is used."""
        value = self.config.get(key)
        if value is None:
            if default is _REQUIRED:
                self.missing.append(key)
                return 1
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.bad.append(f"{key}={value!r}")
            return 1
        return value

    def flag(self, key: str, default: bool) -> bool:
        """A true/false field (``tie_word_embeddings``, ``attention_bias``)."""
        value = self.config.get(key)
        return default if value is None else bool(value)

    def check(self, where: str, model_type: str) -> None:
        """One line naming every missing field, then every field that is not a whole number."""
        if self.missing:
            raise PlannerInputError("model", f"{where}: model_type '{model_type}' lacks {', '.join(self.missing)}")
        if self.bad:
            raise PlannerInputError(
                "model", f"{where}: model_type '{model_type}': not a whole number >= 0: {', '.join(self.bad)}"
            )


def supported_model_types() -> list[str]:
    """The ``model_type`` values :func:`from_hf_config` reads."""
    return sorted(_BUILDERS)


def is_hf_config(data: dict[str, Any]) -> bool:
    """Whether a JSON object is a Hugging Face config (it names a model type or architectures)
    rather than a planner model file written as JSON (which has ``num_layers`` or ``kind``)."""
    if "model_type" in data or "architectures" in data:
        return True
    return not ("num_layers" in data or "kind" in data)


def read_json_object(path: Path | str, field: str = "model") -> dict[str, Any]:
    """A JSON file's top-level object; a missing, non-UTF-8, non-JSON or non-object file is one line."""
    p = Path(path)
    if not p.exists():
        raise PlannerInputError(field, f"file not found: {p}")
    if p.is_dir():
        raise PlannerInputError(field, f"{p} is a folder, not a config.json file")
    return parse_json_object(p.read_bytes(), str(p), field)


def parse_json_object(raw: bytes | str, where: str = "config.json", field: str = "model") -> dict[str, Any]:
    """The JSON object in ``raw`` (an uploaded file's bytes, say), with one clear line when it is not one."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise PlannerInputError(field, f"{where}: not UTF-8 text (byte {e.start}); expected a JSON file") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise PlannerInputError(
            field, f"{where}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    if not isinstance(data, dict):
        raise PlannerInputError(field, f"{where}: expected a JSON object of config fields, got a {type(data).__name__}")
    return data


def model_type_of(config: dict[str, Any], where: str = "config.json") -> str:
    """The config's ``model_type``, else the one its ``architectures`` name; an unknown one is an error."""
    model_type = config.get("model_type")
    archs = config.get("architectures") or []
    if not model_type and isinstance(archs, list) and archs:
        model_type = _ARCHITECTURES.get(str(archs[0]), str(archs[0]))
    if not model_type:
        raise PlannerInputError("model", f"{where}: no model_type or architectures field; is this a config.json?")
    model_type = str(model_type)
    if model_type not in _BUILDERS:
        supported = ", ".join(supported_model_types())
        raise PlannerInputError(
            "model", f"{where}: model_type '{model_type}' is not supported (supported: {supported})"
        )
    return model_type


def from_hf_config(
    config: dict[str, Any] | str | Path, name: str | None = None, seq_len: int | None = None
) -> TransformerSpec:
    """A :class:`TransformerSpec` from a Hugging Face config (a dict, or the path of a config.json).

    ``name`` names the model (default: the last part of the config's ``_name_or_path``, else the
    file name, else ``hf-<model_type>``); ``seq_len`` overrides the rule in the module doc."""
    where = "config.json"
    stem = ""
    if not isinstance(config, dict):
        where = str(config)
        stem = Path(config).stem
        config = read_json_object(config)
    model_type = model_type_of(config, where)
    f = _Fields(config)
    fields = _BUILDERS[model_type](f)
    position_key = "n_positions" if model_type == "gpt2" else "max_position_embeddings"
    max_positions = f.get(position_key, None) or f.get("max_sequence_length", SEQ_LEN_CAP)  # Llama 1 conversions
    f.check(where, model_type)
    if seq_len is not None and seq_len <= 0:
        raise PlannerInputError("seq_len", f"must be a positive integer, got {seq_len}")
    fields["seq_len"] = seq_len or min(max_positions, SEQ_LEN_CAP) or SEQ_LEN_CAP
    fields["name"] = name or _default_name(config, stem, model_type)
    fields["source"] = f"Hugging Face config.json ({model_type})" + fields.pop("note", "")
    return transformer_from_dict(fields, field=f"model {where}")


def _default_name(config: dict[str, Any], stem: str, model_type: str) -> str:
    from_hub = str(config.get("_name_or_path") or "").rstrip("/").replace("\\", "/").split("/")[-1]
    if from_hub:
        return from_hub
    if stem and stem != "config":
        return stem
    return f"hf-{model_type}"


# ---------------------------------------------------------------------------------- families


def _llama_like(f: _Fields, tied_default: bool = False) -> dict[str, Any]:
    """The decoder shape Llama, Mistral, Qwen and Gemma configs share (gated MLP, GQA)."""
    fields: dict[str, Any] = {
        "num_layers": f.get("num_hidden_layers"),
        "hidden_size": f.get("hidden_size"),
        "num_heads": f.get("num_attention_heads"),
        "num_kv_heads": f.get("num_key_value_heads", None),
        "ffn_hidden_size": f.get("intermediate_size"),
        "vocab_size": f.get("vocab_size"),
        "mlp": "swiglu",
        "tied_embeddings": f.flag("tie_word_embeddings", tied_default),
    }
    head_dim = f.get("head_dim", None)
    if head_dim is not None:
        fields["head_dim"] = head_dim
    return fields


def _gemma(f: _Fields) -> dict[str, Any]:
    return _llama_like(f, tied_default=True)


def _mixtral(f: _Fields) -> dict[str, Any]:
    fields = _llama_like(f)
    fields["num_experts"] = f.get("num_local_experts")
    fields["top_k"] = f.get("num_experts_per_tok")
    return fields


def _qwen_moe(f: _Fields) -> dict[str, Any]:
    """Qwen2-MoE and Qwen3-MoE: experts of ``moe_intermediate_size``; Qwen2-MoE's one shared expert is
    ``shared_expert_intermediate_size`` wide, counted in expert widths (57B-A14B: 20480 = 8 x 2560)."""
    fields = _llama_like(f)
    layers = fields["num_layers"]
    fields["num_experts"] = f.get("num_experts")
    fields["top_k"] = f.get("num_experts_per_tok")
    expert_ffn = f.get("moe_intermediate_size")
    fields["moe_ffn_hidden_size"] = expert_ffn
    shared = f.get("shared_expert_intermediate_size", 0)
    fields["shared_experts"] = round(shared / expert_ffn) if expert_ffn > 0 else 0
    step = f.get("decoder_sparse_step", 1) or 1
    only = f.config.get("mlp_only_layers") or []
    dense_only = {i for i in only if isinstance(i, int)} if isinstance(only, list) else set()
    dense = sum(1 for i in range(layers) if i in dense_only or (i + 1) % step)
    return _with_dense_layers(fields, dense, layers)


def _deepseek(f: _Fields) -> dict[str, Any]:
    """DeepSeek-V2/V3: Multi-head Latent Attention (one K/V head per query head), DeepSeekMoE with
    shared experts."""
    fields = _llama_like(f)
    fields.pop("head_dim", None)
    fields.pop("num_kv_heads", None)
    q_rank = f.get("q_lora_rank", 0)
    kv_rank = f.get("kv_lora_rank")
    nope, rope, v_dim = (f.get(k) for k in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"))
    fields.update(head_dim=nope, qk_rope_head_dim=rope, v_head_dim=v_dim, kv_lora_rank=kv_rank)
    if q_rank:
        fields["q_lora_rank"] = q_rank
    fields["note"] = f"; MLA: kv latent {kv_rank}, q latent {q_rank or 'none'}, heads {nope}+{rope} (qk) / {v_dim} (v)"
    routed = f.get("n_routed_experts", 0)
    if not routed:
        return fields
    layers = fields["num_layers"]
    fields["num_experts"] = routed
    fields["top_k"] = f.get("num_experts_per_tok")
    fields["moe_ffn_hidden_size"] = f.get("moe_intermediate_size")
    fields["shared_experts"] = f.get("n_shared_experts", 0)
    groups, top_groups = f.get("n_group", 1) or 1, f.get("topk_group", 0) or 0
    if 0 < top_groups < groups:  # group-limited routing: DeepSeek-V3 places one group per node (sec. 2.1.2)
        fields["moe_max_nodes_per_token"] = top_groups
    first_dense = f.get("first_k_dense_replace", 0)
    freq = f.get("moe_layer_freq", 1) or 1
    dense = sum(1 for i in range(layers) if i < first_dense or i % freq)
    return _with_dense_layers(fields, dense, layers)


def _with_dense_layers(fields: dict[str, Any], dense: int, layers: int) -> dict[str, Any]:
    """An MoE model with ``dense`` dense layers; all dense means a dense model (no experts)."""
    if dense >= layers:
        for key in ("num_experts", "top_k", "moe_ffn_hidden_size", "shared_experts", "moe_max_nodes_per_token"):
            fields.pop(key, None)
    elif dense:
        fields["first_dense_layers"] = dense
    return fields


def _gpt2(f: _Fields) -> dict[str, Any]:
    """GPT-2: learned positions, biases, LayerNorm, GeLU MLP of ``n_inner`` (4h), tied embeddings."""
    h = f.get("n_embd")
    return {
        "num_layers": f.get("n_layer"),
        "hidden_size": h,
        "num_heads": f.get("n_head"),
        "ffn_hidden_size": f.get("n_inner", None),
        "vocab_size": f.get("vocab_size"),
        "mlp": "gelu",
        "tied_embeddings": f.flag("tie_word_embeddings", True),
        "learned_position_embeddings": True,
        "bias": True,
    }


def _gpt_neox(f: _Fields) -> dict[str, Any]:
    """GPT-NeoX / Pythia: rotary positions, biases, LayerNorm, GeLU MLP, untied embeddings."""
    return {
        "num_layers": f.get("num_hidden_layers"),
        "hidden_size": f.get("hidden_size"),
        "num_heads": f.get("num_attention_heads"),
        "ffn_hidden_size": f.get("intermediate_size"),
        "vocab_size": f.get("vocab_size"),
        "mlp": "gelu",
        "tied_embeddings": f.flag("tie_word_embeddings", False),
        "bias": f.flag("attention_bias", True),
    }


_BUILDERS = {
    "llama": _llama_like,
    "mistral": _llama_like,
    "qwen2": _llama_like,
    "qwen3": _llama_like,
    "gemma": _gemma,
    "gemma2": _gemma,
    "mixtral": _mixtral,
    "qwen2_moe": _qwen_moe,
    "qwen3_moe": _qwen_moe,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
}
"""model_type -> the function that maps its config's fields onto TransformerSpec fields."""
