"""Model features added for accuracy: uneven pipeline stages, wave quantisation, host-bound
layers, tensor-parallel communication overlap, and the framework assumptions of validation."""

from __future__ import annotations

import pytest

import planner
from planner.calibration import DEFAULT
from planner.costs.compute import ComputeModel
from planner.hardware import catalog
from planner.transformer.sharding import stage_layers
from planner.validate import attention_kernel, tp_comm_overlap


def test_stage_layers_gives_the_remainder_to_middle_stages() -> None:
    counts = stage_layers(126, 64)  # Llama 3.1 405B at pp 8, vpp 8
    assert sum(counts) == 126
    assert counts[0] == counts[-1] == 1
    assert all(c == 2 for c in counts[1:-1])
    assert stage_layers(70, 12) == [5] + [6] * 10 + [5]  # BLOOM-176B at pp 12
    assert stage_layers(96, 16) == [6] * 16


def test_uneven_pipeline_simulates() -> None:
    r = planner.simulate(
        "llama3-405b", accelerator="h100-sxm-80gb", gpus=512, tp=8, pp=8, vpp=8, micro_batch=1, global_batch=64
    )
    assert r.step_time_s > 0
    with pytest.raises(planner.PlannerInputError, match="fewer than"):
        planner.simulate("gpt3-1.7b", accelerator="a100-sxm-80gb", gpus=32, pp=32, global_batch=128)


def test_wave_quantisation() -> None:
    acc = catalog().accelerators["a100-sxm-80gb"]
    comp = ComputeModel(acc, DEFAULT, "bf16")
    cu = acc.compute_units
    assert cu == 108
    # exactly one full wave of 128x256 tiles: no waste
    assert comp.wave_efficiency(128 * cu, 256) == pytest.approx(1.0)
    # one tile more than a wave pays for a second wave
    assert comp.wave_efficiency(128 * (cu + 1), 256) == pytest.approx((cu + 1) / (2 * cu))
    # a GEMM one tile too large is slower per FLOP than one that fills its waves
    full = comp.gemm_s(128 * cu, 256, 4096) / (128 * cu)
    spill = comp.gemm_s(128 * (cu + 1), 256, 4096) / (128 * (cu + 1))
    assert spill > 1.5 * full


def test_host_bound_small_layers_and_not_large_ones() -> None:
    small = planner.simulate("gpt3-1.7b", accelerator="h100-sxm-80gb", gpus=8, micro_batch=1, global_batch=32)
    large = planner.simulate("gpt3-1.7b", accelerator="h100-sxm-80gb", gpus=8, micro_batch=16, global_batch=512)
    assert small.breakdown.host_overhead_s > 0
    assert large.breakdown.host_overhead_s == 0
    # a layer's forward is never shorter than the host time to issue it
    n_passes = 24 * 3 * 4  # layers x (forward 1 + backward 2 host times) x micro-batches, no recomputation
    assert small.breakdown.compute_s + small.breakdown.host_overhead_s >= 0.99 * n_passes * DEFAULT.layer_host_s


def test_tp_comm_overlap_hides_communication() -> None:
    kw = dict(accelerator="h100-sxm-80gb", gpus=64, tp=8, pp=2, sequence_parallel=True, global_batch=64)
    off = planner.simulate("llama3-70b", **kw)
    on = planner.simulate("llama3-70b", tp_comm_overlap=True, **kw)
    assert on.breakdown.tp_comm_s < 0.5 * off.breakdown.tp_comm_s
    assert on.step_time_s < off.step_time_s
    # the GEMMs pay for the SMs the communication holds
    assert on.breakdown.compute_s > off.breakdown.compute_s


@pytest.mark.parametrize(
    ("framework", "accelerator", "attention", "overlap"),
    [
        ("mosaic", "a100-sxm-80gb", "fa2", False),
        ("megatron", "a100-sxm-80gb", "unfused", False),
        ("megatron", "h100-sxm-80gb", "cudnn", True),
        ("nemo", "h100-sxm-80gb", "cudnn", True),
        ("megatron-deepspeed", "a100-sxm-80gb", "unfused", False),
        ("torchtitan", "h200-sxm-141gb", "fa2", False),
        ("unknown-stack", "h100-sxm-80gb", "flash", False),
    ],
)
def test_framework_assumptions(framework: str, accelerator: str, attention: str, overlap: bool) -> None:
    assert attention_kernel(framework, accelerator) == attention
    assert tp_comm_overlap(framework, accelerator) is overlap


def _uniform_pipeline_makespan(p: int, m: int, zero_bubble: bool) -> float:
    import networkx as nx

    from planner.engine import play
    from planner.transformer.schedules import one_f_one_b, zero_bubble_h1

    g = nx.DiGraph()
    for r in range(p):
        ops = zero_bubble_h1(p, m, r) if zero_bubble else one_f_one_b(p, m, r)
        prev = None
        for i, (ph, _c, mb) in enumerate(ops):
            d = {"F": 1.0, "B": 1.0 if zero_bubble else 2.0, "W": 1.0}[ph]
            node = (ph, r, mb)
            g.add_node(node, stream=str(r), order=i, duration=d, kind="compute")
            if prev is not None:
                g.add_edge(prev, node)
            prev = node
            if ph == "F" and r > 0:
                g.add_edge(("F", r - 1, mb), node)
            if ph == "B":
                g.add_edge(("F", r, mb), node)
                if r < p - 1:
                    g.add_edge(("B", r + 1, mb), node)
            if ph == "W":
                g.add_edge(("B", r, mb), node)
    return play(g).makespan_s


@pytest.mark.parametrize(("p", "m"), [(4, 8), (8, 32), (16, 32)])
def test_zero_bubble_schedule_on_uniform_stages(p: int, m: int) -> None:
    from planner.transformer.schedules import zero_bubble_h1

    for stage in range(p):
        ops = zero_bubble_h1(p, m, stage)
        assert sorted(ops) == sorted([(ph, 0, k) for ph in "FBW" for k in range(m)])
        pos = {op: i for i, op in enumerate(ops)}
        assert all(pos[("F", 0, k)] < pos[("B", 0, k)] < pos[("W", 0, k)] for k in range(m))
    # F = B = W = 1: 1F1B takes (m + p - 1)(F + B + W); zero-bubble m(F + B + W) + (p - 1)(F + B - W)
    assert _uniform_pipeline_makespan(p, m, zero_bubble=False) == pytest.approx((m + p - 1) * 3)
    assert _uniform_pipeline_makespan(p, m, zero_bubble=True) == pytest.approx(m * 3 + (p - 1))


def test_zero_bubble_shrinks_the_bubble_of_a_real_step() -> None:
    kw = dict(accelerator="a100-sxm-80gb", gpus=1024, tp=8, pp=16, micro_batch=1, global_batch=256, recompute="full")
    one = planner.simulate("gpt3-175b", **kw)
    zb = planner.simulate("gpt3-175b", schedule="zero-bubble", **kw)
    assert zb.breakdown.bubble_s < 0.8 * one.breakdown.bubble_s
    assert zb.step_time_s < one.step_time_s
    with pytest.raises(planner.PlannerInputError, match="vpp"):
        planner.simulate("gpt3-175b", schedule="zero-bubble", vpp=2, **kw)
