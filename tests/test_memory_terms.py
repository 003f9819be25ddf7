"""Issue 15: the memory terms against the frameworks' own accounting, the layouts the largest runs
used (they must fit), the rejection text that names the overflowing term, and the framework
choices a validation row is predicted with."""

from __future__ import annotations

from typing import Any

import pytest

from planner.costs.compute import BYTES_PER_ELEMENT
from planner.hardware import GIB, resolve_cluster
from planner.registry import load_model
from planner.search.explain import memory_reason
from planner.simulate import make_strategy
from planner.transformer.memory import Memory, dropout_masks, in_flight, layer_activation_bytes, memory
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import check_layout
from planner.validate.frameworks import memory_choices


def _memory(model: str | TransformerSpec, gpus: int, accelerator: str = "h100-sxm-80gb", **layout) -> Memory:
    spec = load_model(model) if isinstance(model, str) else model
    cluster = resolve_cluster(gpus=gpus, accelerator=accelerator)
    s = check_layout(make_strategy(**layout), spec, cluster)
    return memory(spec, s, cluster, BYTES_PER_ELEMENT[s.precision])


LLAMA3 = dict(tp=8, pp=16, micro_batch=1, global_batch=2048, sequence_parallel=True, zero_stage=1)


@pytest.mark.parametrize("gpus", [8192, 16384])
def test_llama3_405b_published_layout_fits(gpus: int) -> None:
    """Llama 3 405B ran at tp 8, pp 16 on 8K and 16K H100 without activation checkpointing
    (arXiv:2407.21783 Sec. 3.3.2): it fits, and without sequence parallelism it could not."""
    m = _memory("llama3-405b", gpus, **LLAMA3)
    assert m.fits, m.overflow
    assert 60 < m.peak_gib <= 80
    assert not _memory("llama3-405b", gpus, **{**LLAMA3, "sequence_parallel": False}).fits


def test_overflow_names_the_in_flight_activations() -> None:
    m = _memory("llama3-405b", 16384, **{**LLAMA3, "sequence_parallel": False})
    n = in_flight(make_strategy(**LLAMA3).model_copy(update={"dp": 128}), m.pipeline_rank)
    assert m.in_flight == n == 16 - m.pipeline_rank
    assert m.overflow.startswith(f"activations of {n} in-flight micro-batches x {m.layers} layers: ")
    assert m.chunk_layers == m.layers  # one chunk per rank under 1F1B
    assert f"{m.activations_gib:.1f} GiB of {m.peak_gib:.1f} GiB (capacity 80 GiB)" in m.overflow
    assert [gib for _, gib in m.terms()] == sorted((gib for _, gib in m.terms()), reverse=True)


def test_search_rejection_names_the_term() -> None:
    spec = load_model("llama3-405b")
    cluster = resolve_cluster(gpus=16384, accelerator="h100-sxm-80gb")
    s = check_layout(make_strategy(**{**LLAMA3, "sequence_parallel": False}), spec, cluster)
    why = memory_reason(spec, cluster, s)
    assert why.startswith("out of memory: activations of 15 in-flight micro-batches x 8 layers: ")


def test_uneven_stages_keep_the_peak_off_the_first_and_last() -> None:
    """126 layers on 16 stages: the first and last hold 7 (one fewer, as Llama 3 did), the peak
    rank holds 8; under 1F1B rank 1 (8 layers x 15 in flight) beats rank 0 (7 x 16)."""
    m = _memory("llama3-405b", 16384, **LLAMA3)
    assert (m.pipeline_rank, m.layers, m.in_flight) == (1, 8, 15)


def test_swiglu_models_keep_no_dropout_masks() -> None:
    gelu = TransformerSpec(num_layers=4, hidden_size=1024, num_heads=8, seq_len=1024)
    swiglu = gelu.model_copy(update={"mlp": "swiglu"})
    assert (dropout_masks(gelu), dropout_masks(swiglu)) == (2, 0)
    s = make_strategy(tp=1)
    stored_swiglu, _ = layer_activation_bytes(swiglu, s, 2)
    sbh = 1024 * 1024
    mlp = 2 * 3 * swiglu.ffn * 1024  # fc1 out (gate and up), fc2 in: bf16
    assert stored_swiglu == pytest.approx(8 * sbh + 2 * sbh * 4 + mlp)  # norms, QKV/fc1 inputs; q, k, v, out


