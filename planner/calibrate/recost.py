"""Predict a row's step time under a trial calibration by re-costing its compiled step.

Calibration predicts every row under many trial constants. A row's layout (its tasks, edges and
stream orders) does not depend on the constants, so each worker process compiles a row once (check
the layout, plan the step, build its graph) and, for each further calibration, has the family
re-cost the plan and re-time the graph's tasks in place (:meth:`planner.family.WorkloadFamily.recost`),
then replays it (:mod:`planner.replay`: the engine's answer on a graph compiled once). Same figure as :func:`planner.validate._predict` (the step's makespan), without
building the graph or assembling the report again.
"""

from __future__ import annotations

import gc
import multiprocessing
from typing import Any

from planner.calibration import Calibration
from planner.errors import PlannerInputError
from planner.registry import family_of
from planner.replay import compile_graph, makespan
from planner.validate import row_scenario

MAX_ROWS = 512
"""Rows a process keeps compiled."""

_COMPILED: dict[tuple, tuple[Any, Any, Any, Any, list[str]] | tuple[PlannerInputError, list[str]]] = {}
"""Per worker process: row -> (family, plan, graph, compiled graph, fields left blank), or the layout's error."""


_PLAYED: dict[tuple, dict[tuple[float, ...], float]] = {}
"""Per worker process and row: the makespan of each set of task times played so far."""


def _times(graph: Any) -> tuple[float, ...]:
    """Every task's duration, latency and transfer: all that the engine's answer depends on."""
    return tuple(a.get(k, 0.0) for a in graph.nodes.values() for k in ("duration", "latency", "transfer"))


def predict_recost(args: tuple[dict[str, str], int, Calibration]) -> tuple[float | None, str | None, list[str]]:
    """Predict one row: (step time or None, the reason it failed, fields left blank)."""
    row, line, calib = args
    key = (line, tuple(row.items()))
    hit = _COMPILED.get(key)
    defaulted: list[str] = []
    try:
        if hit is None:
            model, cluster, strategy, defaulted = row_scenario(row, line)
            fam = family_of(model)
            try:
                plan = fam.plan(model, fam.check(model, strategy, cluster), cluster, calib)
            except PlannerInputError as e:  # the layout itself is refused: under any calibration
                _COMPILED[key] = (e, defaulted)
                raise
            graph = fam.build_graph(plan)
            compiled = compile_graph(graph.graph)
            if len(_COMPILED) >= MAX_ROWS:  # a long-lived process (the app) calibrating file after file
                _COMPILED.clear()
                _PLAYED.clear()
            _COMPILED[key] = (fam, plan, graph, compiled, defaulted)
            if multiprocessing.parent_process() is not None:  # a pool worker: it ends with the calibration
                gc.freeze()  # keep its compiled graphs out of the collector's scans
        elif len(hit) == 2:
            raise hit[0]
        else:
            fam, plan, graph, compiled, defaulted = hit
            plan, graph = fam.recost(plan, graph, calib)
            _COMPILED[key] = (fam, plan, graph, compiled, defaulted)
        times = _times(graph.graph)
        played = _PLAYED.setdefault(key, {})
        if times not in played:  # a constant this row's tasks do not depend on moves nothing
            played[times] = makespan(compiled, graph.graph)
        return played[times], None, defaulted
    except PlannerInputError as e:
        return None, str(e), defaulted
