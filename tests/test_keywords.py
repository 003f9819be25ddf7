"""The shared keyword sets (planner.keywords, search's and sweep's TypedDicts) stay in step with the
functions they forward to, reach them, and refuse a keyword nobody declares."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

import planner
from planner.errors import PlannerInputError
from planner.hardware import resolve_cluster
from planner.keywords import HardwareChoice, keys_of
from planner.search import Searcher, search
from planner.search.search import SearchOptions
from planner.sweep.run import SweepOptions, run_sweep


def _typed(kind: Any) -> dict[str, str]:
    """A TypedDict's keys with their annotations as written."""
    return {k: getattr(v, "__forward_arg__", v) for k, v in kind.__annotations__.items()}


def _keywords(fn: Any, skip: set[str]) -> dict[str, str]:
    """A function's named parameters (bar ``skip``) with their annotations as written."""
    return {p.name: p.annotation for p in inspect.signature(fn).parameters.values() if p.name not in skip}


@pytest.mark.parametrize(
    ("kind", "fn", "skip"),
    [
        (SearchOptions, Searcher.run, {"self", "model", "cluster"}),
        (SweepOptions, run_sweep, {"spec"}),
    ],
)
def test_forwarded_keywords_match_the_function_that_takes_them(kind: Any, fn: Any, skip: set[str]) -> None:
    """A TypedDict that types ``**options`` lists exactly the target's keywords, with the same types."""
    assert _typed(kind) == _keywords(fn, skip)


def test_hardware_choice_is_what_resolve_cluster_takes() -> None:
    """Every hardware keyword simulate and search accept is one resolve_cluster understands."""
    assert keys_of(HardwareChoice) <= set(inspect.signature(resolve_cluster).parameters)


@pytest.mark.parametrize(("call", "where"), [(lambda: search("gpt3-1.7b", gpu=8), "search()"),
                                              (lambda: planner.sweep({}, output="x.db"), "sweep()")])  # fmt: skip
def test_unknown_keyword_is_a_type_error_naming_it(call: Any, where: str) -> None:
    with pytest.raises(TypeError, match=rf"{re.escape(where)} got an unexpected keyword argument '(gpu|output)'"):
        call()


def test_simulate_passes_hardware_keywords_on_and_the_rest_to_the_strategy() -> None:
    """A resolved cluster and its keywords give the same step; ``gpus_per_node`` reaches the cluster
    (16 GPUs in 4-GPU nodes step at another speed than in 8-GPU ones); a stray keyword is a
    strategy-field error naming it."""
    layout = {"accelerator": "h100-sxm-80gb", "gpus": 16, "tp": 2, "global_batch": 64}
    same = planner.simulate("gpt3-1.7b", cluster=resolve_cluster(accelerator="h100-sxm-80gb", gpus=16),
                            tp=2, global_batch=64)  # fmt: skip
    default = planner.simulate("gpt3-1.7b", **layout)
    small_nodes = planner.simulate("gpt3-1.7b", gpus_per_node=4, **layout)
    assert same.step_time_s == default.step_time_s
    assert small_nodes.step_time_s != default.step_time_s
    with pytest.raises(PlannerInputError, match="gpu_count"):
        planner.simulate("gpt3-1.7b", gpu_count=8)
