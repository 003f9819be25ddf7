"""Bring your own model: published Hugging Face config.json files read as transformer specs.

Each config below is the published config.json of the named Hugging Face repository, with the fields
that do not shape the model (token ids, dropout, init range, dtype, versions) left out. The parameter
counts they must reproduce are the published ones; where a preset models the same model the spec
must match it in parameters and in model FLOPs per token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import planner
from planner.cli import main
from planner.errors import PlannerInputError
from planner.registry import load_model
from planner.search import search
from planner.transformer.hf_config import SEQ_LEN_CAP, from_hf_config, parse_json_object, supported_model_types

_LLAMA3 = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "vocab_size": 128256,
           "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": False, "attention_bias": False}  # fmt: skip

# meta-llama/Meta-Llama-3-8B
LLAMA3_8B = {**_LLAMA3, "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
             "num_hidden_layers": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192, "rope_scaling": None}  # fmt: skip
# meta-llama/Meta-Llama-3-70B
LLAMA3_70B = {**LLAMA3_8B, "hidden_size": 8192, "intermediate_size": 28672, "num_attention_heads": 64,
              "num_hidden_layers": 80}  # fmt: skip
# meta-llama/Llama-3.1-8B (rope_scaling stretches positions; no shape changes)
LLAMA31_8B = {**LLAMA3_8B, "max_position_embeddings": 131072,
              "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 8192, "rope_type": "llama3"}}  # fmt: skip
# meta-llama/Llama-2-7b-hf
LLAMA2_7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
             "intermediate_size": 11008, "num_attention_heads": 32, "num_hidden_layers": 32,
             "num_key_value_heads": 32, "max_position_embeddings": 4096, "vocab_size": 32000,
             "hidden_act": "silu", "rope_scaling": None, "tie_word_embeddings": False}  # fmt: skip
# huggyllama/llama-7b (Llama 1: no num_key_value_heads, i.e. multi-head attention)
LLAMA1_7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
             "intermediate_size": 11008, "num_attention_heads": 32, "num_hidden_layers": 32,
             "max_position_embeddings": 2048, "vocab_size": 32000, "hidden_act": "silu", "tie_word_embeddings": False}  # fmt: skip
# mistralai/Mistral-7B-v0.1
MISTRAL_7B = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
              "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
              "num_key_value_heads": 8, "max_position_embeddings": 32768, "sliding_window": 4096,
              "vocab_size": 32000, "hidden_act": "silu", "rope_theta": 10000.0, "tie_word_embeddings": False}  # fmt: skip
# mistralai/Mixtral-8x7B-v0.1
MIXTRAL_8X7B = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
                "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
                "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2,
                "max_position_embeddings": 32768, "sliding_window": None, "vocab_size": 32000,
                "router_aux_loss_coef": 0.02, "rope_theta": 1e6, "tie_word_embeddings": False}  # fmt: skip
# Qwen/Qwen2-7B
QWEN2_7B = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584,
            "intermediate_size": 18944, "num_attention_heads": 28, "num_hidden_layers": 28,
            "num_key_value_heads": 4, "max_position_embeddings": 131072, "vocab_size": 152064,
            "hidden_act": "silu", "tie_word_embeddings": False}  # fmt: skip
# Qwen/Qwen1.5-MoE-A2.7B (model_type qwen2_moe): one shared expert of 5632 = 4 experts of 1408
QWEN2_MOE = {"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "hidden_size": 2048,
             "intermediate_size": 5632, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
             "num_experts": 60, "num_experts_per_tok": 4, "num_attention_heads": 16, "num_key_value_heads": 16,
             "num_hidden_layers": 24, "max_position_embeddings": 8192, "vocab_size": 151936,
             "decoder_sparse_step": 1, "tie_word_embeddings": False}  # fmt: skip
# Qwen/Qwen3-8B
QWEN3_8B = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 4096, "head_dim": 128,
            "intermediate_size": 12288, "num_attention_heads": 32, "num_hidden_layers": 36,
            "num_key_value_heads": 8, "max_position_embeddings": 40960, "vocab_size": 151936,
            "tie_word_embeddings": False}  # fmt: skip
# Qwen/Qwen3-0.6B (queries 16 x 128 = 2048 wide on a hidden size of 1024; tied embeddings)
QWEN3_06B = {**QWEN3_8B, "hidden_size": 1024, "intermediate_size": 3072, "num_attention_heads": 16,
             "num_hidden_layers": 28, "tie_word_embeddings": True}  # fmt: skip
# Qwen/Qwen3-30B-A3B
QWEN3_30B_A3B = {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 2048,
                 "head_dim": 128, "intermediate_size": 6144, "moe_intermediate_size": 768, "num_experts": 128,
                 "num_experts_per_tok": 8, "num_attention_heads": 32, "num_key_value_heads": 4,
                 "num_hidden_layers": 48, "max_position_embeddings": 40960, "vocab_size": 151936,
                 "decoder_sparse_step": 1, "mlp_only_layers": [], "tie_word_embeddings": False}  # fmt: skip
# deepseek-ai/DeepSeek-V3
DEEPSEEK_V3 = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 7168,
               "intermediate_size": 18432, "moe_intermediate_size": 2048, "n_routed_experts": 256,
               "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3, "moe_layer_freq": 1,
               "num_attention_heads": 128, "num_key_value_heads": 128, "num_hidden_layers": 61,
               "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
               "v_head_dim": 128, "max_position_embeddings": 163840, "vocab_size": 129280,
               "num_nextn_predict_layers": 1, "tie_word_embeddings": False}  # fmt: skip
# deepseek-ai/DeepSeek-V2-Lite (no query compression: q_lora_rank null)
DEEPSEEK_V2_LITE = {"architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "hidden_size": 2048,
                    "intermediate_size": 10944, "moe_intermediate_size": 1408, "n_routed_experts": 64,
                    "n_shared_experts": 2, "num_experts_per_tok": 6, "first_k_dense_replace": 1,
                    "moe_layer_freq": 1, "num_attention_heads": 16, "num_key_value_heads": 16,
                    "num_hidden_layers": 27, "q_lora_rank": None, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
                    "qk_rope_head_dim": 64, "v_head_dim": 128, "max_position_embeddings": 163840,
                    "vocab_size": 102400, "tie_word_embeddings": False}  # fmt: skip
# openai-community/gpt2
GPT2 = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
        "n_positions": 1024, "n_ctx": 1024, "n_inner": None, "vocab_size": 50257, "activation_function": "gelu_new"}  # fmt: skip
# EleutherAI/pythia-1b
PYTHIA_1B = {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "hidden_size": 2048,
             "intermediate_size": 8192, "num_attention_heads": 8, "num_hidden_layers": 16,
             "max_position_embeddings": 2048, "vocab_size": 50304, "hidden_act": "gelu", "rotary_pct": 0.25,
             "use_parallel_residual": True, "tie_word_embeddings": False}  # fmt: skip
# google/gemma-7b (GeGLU MLP, 16 heads of 256 on a hidden size of 3072, tied embeddings by default)
GEMMA_7B = {"architectures": ["GemmaForCausalLM"], "model_type": "gemma", "hidden_size": 3072, "head_dim": 256,
            "intermediate_size": 24576, "num_attention_heads": 16, "num_key_value_heads": 16,
            "num_hidden_layers": 28, "max_position_embeddings": 8192, "vocab_size": 256000, "hidden_act": "gelu"}  # fmt: skip
# google/gemma-2-9b
GEMMA2_9B = {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 3584, "head_dim": 256,
             "intermediate_size": 14336, "num_attention_heads": 16, "num_key_value_heads": 8,
             "num_hidden_layers": 42, "max_position_embeddings": 8192, "vocab_size": 256000,
             "hidden_activation": "gelu_pytorch_tanh"}  # fmt: skip

# (config, published parameters, tolerance, source of the figure)
PUBLISHED = [
    (LLAMA3_8B, 8.03e9, 0.005),  # model card: 8.03B
    (LLAMA2_7B, 6.74e9, 0.005),  # Llama 2 paper / model card: 6.74B
    (LLAMA1_7B, 6.74e9, 0.005),  # Touvron et al. 2023: 6.7B (same shapes as Llama 2 7B)
    (MISTRAL_7B, 7.24e9, 0.005),  # Mistral 7B: 7.24B
    (MIXTRAL_8X7B, 46.7e9, 0.005),  # Mixtral of Experts: 46.7B
    (QWEN2_7B, 7.62e9, 0.01),  # Qwen2 report: 7.6B
    (QWEN2_MOE, 14.3e9, 0.01),  # Qwen1.5-MoE-A2.7B model card: 14.3B
    (QWEN3_8B, 8.2e9, 0.01),  # Qwen3 report Table 1: 8.2B
    (QWEN3_06B, 0.6e9, 0.01),  # Qwen3 report Table 1: 0.6B (0.44B without the embedding)
    (QWEN3_30B_A3B, 30.5e9, 0.01),  # Qwen3 report Table 2: 30.5B
    (DEEPSEEK_V3, 671e9, 0.01),  # DeepSeek-V3 report: 671B (without the 11.5B MTP module)
    (DEEPSEEK_V2_LITE, 15.7e9, 0.01),  # DeepSeek-V2 report: Lite has 15.7B
    (GPT2, 124_439_808, 1e-9),  # transformers' GPT2LMHeadModel, tied: 124,439,808 exactly
    (PYTHIA_1B, 1_011_781_632, 1e-9),  # Pythia paper Table 1: 1,011,781,632 exactly
    (GEMMA_7B, 8.54e9, 0.005),  # Gemma report Table 2: 8.54B
    (GEMMA2_9B, 9.24e9, 0.005),  # Gemma 2 report: 9.24B
]


@pytest.mark.parametrize(("config", "published", "rel"), PUBLISHED, ids=lambda p: p.get("model_type", "") if isinstance(p, dict) else "")  # fmt: skip
def test_each_family_gives_its_published_parameter_count(config: dict[str, Any], published: float, rel: float) -> None:
    spec = from_hf_config(config)
    assert spec.num_params == pytest.approx(published, rel=rel), spec.num_params / 1e9


# (config, preset it must equal)
PARITY = [
    (LLAMA3_8B, "llama3-8b"),
    (LLAMA3_70B, "llama3-70b"),
    (LLAMA31_8B, "llama3.1-8b"),
    (LLAMA2_7B, "llama2-7b"),
    (MIXTRAL_8X7B, "mixtral-8x7b"),
    (QWEN3_30B_A3B, "qwen3-30b-a3b"),
    (DEEPSEEK_V3, "deepseek-v3"),
]


@pytest.mark.parametrize(("config", "preset"), PARITY, ids=[p for _, p in PARITY])
def test_config_matches_the_preset_of_the_same_model(config: dict[str, Any], preset: str) -> None:
    """Same parameters (total and active) and model FLOPs per token at the preset's sequence length."""
    ours, theirs = from_hf_config(config), load_model(preset)
    assert ours.num_params == pytest.approx(theirs.num_params, rel=0.005)
    assert ours.active_params == pytest.approx(theirs.active_params, rel=0.005)
    s = theirs.seq_len
    assert ours.model_flops_per_token(s) == pytest.approx(theirs.model_flops_per_token(s), rel=0.005)


