"""Activation memory against Korthikanti et al. 2022 (arXiv:2205.05198) sec. 4, and the ordering
of peak memory over recomputation and ZeRO stages."""

from __future__ import annotations

import pytest

import planner
from planner.simulate import make_strategy
from planner.transformer.memory import in_flight, layer_activation_bytes
from planner.transformer.schedules import SCHEDULES
from planner.transformer.spec import TransformerSpec

# A GPT shape: GeLU MLP of 4h, multi-head attention (kv heads = heads).
GPT = TransformerSpec(name="gpt-test", num_layers=24, hidden_size=2304, num_heads=24, seq_len=2048, vocab_size=51200)


def _terms(model: TransformerSpec, b: int) -> tuple[float, float, float, int]:
    s, h, a = model.seq_len, model.hidden_size, model.num_heads
    return s * b * h, a * s * s * b, s, a


def _strategy(t: int, b: int, sp: bool = False, recompute: str = "none", attention: str = "unfused"):
    return make_strategy(tp=t, sequence_parallel=sp, recompute=recompute, attention=attention, micro_batch=b)


CASES = [(t, b) for t in (1, 2, 4, 8) for b in (1, 2, 4)]


@pytest.mark.parametrize(("t", "b"), CASES)
def test_no_recompute_no_sp(t: int, b: int) -> None:
    """Korthikanti eq. (2)/(3): s*b*h*(10 + 24/t) + 5*a*s^2*b/t bytes per layer (16-bit)."""
    sbh, as2b, _, _ = _terms(GPT, b)
    stored, full = layer_activation_bytes(GPT, _strategy(t, b), elem_bytes=2)
    expected = sbh * (10 + 24 / t) + 5 * as2b / t
    assert stored == pytest.approx(expected, rel=1e-12)
    assert full == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("t", "b"), CASES)
def test_fp8_stores_linear_inputs_in_one_byte(t: int, b: int) -> None:
    """Transformer Engine keeps the FP8 casts of the linear layers' inputs for backward: QKV and fc1
    inputs (2*s*b*h, not split by tp without SP), the attention output (s*b*h/t) and the fc2 input
    (4*s*b*h/t for GPT's 4h MLP) each take 1 byte instead of 2: s*b*h*(2 + 5/t) bytes fewer."""
    sbh, _, _, _ = _terms(GPT, b)
    bf16, _ = layer_activation_bytes(GPT, _strategy(t, b), elem_bytes=2)
    fp8 = make_strategy(tp=t, recompute="none", attention="unfused", micro_batch=b, precision="fp8")
    stored, _ = layer_activation_bytes(GPT, fp8, elem_bytes=2)
    assert bf16 - stored == pytest.approx(sbh * (2 + 5 / t), rel=1e-12)


@pytest.mark.parametrize(("t", "b"), [c for c in CASES if c[0] > 1])
def test_sequence_parallel(t: int, b: int) -> None:
    """Korthikanti eq. (4): s*b*h*34/t + 5*a*s^2*b/t."""
    sbh, as2b, _, _ = _terms(GPT, b)
    stored, full = layer_activation_bytes(GPT, _strategy(t, b, sp=True), elem_bytes=2)
    expected = sbh * 34 / t + 5 * as2b / t
    assert stored == pytest.approx(expected, rel=1e-12)
    assert full == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("t", "b"), [c for c in CASES if c[0] > 1])
def test_selective_recompute_with_sp(t: int, b: int) -> None:
    """Korthikanti eq. (5): selective recomputation + SP stores 34*s*b*h/t."""
    sbh, as2b, _, _ = _terms(GPT, b)
    stored, full = layer_activation_bytes(GPT, _strategy(t, b, sp=True, recompute="selective"), elem_bytes=2)
    assert stored == pytest.approx(34 * sbh / t, rel=1e-12)
    assert full == pytest.approx(34 * sbh / t + 5 * as2b / t, rel=1e-12)


