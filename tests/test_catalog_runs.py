"""Issue 16: every catalog accelerator, instance and cluster, at one and at two nodes, through
simulate, search and compare: an answer or one clear :class:`PlannerInputError`, never another
exception (tpu-v4 and Standard_ND40rs_v2 crashed every run with ZeroDivisionError).

Kept small: gpt3-1.7b, a one-option search space, top 1, no halvings, one worker."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from planner.errors import PlannerInputError
from planner.hardware import catalog
from planner.search import search
from planner.search.compare import compare
from planner.search.types import SearchSpace
from planner.simulate import simulate

MODEL = "gpt3-1.7b"
SPACE = SearchSpace(
    pp=(1, 2),
    max_vpp=1,
    micro_batch=(1,),
    recompute=("full",),
    zero_stage=(1,),
    sequence_parallel=(False,),
    zero_bubble=(False,),
)
CAT = catalog()


def _gpus_per_node(kind: str, ident: str) -> int | None:
    if kind == "accelerator":
        node = CAT.accelerators[ident].default_node
        return CAT.node_types[node].gpus_per_node if node else None
    if kind == "instance":
        return CAT.node_types[CAT.instances[ident].node_type].gpus_per_node
    spec = CAT.clusters[ident]
    return CAT.node_type(spec.node_type).gpus_per_node


HARDWARE = [("accelerator", a) for a in sorted(CAT.accelerators)]
HARDWARE += [("instance", i) for i in sorted(CAT.instances)]
HARDWARE += [("cluster", c) for c in sorted(CAT.clusters)]


def _outcome(run: Callable[[], Any]) -> str:
    """'answer' or 'refused' (a PlannerInputError with a field and a rule); anything else fails."""
    try:
        run()
    except PlannerInputError as e:
        assert e.field and e.rule and "\n" not in str(e)
        return "refused"
    return "answer"


@pytest.mark.parametrize("nodes", [1, 2])
@pytest.mark.parametrize(("kind", "ident"), HARDWARE, ids=[f"{k}:{i}" for k, i in HARDWARE])
def test_simulate_and_search_answer_or_refuse(kind: str, ident: str, nodes: int) -> None:
    g = _gpus_per_node(kind, ident) or 8
    gpus = g * nodes
    hw = {kind: ident, "gpus": gpus}

    def sim() -> None:
        r = simulate(MODEL, global_batch=gpus, recompute="full", zero_stage=1, **hw)
        assert math.isfinite(r.step_time_s) and r.step_time_s > 0
        assert 0 <= r.breakdown.bubble_s <= r.step_time_s

    def find() -> None:
        r = search(MODEL, global_batch=gpus, space=SPACE, top=1, min_gpus=gpus, workers=1, alternatives=False, **hw)
        assert r.results and math.isfinite(r.results[0].step_time_s)

    sim_out, search_out = _outcome(sim), _outcome(find)
    if kind == "accelerator" and CAT.accelerators[ident].default_node is None:
        assert sim_out == search_out == "refused"  # no node type to put it in: name a cluster


@pytest.mark.parametrize("nodes", [1, 2])
def test_compare_answers_every_instance_row(nodes: int) -> None:
    """One call per node count over every instance: each row answered or saying why not."""
    rows = []
    for ident in sorted(CAT.instances):
        gpus = _gpus_per_node("instance", ident) * nodes  # type: ignore[operator]
        c = compare(MODEL, instances=[ident], gpus=gpus, global_batch=gpus, tokens=1e9)
        rows += c.results
    assert len(rows) == len(CAT.instances)
    for r in rows:
        assert r.fits == (r.run is not None)
        if not r.fits:
            assert r.reason
        else:
            assert r.step_time_s is not None and math.isfinite(r.step_time_s)


def test_compare_mixed_row_keeps_the_others() -> None:
    c = compare(MODEL, instances=["tpu-v4-8", "p5.48xlarge"], gpus=8, global_batch=8, tokens=1e9)
    assert {r.instance for r in c.results} == {"tpu-v4-8", "p5.48xlarge"}
    assert all(r.fits or r.reason for r in c.results)
    assert any(r.fits for r in c.results)
