"""ZeRO-3 / FSDP with pipeline stages, as torchtitan and Llama 3 run it (issue 15): a stage's
parameters are gathered once a step and kept, its gradients accumulated unsharded over the
micro-batches and reduce-scattered once (planner.transformer.sharding.gathers_per_layer)."""

from __future__ import annotations

import pytest

from planner.calibration import DEFAULT
from planner.costs.compute import BYTES_PER_ELEMENT
from planner.errors import PlannerInputError
from planner.hardware import GIB, resolve_cluster
from planner.registry import family, load_model
from planner.simulate import make_strategy
from planner.transformer.keys import Phase
from planner.transformer.memory import memory
from planner.transformer.sharding import rank_params
from planner.transformer.strategy import check_layout

FAMILY = family("transformer")
LAYOUT = dict(tp=2, pp=4, global_batch=64, sequence_parallel=True, recompute="full")


def _plan(gpus: int = 32, **layout):
    spec = load_model("gpt3-1.7b")
    cluster = resolve_cluster(gpus=gpus, accelerator="h100-sxm-80gb")
    s = check_layout(make_strategy(**layout), spec, cluster)
    return spec, cluster, s, FAMILY.plan(spec, s, cluster, DEFAULT)


def test_a_stage_holds_its_whole_weights_and_fp32_gradients_and_a_shard_of_adam() -> None:
    spec, cluster, s, _ = _plan(**LAYOUT, zero_stage=3)
    m = memory(spec, s, cluster, BYTES_PER_ELEMENT[s.precision])
    params = rank_params(spec, s)[m.pipeline_rank]
    dp = s.data_parallel
    assert dp == 4
    assert m.weights_gib == pytest.approx(params * 2 / GIB)  # bf16, not resharded after forward
    assert m.gradients_gib == pytest.approx(params * 4 / GIB)  # accumulated in fp32 (FSDP2's reduce dtype)
    assert m.optimizer_gib == pytest.approx(params * 12 / dp / GIB)  # master, m, v: sharded
    # without pipeline stages the same model shards weights and gradients too (plus two gathered layers)
    spec1, cluster1, s1, _ = _plan(gpus=8, **{**LAYOUT, "pp": 1}, zero_stage=3)
    m1 = memory(spec1, s1, cluster1, BYTES_PER_ELEMENT[s1.precision])
    whole = rank_params(spec1, s1)[0]
    assert m1.gradients_gib == pytest.approx(whole * 2 / s1.data_parallel / GIB)
    assert m1.weights_gib < whole * 2 / GIB / 2


def test_it_holds_what_the_distributed_optimizer_holds_under_bf16() -> None:
    """PyTorch PR #124319: no reshard after forward nor after backward is "ZeRO-1"."""
    spec, cluster, s3, _ = _plan(**LAYOUT, zero_stage=3)
    _, _, s1, _ = _plan(**LAYOUT, zero_stage=1)
    m3, m1 = (memory(spec, s, cluster, 2) for s in (s3, s1))
    assert m3.peak_gib == pytest.approx(m1.peak_gib)


def test_the_graph_gathers_once_a_step_not_per_layer() -> None:
    _, _, _, plan = _plan(**LAYOUT, zero_stage=3)
    g = FAMILY.build_graph(plan).graph
    phases = {n.phase for n in g.nodes}
    assert Phase.PARAM_GATHER in phases and Phase.GRAD_REDUCE in phases
    assert Phase.LAYER_GATHER_FORWARD not in phases and Phase.LAYER_REDUCE_SCATTER not in phases
    gathers = [n for n in g.nodes if n.phase == Phase.PARAM_GATHER]
    assert len(gathers) == plan.strategy.pp  # one per pipeline rank
    assert all(g.nodes[n]["transfer"] > 0 for n in gathers)


def test_its_step_is_the_distributed_optimizers_with_16_bit_reduce_scatters() -> None:
    """Same passes and gathers as ZeRO-1; the gradients reduce-scatter in 16 bit (FSDP mixed
    precision, sharding.grad_reduce_bytes) instead of fp32, so the step is no longer."""
    _, _, _, p3 = _plan(**LAYOUT, zero_stage=3)
    _, _, _, p1 = _plan(**LAYOUT, zero_stage=1)
    t3, t1 = FAMILY.estimate(p3).step_time_s, FAMILY.estimate(p1).step_time_s
    assert t3 <= t1 and t3 == pytest.approx(t1, rel=0.05)


def test_zero_2_with_pipeline_stages_is_refused_with_the_way_out() -> None:
    with pytest.raises(PlannerInputError) as e:
        _plan(**LAYOUT, zero_stage=2)
    assert e.value.field == "zero_stage" and "3 for FSDP" in e.value.rule