def test_sequence_length_is_the_model_limit_capped_at_8192() -> None:
    assert from_hf_config(LLAMA2_7B).seq_len == 4096  # limit below the cap
    assert from_hf_config(LLAMA31_8B).seq_len == SEQ_LEN_CAP == 8192  # 131072 is a limit, not a training length
    assert from_hf_config(GPT2).seq_len == 1024  # n_positions
    assert from_hf_config(LLAMA31_8B, seq_len=131072).seq_len == 131072


def test_shapes_that_differ_from_the_defaults() -> None:
    """The fields that move FLOPs without showing in a parameter total."""
    q3 = from_hf_config(QWEN3_06B)
    assert (q3.q_hidden, q3.tied_embeddings) == (2048, True)
    gemma = from_hf_config(GEMMA_7B)
    assert (gemma.mlp, gemma.tied_embeddings, gemma.q_hidden) == ("swiglu", True, 4096)
    gpt2 = from_hf_config(GPT2)
    assert (gpt2.mlp, gpt2.ffn, gpt2.learned_position_embeddings, gpt2.bias) == ("gelu", 3072, True, True)
    qmoe = from_hf_config(QWEN2_MOE)
    assert (qmoe.num_experts, qmoe.top_k, qmoe.shared_experts, qmoe.expert_ffn) == (60, 4, 4, 1408)
    assert qmoe.active_params == pytest.approx(2.7e9, rel=0.01)  # model card: 2.7B activated
    lite = from_hf_config(DEEPSEEK_V2_LITE)
    assert (lite.first_dense_layers, lite.top_k, lite.shared_experts, lite.q_lora_rank) == (1, 6, 2, None)
    # DeepSeek-V2 report: Lite activates 2.4B; DeepSeek counts the output head but not the input embedding
    assert lite.active_params - lite.vocab_size * lite.hidden_size == pytest.approx(2.4e9, rel=0.03)
    v3 = from_hf_config(DEEPSEEK_V3)
    # MLA as it runs: queries/keys 128 + 64 wide, values 128, from latents of 1536 (q) and 512 (k/v)
    assert (v3.qk_head_size, v3.v_head_size, v3.q_lora_rank, v3.kv_lora_rank) == (192, 128, 1536, 512)
    assert v3.attn_params == 187_105_280 and "MLA" in v3.source  # 187.1M weights per layer (config.json shapes)


