"""Transformer workloads: shapes, parameter counts and FLOPs. No hardware here.

Conventions (documented in docs/model.md and ``planner simulate --help``):

* Matmul parameters per layer: attention ``h*(q + 2*h_kv) + q*h`` (QKV and output projection,
  ``q = heads * head_dim``, ``h_kv = kv_heads * head_dim``; ``q == h`` unless ``head_dim`` is given),
  MLP ``2*h*f`` (GeLU) or ``3*h*f`` (SwiGLU), times the experts a token visits (top-k routed plus
  shared, plus the router) in an MoE layer; the ``first_dense_layers`` of an MoE model are dense. Biases and norms are counted in :attr:`TransformerSpec.num_params` but not
  in FLOPs.
* Model FLOPs per token (MFU numerator): forward ``2 * matmul_params + 4 * L * s * q`` (QK^T and AV
  over the whole sequence, not halved for causal masking: the PaLM / Megatron-LM convention) plus
  ``2 * V * h`` for the LM head; training is three times forward.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planner.errors import PlannerInputError, pydantic_message, unknown_id

MAX_LAYERS = 10_000
"""Largest num_layers accepted (the largest published models have ~130; the step graph and the
memory model grow with layers, so a typo of a billion would otherwise run without bound)."""
MAX_WIDTH = 2**24
"""Largest hidden, FFN, head and vocabulary size accepted (16.7 M; keeps FLOP counts far inside floats)."""
MAX_COUNT = 2**16
"""Largest count of heads, experts or shared experts accepted."""
MAX_SEQ_LEN = 2**24
"""Largest sequence length accepted (16.7 M tokens)."""


class TransformerSpec(BaseModel):
    """A decoder-only transformer (dense or mixture-of-experts)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: Literal["transformer"] = "transformer"
    name: str = "custom"
    num_layers: int = Field(gt=0, le=MAX_LAYERS)
    hidden_size: int = Field(gt=0, le=MAX_WIDTH)
    num_heads: int = Field(gt=0, le=MAX_COUNT)
    num_kv_heads: int | None = Field(default=None, gt=0, le=MAX_COUNT, description="GQA/MQA; default = num_heads")
    ffn_hidden_size: int | None = Field(default=None, gt=0, le=MAX_WIDTH, description="default 4 * hidden_size")
    vocab_size: int = Field(default=50257, gt=0, le=MAX_WIDTH)
    seq_len: int = Field(default=2048, gt=0, le=MAX_SEQ_LEN)
    mlp: Literal["gelu", "swiglu"] = "gelu"
    tied_embeddings: bool = False
    learned_position_embeddings: bool = Field(default=False, description="GPT-2/3 style")
    bias: bool = Field(default=False, description="linear layers carry biases (GPT-2/3)")
    num_experts: int = Field(default=1, gt=0, le=MAX_COUNT, description="1 = dense")
    top_k: int = Field(default=1, gt=0, le=MAX_COUNT)
    moe_ffn_hidden_size: int | None = Field(default=None, gt=0, le=MAX_WIDTH)
    shared_experts: int = Field(default=0, ge=0, le=MAX_COUNT)
    head_dim: int | None = Field(
        default=None, gt=0, le=MAX_WIDTH, description="per attention head; default hidden_size / num_heads (Qwen3: 128)"
    )
    moe_max_nodes_per_token: int | None = Field(
        default=None,
        gt=0,
        le=MAX_COUNT,
        description=(
            "node-limited routing: each token goes to experts on at most this many nodes, one network copy"
            " per node (DeepSeek-V3 arXiv:2412.19437 sec. 2.1.2 / 3.2.2: M = 4); none = unbounded"
        ),
    )
    first_dense_layers: int = Field(
        default=0, ge=0, description="MoE models: the first layers are dense with ffn_hidden_size (DeepSeek-V3: 3)"
    )
    kv_lora_rank: int | None = Field(
        default=None, gt=0, le=MAX_WIDTH,
        description="Multi-head Latent Attention (DeepSeek-V2/V3): K and V projected up from a latent of this "
        "width (V3: 512); head_dim is then the non-RoPE query/key head width (128); none = plain attention",
    )
    q_lora_rank: int | None = Field(
        default=None, gt=0, le=MAX_WIDTH, description="MLA: queries projected up from a latent of this width (V3: 1536)"
    )
    qk_rope_head_dim: int = Field(
        default=0, ge=0, le=MAX_WIDTH, description="MLA: the decoupled RoPE part of each query/key head (V3: 64)"
    )
    v_head_dim: int | None = Field(
        default=None, gt=0, le=MAX_WIDTH, description="MLA: width of each value head; default head_dim (V3: 128)"
    )
    source: str = ""

    @model_validator(mode="after")
    def _rules(self) -> TransformerSpec:
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads} (or give head_dim)"
            )
        if self.num_heads % self.kv_heads:
            raise ValueError(f"num_heads {self.num_heads} must be a multiple of num_kv_heads {self.kv_heads}")
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k {self.top_k} cannot exceed num_experts {self.num_experts}")
        if self.moe_max_nodes_per_token is not None and not self.is_moe:
            raise ValueError("moe_max_nodes_per_token needs a mixture-of-experts model (num_experts > 1)")
        if self.first_dense_layers and not self.is_moe:
            raise ValueError("first_dense_layers needs a mixture-of-experts model (num_experts > 1)")
        mla_only = self.q_lora_rank or self.qk_rope_head_dim or self.v_head_dim
        if mla_only and self.kv_lora_rank is None:
            raise ValueError("q_lora_rank, qk_rope_head_dim and v_head_dim describe MLA: give kv_lora_rank too")
        if self.kv_lora_rank is not None and self.kv_heads != self.num_heads:
            raise ValueError("MLA (kv_lora_rank) has one key/value head per query head: leave num_kv_heads unset")
        if self.first_dense_layers >= self.num_layers:
            raise ValueError(
                f"first_dense_layers {self.first_dense_layers} must be fewer than num_layers {self.num_layers}"
            )
        return self

    # -- derived shapes -----------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def head_size(self) -> int:
        """Width of one attention head: ``head_dim`` when given, else hidden_size / num_heads."""
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def q_hidden(self) -> int:
        """Width of the attention output (num_heads x the value head width; of the queries too but
        under MLA); equals hidden_size unless ``head_dim`` says otherwise (Qwen3-30B-A3B: 32 x 128)."""
        return self.num_heads * self.v_head_size

    @property
    def is_mla(self) -> bool:
        """Multi-head Latent Attention (DeepSeek-V2/V3, arXiv:2405.04434 sec. 2.1)."""
        return self.kv_lora_rank is not None

    @property
    def qk_head_size(self) -> int:
        """Width of one query/key head: head_size, plus MLA's decoupled RoPE part (V3: 128 + 64)."""
        return self.head_size + self.qk_rope_head_dim

    @property
    def v_head_size(self) -> int:
        """Width of one value head (MLA: v_head_dim; else head_size)."""
        return self.v_head_dim or self.head_size

    @property
    def kv_hidden(self) -> int:
        return self.kv_heads * self.head_size

    @property
    def ffn(self) -> int:
        return self.ffn_hidden_size or 4 * self.hidden_size

    @property
    def expert_ffn(self) -> int:
        return self.moe_ffn_hidden_size or self.ffn

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1

    @property
    def mlp_matrices(self) -> int:
        return 3 if self.mlp == "swiglu" else 2

    @property
    def moe_layers(self) -> int:
        """Layers with experts (all but the ``first_dense_layers`` of an MoE model; 0 if dense)."""
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    @property
    def dense_layers(self) -> int:
        """Layers with one dense MLP of ``ffn`` (all of a dense model)."""
        return self.num_layers - self.moe_layers

    def layer_is_moe(self, index: int) -> bool:
        """Whether layer ``index`` (0-based) has experts: the dense ones come first (DeepSeek-V3)."""
        return self.is_moe and index >= self.first_dense_layers

    # -- parameters ---------------------------------------------------------------------------
    @property
    def attn_params(self) -> int:
        """Q, K, V and output projections: ``h*(q + 2*kv) + q*h`` with ``q = heads * head_size``;
        under MLA the down- and up-projections of :meth:`mla_gemms` and the output projection."""
        h = self.hidden_size
        if self.is_mla:
            return sum(n * k for _, n, k in self.mla_gemms()) + self.q_hidden * h
        return h * (self.q_hidden + 2 * self.kv_hidden) + self.q_hidden * h

    def mla_gemms(self, tp: int = 1) -> list[tuple[str, int, int]]:
        """MLA's projections before attention as (label, output width, input width) on one of ``tp``
        ranks (arXiv:2405.04434 sec. 2.1; DeepSeek-V3 config.json): queries (down to q_lora_rank and
        up, or straight), the joint K/V latent with the shared RoPE key (replicated across TP, as
        Megatron-Core's MLA keeps its down-projections whole), and K/V up from the latent."""
        h, a = self.hidden_size, self.num_heads // tp
        kv = self.kv_lora_rank or 0
        q = ([("q-down", self.q_lora_rank, h), ("q-up", a * self.qk_head_size, self.q_lora_rank)]
             if self.q_lora_rank else [("q", a * self.qk_head_size, h)])  # fmt: skip
        return [*q, ("kv-down", kv + self.qk_rope_head_dim, h), ("kv-up", a * (self.head_size + self.v_head_size), kv)]

    @property
    def dense_mlp_params(self) -> int:
        """Weights of one dense MLP of width ``ffn``."""
        return self.mlp_matrices * self.hidden_size * self.ffn

    @property
    def expert_params(self) -> int:
        """Weights of one expert (routed or shared) of width ``expert_ffn``."""
        return self.mlp_matrices * self.hidden_size * self.expert_ffn

    @property
    def router_params(self) -> int:
        return self.hidden_size * self.num_experts if self.is_moe else 0

    @property
    def routed_expert_params(self) -> int:
        """Routed-expert weights of one MoE layer: the part expert parallelism shards."""
        return self.num_experts * self.expert_params if self.is_moe else 0

    @property
    def mlp_params(self) -> int:
        """All MLP weights of one MoE layer (every expert and the router), or of a dense layer."""
        if not self.is_moe:
            return self.dense_mlp_params
        return self.routed_expert_params + self.shared_experts * self.expert_params + self.router_params

    @property
    def active_mlp_params(self) -> int:
        """MLP weights one token passes through in an MoE layer (top-k routed + shared + router)."""
        if not self.is_moe:
            return self.mlp_params
        return (self.top_k + self.shared_experts) * self.expert_params + self.router_params

    @property
    def small_params_per_layer(self) -> int:
        """Norm weights and biases of one layer."""
        h = self.hidden_size
        norms = 2 * h * (2 if self.bias else 1)  # LayerNorm has a bias, RMSNorm none
        norms += (self.q_lora_rank or 0) + (self.kv_lora_rank or 0)  # MLA's latent RMSNorms
        if not self.bias:
            return norms
        f = self.ffn
        return norms + (h + 2 * self.kv_hidden) + h + (f * (self.mlp_matrices - 1)) + h

    @property
    def layer_params(self) -> int:
        """Parameters of one MoE layer (of a dense model: of one layer)."""
        return self.attn_params + self.mlp_params + self.small_params_per_layer

    @property
    def dense_layer_params(self) -> int:
        """Parameters of one dense layer."""
        return self.attn_params + self.dense_mlp_params + self.small_params_per_layer

    @property
    def all_layer_params(self) -> int:
        """Parameters of all layers, dense and MoE."""
        return self.moe_layers * self.layer_params + self.dense_layers * self.dense_layer_params

    @property
    def embedding_params(self) -> int:
        pos = self.seq_len * self.hidden_size if self.learned_position_embeddings else 0
        return self.vocab_size * self.hidden_size + pos

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tied_embeddings else self.vocab_size * self.hidden_size

    @property
    def num_params(self) -> int:
        final_norm = self.hidden_size * (2 if self.bias else 1)
        return self.all_layer_params + self.embedding_params + self.lm_head_params + final_norm

    @property
    def active_params(self) -> int:
        """Parameters one token uses, embedding included (== num_params for a dense model)."""
        moe_layer = self.attn_params + self.active_mlp_params + self.small_params_per_layer
        final_norm = self.hidden_size * (2 if self.bias else 1)
        layers = self.moe_layers * moe_layer + self.dense_layers * self.dense_layer_params
        return layers + self.embedding_params + self.lm_head_params + final_norm

    # -- FLOPs --------------------------------------------------------------------------------
    @property
    def matmul_params_per_token(self) -> int:
        """Weights of the matmuls one token passes through, LM head included."""
        mlp = self.moe_layers * self.active_mlp_params + self.dense_layers * self.dense_mlp_params
        return self.num_layers * self.attn_params + mlp + self.vocab_size * self.hidden_size

    def attention_flops_per_token(self, seq_len: int | None = None) -> float:
        """QK^T and AV, forward, whole (non-causal) sequence: ``2 * L * s * heads * (qk + v head widths)``
        (``4 * L * s * heads * head_size`` but under MLA, whose heads are 192 wide for QK^T, 128 for AV)."""
        s = seq_len or self.seq_len
        return 2.0 * self.num_layers * s * self.num_heads * (self.qk_head_size + self.v_head_size)

    def model_flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward), the MFU numerator."""
        return 3.0 * (2.0 * self.matmul_params_per_token + self.attention_flops_per_token(seq_len))


# ------------------------------------------------------------------------------------- presets

PRESETS_FILE = Path(__file__).resolve().parent.parent / "presets" / "models.yaml"


@functools.lru_cache(maxsize=1)
def _preset_data() -> dict[str, dict[str, Any]]:
    from planner.hardware import load_yaml

    data = load_yaml(PRESETS_FILE, "model presets")
    return {m["name"]: m for m in data["models"]}


def preset_names() -> list[str]:
    return sorted(_preset_data())


def transformer_from_dict(data: dict[str, Any], field: str = "model") -> TransformerSpec:
    try:
        return TransformerSpec.model_validate(data)
    except ValidationError as e:
        raise pydantic_message(field, e) from None


def load_model(ref: str, seq_len: int | None = None) -> Any:
    """A model preset by name, or a user's YAML file; ``seq_len`` overrides the preset's."""
    from planner.hardware import load_yaml

    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        data = load_yaml(Path(ref), "model")
        if not isinstance(data, dict):
            raise PlannerInputError("model", f"{ref}: expected a YAML mapping of fields")
        data.setdefault("name", Path(ref).stem)
    else:
        presets = _preset_data()
        if ref not in presets:
            raise unknown_id("model", ref, presets)
        data = dict(presets[ref])
    if seq_len is not None:
        if seq_len <= 0:
            raise PlannerInputError("seq_len", f"must be a positive integer, got {seq_len}")
        data["seq_len"] = seq_len
    return transformer_from_dict(data, field=f"model {ref}")
