"""The search's closed-form estimate against the simulation of the same plan, for every schedule the
search may propose (GPipe, 1F1B, interleaved, zero-bubble, DualPipe) and a spread of layouts:
dense and MoE, ZeRO 0/1/3, recomputation none/full, tensor parallelism with sequence parallelism.

Both read one :class:`~planner.transformer.plan.StepPlan`, so a difference beyond 2 % is the
estimate's own model of the schedule (its bubble, overlap, reduction) going wrong."""

from __future__ import annotations

from typing import Any

import pytest

from planner.calibration import DEFAULT
from planner.engine import play
from planner.hardware import resolve_cluster
from planner.transformer.estimate import AnalyticalEstimator
from planner.transformer.family import FAMILY
from planner.transformer.spec import TransformerSpec, load_model

TOLERANCE = 0.02

# A small MoE model (8 experts of ffn 1024, top-2; its first layer dense) so that MoE cases simulate fast.
SMALL_MOE = TransformerSpec(
    name="small-moe", num_layers=8, hidden_size=1024, num_heads=16, seq_len=1024, vocab_size=32000,
    ffn_hidden_size=4096, num_experts=8, top_k=2, moe_ffn_hidden_size=1024, mlp="swiglu", shared_experts=1, first_dense_layers=1,
)  # fmt: skip

CASES: list[tuple[str, int, dict[str, Any]]] = [
    # (model, GPUs, layout)
    ("gpt3-1.7b", 16, dict(pp=4, schedule="gpipe", global_batch=64)),
    ("gpt3-1.7b", 16, dict(pp=4, schedule="1f1b", global_batch=64, recompute="full")),
    ("gpt3-1.7b", 16, dict(tp=2, pp=2, schedule="1f1b", global_batch=64, sequence_parallel=True, zero_stage=1)),
    ("gpt3-1.7b", 16, dict(pp=4, vpp=2, schedule="interleaved", global_batch=64)),
    ("gpt3-1.7b", 16, dict(tp=2, pp=4, vpp=3, schedule="interleaved", global_batch=64, sequence_parallel=True)),
    ("gpt3-1.7b", 16, dict(pp=4, schedule="zero-bubble", global_batch=64)),
    ("gpt3-1.7b", 16, dict(tp=2, pp=2, schedule="zero-bubble", global_batch=64, recompute="full", zero_stage=1)),
    ("gpt3-1.7b", 16, dict(pp=4, schedule="dualpipe", global_batch=64)),
    ("gpt3-1.7b", 16, dict(pp=4, schedule="dualpipe", global_batch=256, micro_batch=2, zero_stage=1)),
    ("gpt3-1.7b", 16, dict(tp=2, pp=2, schedule="dualpipe", global_batch=64, sequence_parallel=True)),
    ("gpt3-1.7b", 8, dict(pp=8, schedule="dualpipe", global_batch=32, recompute="full")),
    ("gpt3-1.7b", 8, dict(tp=2, zero_stage=3, global_batch=32, sequence_parallel=True)),
    ("gpt3-1.7b", 8, dict(zero_stage=3, global_batch=32, recompute="full")),
    # the framework's reduce dtype: FSDP2's fp32 reduce-scatter across nodes, DeepSpeed's 16-bit ZeRO-1
    ("gpt3-1.7b", 16, dict(zero_stage=3, global_batch=32, grad_reduce_dtype="fp32")),
    ("gpt3-1.7b", 16, dict(tp=2, pp=2, schedule="1f1b", global_batch=64, zero_stage=1, grad_reduce_dtype="param")),
    # FSDP with pipeline stages (torchtitan, Llama 3): a stage gathered once a step, reduce-scattered once
    ("gpt3-1.7b", 16, dict(tp=2, pp=2, schedule="1f1b", global_batch=64, sequence_parallel=True, zero_stage=3)),
    ("gpt3-1.7b", 16, dict(pp=4, vpp=2, schedule="interleaved", global_batch=64, recompute="full", zero_stage=3)),
    (SMALL_MOE.name, 16, dict(pp=2, ep=4, schedule="1f1b", global_batch=64)),
    (SMALL_MOE.name, 16, dict(tp=2, pp=2, ep=4, schedule="dualpipe", global_batch=64, sequence_parallel=True)),
    (SMALL_MOE.name, 16, dict(pp=4, ep=2, schedule="dualpipe", global_batch=64, recompute="full", zero_stage=1)),
    (SMALL_MOE.name, 16, dict(pp=2, ep=2, schedule="zero-bubble", global_batch=64, zero_stage=1)),
    (SMALL_MOE.name, 8, dict(ep=4, zero_stage=3, global_batch=32)),
]


def _model(name: str) -> TransformerSpec:
    return SMALL_MOE if name == SMALL_MOE.name else load_model(name)


@pytest.mark.parametrize(
    ("name", "gpus", "layout"), CASES, ids=[f"{n}-{'-'.join(f'{k}{v}' for k, v in x.items())}" for n, _, x in CASES]
)
def test_estimate_within_two_percent_of_simulation(name: str, gpus: int, layout: dict[str, Any]) -> None:
    model = _model(name)
    cluster = resolve_cluster(gpus=gpus, accelerator="h100-sxm-80gb")
    s = FAMILY.check(model, FAMILY.make_strategy(**layout), cluster)
    plan = FAMILY.plan(model, s, cluster, DEFAULT)
    est = FAMILY.estimate(plan).step_time_s
    sim = play(FAMILY.build_graph(plan).graph).makespan_s
    assert abs(est / sim - 1) <= TOLERANCE, f"estimate {est:.4f} s vs simulation {sim:.4f} s"


def test_search_estimator_matches_the_family_estimate() -> None:
    """The search's cached estimator (templates shared between layouts) gives the family's figure."""
    model = load_model("gpt3-1.7b")
    cluster = resolve_cluster(gpus=16, accelerator="h100-sxm-80gb")
    est = AnalyticalEstimator()
    for layout in (dict(pp=4, schedule="dualpipe", global_batch=64), dict(tp=2, pp=2, global_batch=64)):
        s = FAMILY.check(model, FAMILY.make_strategy(**layout), cluster)
        direct = FAMILY.estimate(FAMILY.plan(model, s, cluster, DEFAULT))
        assert est.estimate(model, cluster, s) == direct


def test_dualpipe_bubble_is_smaller_than_1f1b() -> None:
    """DualPipe's point: on the same ranks and batch its step beats 1F1B's (smaller bubble)."""
    model = load_model("gpt3-1.7b")
    cluster = resolve_cluster(gpus=8, accelerator="h100-sxm-80gb")
    est = AnalyticalEstimator()
    step = {}
    for sched in ("1f1b", "dualpipe"):
        s = FAMILY.check(model, FAMILY.make_strategy(pp=8, schedule=sched, global_batch=32), cluster)
        step[sched] = est.estimate(model, cluster, s).step_time_s
    assert step["dualpipe"] < step["1f1b"]
