"""Parameter and FLOP counts of the model presets against published figures, and the rules a
user's model YAML must obey."""

from __future__ import annotations

import pytest

import planner
from planner.errors import PlannerInputError
from planner.transformer.spec import load_model, preset_names

# (preset, published total parameters, source)
PUBLISHED_PARAMS = [
    # Brown et al. say 175B; with Megatron's vocabulary padded to 51200 it is 174.6B
    # (Narayanan et al. SC'21, arXiv:2104.04473, Table 2).
    ("gpt3-175b", 174.6e9),
    # Llama 3 Herd (arXiv:2407.21783) / the released config.json files (HF model cards).
    ("llama3-8b", 8.03e9),
    ("llama3-70b", 70.6e9),
    ("llama3-405b", 405.8e9),
    # Mixtral of Experts (arXiv:2401.04088): 46.7B parameters in total.
    ("mixtral-8x7b", 46.7e9),
    # DeepSeek-V3 Technical Report (arXiv:2412.19437): 671B without the MTP module (MLA approximated,
    # see the preset's note); Qwen3 Technical Report (arXiv:2505.09388) Table 2: 30.5B.
    ("deepseek-v3", 671e9),
    ("qwen3-30b-a3b", 30.5e9),
    ("llama3.1-8b", 8.03e9),
]


@pytest.mark.parametrize(("name", "published"), PUBLISHED_PARAMS)
def test_num_params_matches_published(name: str, published: float) -> None:
    m = load_model(name)
    assert m.num_params == pytest.approx(published, rel=0.01), m.num_params / 1e9


def test_gpt3_175b_is_175b_within_one_percent() -> None:
    assert load_model("gpt3-175b").num_params == pytest.approx(175e9, rel=0.01)


def test_mixtral_active_params() -> None:
    """Mixtral 8x7B: 12.9B parameters active per token (2 of 8 experts), 46.7B in total."""
    m = load_model("mixtral-8x7b")
    assert m.is_moe
    assert m.active_params == pytest.approx(12.9e9, rel=0.01), m.active_params / 1e9
    assert m.active_params < m.num_params


# GPT-3 shapes of Narayanan et al. SC'21 Table 1 with the parameter counts printed there.
MEGATRON_TABLE_1 = [
    ("gpt3-1.7b", 1.7e9),
    ("gpt3-3.6b", 3.6e9),
    ("gpt3-7.5b", 7.5e9),
    ("gpt3-18b", 18.4e9),
    ("gpt3-39b", 39.1e9),
    ("gpt3-76b", 76.1e9),
    ("gpt3-145b", 145.6e9),
    ("gpt3-310b", 310.1e9),
    ("gpt3-530b", 529.6e9),
    ("gpt3-1t", 1008e9),
]


@pytest.mark.parametrize(("name", "published"), MEGATRON_TABLE_1)
def test_megatron_table_1_params(name: str, published: float) -> None:
    # Table 1 rounds to 1-2 significant digits for the small models: allow 3 %.
    assert load_model(name).num_params == pytest.approx(published, rel=0.03)


@pytest.mark.parametrize("name", ["gpt3-175b", "llama3-8b", "llama3-70b", "llama2-7b"])
def test_active_params_equals_num_params_for_dense(name: str) -> None:
    m = load_model(name)
    assert not m.is_moe
    assert m.active_params == m.num_params


@pytest.mark.parametrize("name", ["gpt3-175b", "llama3-8b", "llama3-70b", "llama2-7b"])
def test_active_params_close_to_num_params_for_dense(name: str) -> None:
    m = load_model(name)
    assert m.active_params == pytest.approx(m.num_params, rel=1e-6)


# ------------------------------------------------------------------------------------- FLOPs


@pytest.mark.parametrize("name", preset_names())
def test_model_flops_definition(name: str) -> None:
    """3 x (2 x matmul params incl. LM head + 4 x L x s x heads x head_dim), the README's definition
    (heads x head_dim is the hidden size unless a model gives head_dim, as Qwen3 does; under MLA,
    DeepSeek-V3's, QK^T runs over 192-wide heads and AV over 128-wide: 2 x (192 + 128) for 4 x head_dim)."""
    m = load_model(name)
    L, s = m.num_layers, m.seq_len
    widths = 2 * (192 + 128) if name == "deepseek-v3" else 4 * m.head_size
    expected = 3 * (2 * m.matmul_params_per_token + L * s * m.num_heads * widths)
    assert m.model_flops_per_token() == pytest.approx(expected, rel=1e-12)


def test_matmul_params_per_token_gpt3() -> None:
    """GPT shape: 12 h^2 per layer (QKV 3h^2, projection h^2, MLP 8h^2) plus the V x h LM head."""
    m = load_model("gpt3-175b")
    L, h, V = m.num_layers, m.hidden_size, m.vocab_size
    assert m.matmul_params_per_token == 12 * L * h * h + V * h