def test_fp8_with_distributed_optimizer_keeps_fp8_weights_and_bf16_grads() -> None:
    """Megatron-LM's FP8 recipe (--fp8-param-gather, --grad-reduce-in-bf16, distributed optimizer):
    2 bytes of weights and 2 of gradients per parameter, against 3 and 4 without ZeRO."""
    base = dict(tp=1, micro_batch=1, precision="fp8")
    z0 = _memory("llama3-8b", 8, **base, zero_stage=0)
    z1 = _memory("llama3-8b", 8, **base, zero_stage=1)
    assert z1.weights_gib == pytest.approx(z0.weights_gib * 2 / 3)
    assert z1.gradients_gib == pytest.approx(z0.gradients_gib / 2)
    assert z1.optimizer_gib == pytest.approx(z0.optimizer_gib / 8)


def test_nemotron4_340b_nemo_recipe_fits() -> None:
    """NeMo 24.07's Nemotron-340B pretraining row (128 H100, tp 8, pp 8, vpp 12, gb 32, FP8) with
    the recipe's distributed optimizer and sequence parallelism."""
    spec = TransformerSpec(name="nemotron-340b", num_layers=96, hidden_size=18432, num_heads=96, num_kv_heads=8,
                           ffn_hidden_size=73728, vocab_size=256000, seq_len=4096)  # fmt: skip
    m = _memory(spec, 128, tp=8, pp=8, vpp=12, micro_batch=1, global_batch=32, precision="fp8",
                sequence_parallel=True, zero_stage=1)  # fmt: skip
    assert m.fits, m.overflow
    assert m.peak_gib * GIB > 60 * GIB


@pytest.mark.parametrize(
    ("framework", "accelerator", "tp", "row", "want"),
    [
        ("nemo", "h100-sxm-80gb", 4, {"zero_stage": 0, "sequence_parallel": False}, {"zero_stage": 1, "sequence_parallel": True}),
        ("nemo", "h100-sxm-80gb", 1, {"zero_stage": 0, "sequence_parallel": False}, {"zero_stage": 1}),
        ("megatron", "a100-sxm-80gb", 8, {"zero_stage": 0, "sequence_parallel": False}, {}),
        ("megatron", "h100-sxm-80gb", 2, {"zero_stage": 3}, {"sequence_parallel": True}),
        ("torchtitan", "h100-sxm-80gb", 8, {"zero_stage": 3, "sequence_parallel": False}, {}),
        ("meta-internal", "h100-sxm-80gb", 8, {"zero_stage": 1}, {"sequence_parallel": True}),
    ],
)  # fmt: skip
def test_framework_memory_choices(framework: str, accelerator: str, tp: int, row: dict, want: dict) -> None:
    assert memory_choices(framework, accelerator, tp, row) == want


def test_interleaved_overflow_counts_layers_per_chunk() -> None:
    """Interleaved: in-flight counts (micro-batch, chunk) pairs, so the text gives layers per chunk."""
    m = _memory("llama3-405b", 16384, **{**LLAMA3, "pp": 32, "vpp": 2, "sequence_parallel": False})
    assert m.layers == 4 and m.chunk_layers == 2
    assert f"micro-batches x 2 layers: {m.activations_gib:.1f} GiB" in m.overflow


