"""Property tests over random valid scenarios: physical bounds and monotonicity that must hold
whatever the layout."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import planner
from planner.errors import PlannerInputError
from planner.hardware import catalog
from planner.transformer.result import StepResult
from planner.transformer.spec import load_model

MODELS = ["gpt3-1.7b", "gpt3-3.6b", "llama2-7b"]
LAYERS = {m: load_model(m).num_layers for m in MODELS}
ACCELERATORS = ["a100-sxm-80gb", "h100-sxm-80gb"]

# PLANNER_PROPERTY_EXAMPLES=500 for a longer hunt; the default keeps the suite fast.
EXAMPLES = int(os.environ.get("PLANNER_PROPERTY_EXAMPLES", "20"))
PROPS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    gpus = draw(st.sampled_from([8, 16, 32]))
    tp = draw(st.sampled_from([1, 2, 4, 8]))
    pp = draw(st.sampled_from([1, 2, 4]))
    assume(gpus % (tp * pp) == 0)
    dp = gpus // (tp * pp)
    model = draw(st.sampled_from(MODELS))
    mb = draw(st.integers(1, 2))
    k = draw(st.integers(1, 8))  # micro-batches per replica
    assume(LAYERS[model] % pp == 0)  # even pipeline stages
    accelerator = draw(st.sampled_from(ACCELERATORS))
    extra: dict[str, Any] = {}
    if pp > 1:
        sched = draw(st.sampled_from(["1f1b", "gpipe", "interleaved"]))
        extra["schedule"] = sched
        if sched == "interleaved" and LAYERS[model] % (2 * pp) == 0:
            extra["vpp"] = 2
            k = pp * draw(st.integers(1, 2))  # micro-batches a multiple of pp
        elif sched == "interleaved":
            extra["schedule"] = "1f1b"
    precisions = ["bf16", "fp16"] + (["fp8"] if accelerator.startswith("h100") else [])
    return dict(
        model=model,
        accelerator=accelerator,
        gpus=gpus,
        tp=tp,
        pp=pp,
        micro_batch=mb,
        global_batch=dp * mb * k,
        recompute=draw(st.sampled_from(["none", "selective", "full"])),
        sequence_parallel=tp > 1 and draw(st.booleans()),
        zero_stage=draw(st.sampled_from([0, 1] if pp > 1 else [0, 1, 2, 3])),
        attention=draw(st.sampled_from(["flash", "unfused"])),
        precision=draw(st.sampled_from(precisions)),
        dp_overlap=draw(st.booleans()),
        **extra,
    )


def run(sc: dict[str, Any], **over: Any) -> StepResult:
    args = {**sc, **over}
    model = args.pop("model")
    try:
        return planner.simulate(model, **args)
    except PlannerInputError:
        assume(False)  # an invalid combination (e.g. tp does not divide the heads): skip it


@PROPS
@given(scenarios())
def test_mfu_at_most_one(sc: dict[str, Any]) -> None:
    r = run(sc)
    assert 0 < r.mfu <= 1
    assert 0 < r.hfu <= 1
    assert r.hfu >= r.mfu * (1 - 1e-12)


@PROPS
@given(scenarios())
def test_step_time_above_flop_bound(sc: dict[str, Any]) -> None:
    r = run(sc)
    peak = catalog().accelerators[sc["accelerator"]].peak_flops(r.scenario["strategy"]["precision"])
    assert r.step_time_s >= r.model_flops_per_step / (peak * sc["gpus"])


@PROPS
@given(scenarios())
def test_breakdown_adds_up_to_step(sc: dict[str, Any]) -> None:
    """report.Breakdown: 'the parts sum to step_time_s'."""
    r = run(sc)
    b = r.breakdown
    parts = b.compute_s + b.exposed_comm_s + b.bubble_s + b.optimizer_s + getattr(b, "host_overhead_s", 0.0)
    assert parts == pytest.approx(r.step_time_s, rel=1e-6)
    assert min(b.compute_s, b.exposed_comm_s, b.bubble_s, b.optimizer_s) >= 0
    assert b.recompute_s <= b.compute_s * (1 + 1e-12)
    if sc["recompute"] == "none":
        assert b.recompute_s == 0


@PROPS
@given(scenarios())
def test_more_scale_out_bandwidth_never_slower(sc: dict[str, Any]) -> None:
    base = run(sc)
    per_gpu = catalog().node_types[catalog().accelerators[sc["accelerator"]].default_node].scale_out_gbps_per_gpu
    fast = run(sc, inter_node_gbps_per_gpu=2 * per_gpu)
    assert fast.step_time_s <= base.step_time_s * (1 + 1e-9)


@PROPS
@given(scenarios())
def test_full_recompute_never_raises_memory(sc: dict[str, Any]) -> None:
    none = run(sc, recompute="none")
    full = run(sc, recompute="full")
    assert full.memory.peak_gib <= none.memory.peak_gib * (1 + 1e-12)


@PROPS
@given(scenarios())
def test_zero1_never_raises_memory(sc: dict[str, Any]) -> None:
    z0 = run(sc, zero_stage=0)
    z1 = run(sc, zero_stage=1)
    assert z1.memory.peak_gib <= z0.memory.peak_gib * (1 + 1e-12)


@PROPS
@given(scenarios())
def test_twice_the_batch_at_most_twice_the_time(sc: dict[str, Any]) -> None:
    """Twice the micro-batches per replica on the same layout: twice the model FLOPs, a longer step but at
    most twice as long (the bubble, the gradient sync and the optimizer are paid once per step), so the
    throughput rises, and never more than doubles."""
    one = run(sc)
    two = run(sc, global_batch=2 * sc["global_batch"])
    assert two.model_flops_per_step == pytest.approx(2 * one.model_flops_per_step, rel=1e-9)
    assert one.step_time_s < two.step_time_s <= 2 * one.step_time_s * (1 + 1e-9)
    assert one.tokens_per_s * (1 - 1e-9) <= two.tokens_per_s <= 2 * one.tokens_per_s * (1 + 1e-9)
    assert one.memory.peak_gib > 0 and one.tasks > 0


@PROPS
@given(scenarios())
def test_recompute_ordering(sc: dict[str, Any]) -> None:
    """More recomputation: never faster, never more memory."""
    none, sel, full = (run(sc, recompute=rc) for rc in ("none", "selective", "full"))
    assert none.step_time_s <= sel.step_time_s * (1 + 1e-9)
    assert sel.step_time_s <= full.step_time_s * (1 + 1e-9)
    assert full.memory.peak_gib <= sel.memory.peak_gib * (1 + 1e-12)
    assert sel.memory.peak_gib <= none.memory.peak_gib * (1 + 1e-12)


@PROPS
@given(scenarios())
def test_dp_overlap_never_slower(sc: dict[str, Any]) -> None:
    overlapped = run(sc, dp_overlap=True)
    serial = run(sc, dp_overlap=False)
    assert overlapped.step_time_s <= serial.step_time_s * (1 + 1e-9)


@PROPS
@given(scenarios())
def test_deterministic(sc: dict[str, Any]) -> None:
    assert run(sc).model_dump() == run(sc).model_dump()