@pytest.mark.parametrize(("t", "b"), CASES)
def test_selective_recompute_without_sp(t: int, b: int) -> None:
    """Selective recomputation drops only the 5as^2b/t score term: s*b*h*(10 + 24/t)."""
    sbh, _, _, _ = _terms(GPT, b)
    stored, _ = layer_activation_bytes(GPT, _strategy(t, b, recompute="selective"), elem_bytes=2)
    assert stored == pytest.approx(sbh * (10 + 24 / t), rel=1e-12)


@pytest.mark.parametrize(("t", "b"), CASES)
def test_full_recompute_stores_layer_input(t: int, b: int) -> None:
    """Full recomputation keeps only each layer's input: 2*s*b*h bytes (16-bit), and the returned
    working set is the no-recompute figure (one layer is rebuilt at a time)."""
    sbh, as2b, _, _ = _terms(GPT, b)
    stored, full = layer_activation_bytes(GPT, _strategy(t, b, recompute="full"), elem_bytes=2)
    assert stored == pytest.approx(2 * sbh, rel=1e-12)
    assert full == pytest.approx(sbh * (10 + 24 / t) + 5 * as2b / t, rel=1e-12)


@pytest.mark.parametrize(("t", "b"), [c for c in CASES if c[0] > 1])
def test_full_recompute_with_sp_shards_layer_input(t: int, b: int) -> None:
    """With SP the stored layer input is sequence-sharded: 2*s*b*h/t (Korthikanti Table 2)."""
    sbh, _, _, _ = _terms(GPT, b)
    stored, _ = layer_activation_bytes(GPT, _strategy(t, b, sp=True, recompute="full"), elem_bytes=2)
    assert stored == pytest.approx(2 * sbh / t, rel=1e-12)


@pytest.mark.parametrize("t", [1, 2, 8])
def test_flash_attention_stores_no_scores(t: int) -> None:
    """FlashAttention never stores the s^2 scores: no-recompute equals selective."""
    sbh, _, _, _ = _terms(GPT, 1)
    none, _ = layer_activation_bytes(GPT, _strategy(t, 1, attention="flash"), elem_bytes=2)
    sel, _ = layer_activation_bytes(GPT, _strategy(t, 1, recompute="selective", attention="flash"), elem_bytes=2)
    assert none == pytest.approx(sbh * (10 + 24 / t), rel=1e-12)
    assert sel == none


def test_context_parallel_divides_sequence() -> None:
    """With cp ranks, each holds s/cp tokens: the linear terms halve for cp = 2."""
    one, _ = layer_activation_bytes(GPT, make_strategy(tp=2, attention="flash"), elem_bytes=2)
    two, _ = layer_activation_bytes(GPT, make_strategy(tp=2, cp=2, attention="flash"), elem_bytes=2)
    assert two == pytest.approx(one / 2, rel=1e-12)


def test_activation_bytes_scale_with_micro_batch() -> None:
    one, _ = layer_activation_bytes(GPT, _strategy(2, 1), elem_bytes=2)
    four, _ = layer_activation_bytes(GPT, _strategy(2, 4), elem_bytes=2)
    assert four == pytest.approx(4 * one, rel=1e-12)


# ------------------------------------------------------------------- in-flight micro-batches


def _max_live(ops: list[tuple[str, int, int]]) -> int:
    live = peak = 0
    for phase, _, _ in ops:
        live += 1 if phase == "F" else -1
        peak = max(peak, live)
    return peak


@pytest.mark.parametrize(
    ("schedule", "p", "m"),
    [
        (sched, p, m)
        for sched in ("gpipe", "1f1b", "interleaved")
        for p, m in ((2, 4), (4, 4), (4, 8), (4, 2), (8, 16))
        if sched != "interleaved" or m % p == 0  # interleaved needs m to be a multiple of p
    ],
)
def test_in_flight_matches_schedule(schedule: str, p: int, m: int) -> None:
    """The memory model's micro-batches in flight equal the peak of (forwards - backwards) run
    so far in the schedule the graph uses."""
    v = 2 if schedule == "interleaved" else 1
    s = make_strategy(pp=p, vpp=v, schedule=schedule, micro_batch=1, dp=1, global_batch=m)
    for r in range(p):
        assert in_flight(s, r) == _max_live(SCHEDULES[schedule](p, m, r, v)), r