def test_gpt3_175b_flops_match_megatron_eq3() -> None:
    """Narayanan et al. SC'21 eq. (3) without recomputation: 72 B s L h^2 (1 + s/6h + V/12Lh)
    FLOPs per iteration, i.e. 72 L h^2 (...) per token."""
    m = load_model("gpt3-175b")
    L, h, s, V = m.num_layers, m.hidden_size, m.seq_len, m.vocab_size
    megatron = 72 * L * h**2 * (1 + s / (6 * h) + V / (12 * L * h))
    assert m.model_flops_per_token() == pytest.approx(megatron, rel=0.005)


def test_gpt3_175b_flops_near_6n() -> None:
    """Sanity: 6 N per token plus attention; within 10 % of 6 x 174.6e9 at s = 2048."""
    m = load_model("gpt3-175b")
    assert m.model_flops_per_token() == pytest.approx(6 * m.num_params, rel=0.10)


def test_moe_flops_use_active_experts() -> None:
    m = load_model("mixtral-8x7b")
    # 2 of 8 experts: FLOPs close to 6 x active params, far below 6 x total.
    assert m.model_flops_per_token() < 6 * m.num_params / 2
    assert m.model_flops_per_token() > 6 * m.active_params


def test_seq_len_override() -> None:
    m = load_model("llama3-8b", seq_len=4096)
    assert m.seq_len == 4096
    assert m.model_flops_per_token() < load_model("llama3-8b").model_flops_per_token()


# ------------------------------------------------------------------------------- bad input


def _write(tmp_path, text: str):
    p = tmp_path / "m.yaml"
    p.write_text(text)
    return str(p)


def test_negative_num_layers(tmp_path) -> None:
    path = _write(tmp_path, "num_layers: -3\nhidden_size: 1024\nnum_heads: 16\n")
    with pytest.raises(PlannerInputError) as ei:
        load_model(path)
    assert "num_layers" in ei.value.field
    assert "num_layers" in str(ei.value)


def test_hidden_not_divisible_by_heads(tmp_path) -> None:
    path = _write(tmp_path, "num_layers: 4\nhidden_size: 1000\nnum_heads: 16\n")
    with pytest.raises(PlannerInputError) as ei:
        load_model(path)
    msg = str(ei.value)
    assert "hidden_size" in msg and "num_heads" in msg


def test_heads_not_multiple_of_kv_heads(tmp_path) -> None:
    path = _write(tmp_path, "num_layers: 4\nhidden_size: 1024\nnum_heads: 16\nnum_kv_heads: 3\n")
    with pytest.raises(PlannerInputError, match="num_kv_heads"):
        load_model(path)


def test_unknown_field(tmp_path) -> None:
    path = _write(tmp_path, "num_layers: 4\nhidden_size: 1024\nnum_heads: 16\nlayers: 3\n")
    with pytest.raises(PlannerInputError) as ei:
        load_model(path)
    assert "layers" in ei.value.field


def test_malformed_yaml(tmp_path) -> None:
    path = _write(tmp_path, "num_layers: [oops\n")
    with pytest.raises(PlannerInputError) as ei:
        load_model(path)
    assert ei.value.field == "model"


def test_yaml_not_a_mapping(tmp_path) -> None:
    path = _write(tmp_path, "- 1\n- 2\n")
    with pytest.raises(PlannerInputError, match="mapping"):
        load_model(path)


def test_missing_file() -> None:
    with pytest.raises(PlannerInputError, match="not found"):
        load_model("/nonexistent/model.yaml")


def test_unknown_preset_suggests_close_id() -> None:
    with pytest.raises(PlannerInputError) as ei:
        load_model("gpt3-175bb")
    assert ei.value.field == "model"
    assert "gpt3-175b" in str(ei.value)


def test_bad_seq_len() -> None:
    with pytest.raises(PlannerInputError) as ei:
        load_model("gpt3-1.7b", seq_len=-1)
    assert ei.value.field == "seq_len"


def test_valid_yaml_loads(tmp_path) -> None:
    path = _write(tmp_path, "num_layers: 4\nhidden_size: 1024\nnum_heads: 16\n")
    m = load_model(path)
    assert m.name == "m"
    assert m.ffn == 4096 and m.kv_heads == 16


@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_hfu_counts_recomputed_flops(recompute: str) -> None:
    """HFU / MFU: with full recomputation it is Megatron's eq. (3) (96 B s L h^2 (1 + s/6h + V/16Lh),
    every layer's forward run twice, the LM head once) over the no-recompute form (72 ... V/12Lh);
    selective recomputation adds the forward attention FLOPs (4 L s h per token) only."""
    m = load_model("gpt3-1.7b")
    L, h, s, V = m.num_layers, m.hidden_size, m.seq_len, m.vocab_size
    r = planner.simulate(
        "gpt3-1.7b", accelerator="a100-sxm-80gb", gpus=8, tp=2, sequence_parallel=True, recompute=recompute
    )
    expected = {
        "none": 1.0,
        "selective": 1 + 4 * L * s * h / m.model_flops_per_token(),
        "full": (96 * (1 + s / (6 * h) + V / (16 * L * h))) / (72 * (1 + s / (6 * h) + V / (12 * L * h))),
    }[recompute]
    assert r.hfu / r.mfu == pytest.approx(expected, rel=1e-9)