def test_overflow_term_names_the_kind() -> None:
    """The search counts a dropped layout by the largest term of its plan's memory (the estimate's
    ``overflow_term``), without working memory out a second time."""
    from planner.calibration import DEFAULT
    from planner.registry import family

    fam = family("transformer")
    spec = load_model("llama3-405b")
    cluster = resolve_cluster(gpus=16384, accelerator="h100-sxm-80gb")

    def estimate(s: object) -> Any:
        return fam.estimate(fam.plan(spec, s, cluster, DEFAULT))

    no_sp = check_layout(make_strategy(**{**LLAMA3, "sequence_parallel": False}), spec, cluster)
    e = estimate(no_sp)
    assert not e.fits and e.overflow_term == "activations"
    no_pp = check_layout(make_strategy(tp=8, pp=1, recompute="full", zero_stage=1, global_batch=2048), spec, cluster)
    e = estimate(no_pp)
    assert not e.fits and e.overflow_term == "gradients"
    fitting = check_layout(make_strategy(**LLAMA3), spec, cluster)
    assert estimate(fitting).overflow_term is None


def test_torchtitan_loss_and_op_level_checkpointing() -> None:
    """torchtitan's loss holds ~12 bytes per logit (fp32 logits, log-softmax, gradients) against
    Megatron's 4; its per-operator selective checkpointing saves about half of Megatron's set."""
    from planner.transformer.memory import loss_bytes_per_logit, op_level_checkpointing

    titan = make_strategy(tp=1, recompute="selective", framework="torchtitan")
    mega = make_strategy(tp=1, recompute="selective")
    assert (loss_bytes_per_logit(titan), loss_bytes_per_logit(mega)) == (12.0, 4.0)
    # with tp > 1 torchtitan's loss is loss-parallel, whose decomposed backward holds one fp32 tensor more
    assert loss_bytes_per_logit(titan.model_copy(update={"tp": 8})) == 16.0
    assert op_level_checkpointing(titan) and not op_level_checkpointing(mega)
    spec = load_model("llama3-8b")
    op, _ = layer_activation_bytes(spec, titan, 2)
    sel, _ = layer_activation_bytes(spec, mega, 2)
    s = spec.seq_len  # bf16: block input, w2 out (h each); q, attention out (4096 each), v (1024), w1 out (14336)
    assert op == pytest.approx(2 * s * (2 * 4096 + 2 * 4096 + 1024 + 14336))
    # Megatron's selective set: two norm inputs, QKV and fc1 inputs; q, k, v, attention out; fc1 out (2f), fc2 in
    assert sel == pytest.approx(2 * s * (4 * 4096 + 2 * 4096 + 2 * 1024 + 3 * 14336))
    assert op < 0.5 * sel


def test_mla_selective_recomputation_is_deepseeks() -> None:
    """DeepSeek-V3 sec. 3.2.3 recomputes RMSNorm and the MLA up-projections in the backward pass:
    selective recomputation of an MLA model stores its latents and the attention output, not the
    128 heads' up-projected q, k (192 wide) and v (128 wide), and its DualPipe layout fits in 80 GB."""
    spec = load_model("deepseek-v3")
    assert spec.is_mla
    s = make_strategy(pp=16, ep=64, precision="fp8", zero_stage=1, micro_batch=1, global_batch=4096)
    none, _ = layer_activation_bytes(spec, s.model_copy(update={"recompute": "none"}), 2, moe=True)
    sel, _ = layer_activation_bytes(spec, s.model_copy(update={"recompute": "selective"}), 2, moe=True)
    tokens = spec.seq_len
    up_bytes = 2 * tokens * spec.num_heads * (2 * spec.qk_head_size + spec.v_head_size)
    assert none - sel >= up_bytes  # plus the norm outputs (FP8 casts)
    assert sel < 0.6 * none


def test_the_fit_is_judged_without_the_allocators_free_blocks() -> None:
    """Llama 3 405B ran at tp 8, pp 16 on 80 GB H100s: it fits on its allocated peak plus the runtime
    reserve, although a max_memory_reserved reading of it (free cached blocks too) would pass 80 GiB."""
    m = _memory("llama3-405b", 16384, **LLAMA3)
    assert m.fits and m.peak_gib <= m.capacity_gib < m.measured_as("max_reserved_gib")
    assert m.measured_as("max_allocated_gib") == pytest.approx(m.peak_gib - m.reserved_gib)