# ------------------------------------------------------------------- peak memory orderings

BASE = dict(accelerator="a100-sxm-80gb", gpus=8, micro_batch=1)


@pytest.mark.parametrize(
    "layout",
    [dict(tp=2, pp=2), dict(tp=1, pp=4), dict(tp=8, pp=1), dict(tp=4, pp=1, sequence_parallel=True)],
    ids=["tp2pp2", "pp4", "tp8", "tp4sp"],
)
@pytest.mark.parametrize("attention", ["flash", "unfused"])
def test_recompute_lowers_peak(layout: dict, attention: str) -> None:
    peaks = {
        rc: planner.simulate("gpt3-1.7b", **BASE, **layout, recompute=rc, attention=attention).memory
        for rc in ("none", "selective", "full")
    }
    assert peaks["full"].peak_gib <= peaks["selective"].peak_gib <= peaks["none"].peak_gib
    assert peaks["full"].activations_gib < peaks["none"].activations_gib
    # recomputation changes activations only (compare like with like: the peak rank can move)
    if peaks["full"].pipeline_rank == peaks["none"].pipeline_rank:
        assert peaks["full"].weights_gib == peaks["none"].weights_gib
    if attention == "unfused":
        assert peaks["selective"].peak_gib < peaks["none"].peak_gib


@pytest.mark.parametrize(("model", "tp"), [("gpt3-1.7b", 1), ("gpt3-1.7b", 2), ("llama2-7b", 4)])
def test_zero_stages_lower_peak(model: str, tp: int) -> None:
    """ZeRO 3 <= 2 <= 1 <= 0 on one layout with dp > 1 (pp = 1, which ZeRO 2/3 need)."""
    mem = {z: planner.simulate(model, **BASE, tp=tp, zero_stage=z).memory for z in (0, 1, 2, 3)}
    assert mem[3].peak_gib <= mem[2].peak_gib <= mem[1].peak_gib <= mem[0].peak_gib
    assert mem[1].peak_gib < mem[0].peak_gib  # dp > 1: the optimizer state is sharded
    assert mem[1].optimizer_gib == pytest.approx(mem[0].optimizer_gib / (8 // tp), rel=1e-12)
    assert mem[2].gradients_gib < mem[1].gradients_gib
    assert mem[3].weights_gib < mem[2].weights_gib


def test_memory_parts_add_up() -> None:
    m = planner.simulate("gpt3-1.7b", **BASE, tp=2, pp=2).memory
    total = m.weights_gib + m.gradients_gib + m.optimizer_gib + m.activations_gib + m.reserved_gib
    assert m.peak_gib == pytest.approx(total, rel=1e-12)
    assert m.fits == (m.peak_gib <= m.capacity_gib)
    assert m.capacity_gib == 80


def test_gpt3_175b_weights_per_gpu() -> None:
    """Megatron's 175B layout (tp 8, pp 16): ~1.4B parameters per GPU; 16-bit weights ~2.6 GiB,
    fp32 grads ~5.2 GiB, Adam (master + m + v) ~15.7 GiB; it fits in 80 GiB with full recompute."""
    r = planner.simulate(
        "gpt3-175b",
        accelerator="a100-sxm-80gb",
        gpus=1024,
        tp=8,
        pp=16,
        micro_batch=1,
        global_batch=1536,
        recompute="full",
    )
    m = r.memory
    per_gpu = 174.6e9 / 128
    assert m.optimizer_gib == pytest.approx(per_gpu * 12 / 2**30, rel=0.06)
    assert m.gradients_gib == pytest.approx(per_gpu * 4 / 2**30, rel=0.06)
    assert m.fits