def test_dense_layers_of_a_sparse_step_become_first_dense_layers() -> None:
    every_other = from_hf_config({**QWEN3_30B_A3B, "decoder_sparse_step": 2})
    assert every_other.first_dense_layers == 24
    listed = from_hf_config({**QWEN3_30B_A3B, "mlp_only_layers": [0, 1, 47]})
    assert listed.first_dense_layers == 3
    assert from_hf_config({**QWEN3_30B_A3B, "decoder_sparse_step": 100}).is_moe is False


def test_architectures_stand_in_for_a_missing_model_type() -> None:
    config = {k: v for k, v in MIXTRAL_8X7B.items() if k != "model_type"}
    assert from_hf_config(config).num_experts == 8


def test_names() -> None:
    assert from_hf_config(LLAMA3_8B, name="mine").name == "mine"
    assert from_hf_config({**LLAMA3_8B, "_name_or_path": "meta-llama/Meta-Llama-3-8B"}).name == "Meta-Llama-3-8B"
    assert from_hf_config(LLAMA3_8B).name == "hf-llama"


def write(tmp_path: Path, data: Any, name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return str(path)


def test_a_json_file_goes_through_the_registry_and_simulate(tmp_path: Path) -> None:
    path = write(tmp_path, LLAMA3_8B)
    spec = load_model(path, seq_len=2048)
    assert spec.seq_len == 2048 and spec.num_params == load_model("llama3-8b").num_params
    assert load_model(write(tmp_path, MIXTRAL_8X7B, "mixtral.json")).name == "mixtral"
    r = planner.simulate(path, gpus=8)
    assert r.model_flops_per_step == pytest.approx(planner.simulate("llama3-8b", gpus=8).model_flops_per_step)


def test_search_takes_a_config_json(tmp_path: Path) -> None:
    """The Python search API reads the file through the registry too (GPT-2 on 8 GPUs: a few seconds)."""
    r = search(write(tmp_path, GPT2, "gpt2.json"), gpus=8, min_gpus=8)
    assert r.results and r.model == "gpt2"


def test_a_planner_model_written_as_json_still_loads(tmp_path: Path) -> None:
    path = write(tmp_path, {"num_layers": 2, "hidden_size": 256, "num_heads": 4}, "tiny.json")
    assert load_model(path).num_layers == 2


MISSING = {k: v for k, v in LLAMA3_8B.items() if k not in ("hidden_size", "intermediate_size")}

BAD_CONFIGS = [
    ({**LLAMA3_8B, "model_type": "bert"}, ["model_type 'bert' is not supported", "llama"]),
    (MISSING, ["model_type 'llama' lacks hidden_size, intermediate_size"]),
    ({**DEEPSEEK_V3, "kv_lora_rank": None}, ["deepseek_v3", "kv_lora_rank"]),
    ({**LLAMA3_8B, "hidden_size": "4096x"}, ["not a whole number", "hidden_size='4096x'"]),
    ({"hidden_size": 5}, ["no model_type or architectures"]),
]


@pytest.mark.parametrize(("config", "words"), BAD_CONFIGS)
def test_unusable_configs_get_one_line_naming_the_problem(config: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(PlannerInputError) as e:
        from_hf_config(config)
    assert all(w in str(e.value) for w in words), str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\xff\xfe{\x00", "not UTF-8"),
        (b'{"model_type": "llama",', "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (json.dumps({**LLAMA3_8B, "model_type": "t5"}).encode(), "model_type 't5' is not supported"),
    ],
)
def test_cli_bad_config_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, words: str
) -> None:
    path = write(tmp_path, content)
    rc = main(["simulate", "--model", path, "--gpus", "8"])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1


def test_uploaded_bytes_parse_and_supported_types_are_listed() -> None:
    assert parse_json_object(json.dumps(GPT2).encode("utf-8-sig"))["n_embd"] == 768  # a BOM is fine
    assert {"llama", "mixtral", "qwen3_moe", "deepseek_v3", "gpt2", "gpt_neox", "gemma"} <= set(supported_model_types())
