"""Re-time a built step graph under another calibration without building it again.

Calibration plays each measured row's graph under many trial constants (:mod:`planner.calibrate`).
The tasks, edges and stream orders do not depend on the constants, and neither does *where* each
task's times come from: a compute task lasts the sum of its passes (``count`` times each pass's
seconds, in order), a transfer takes the latency and link time of one cost of the plan (a pipeline
send, a gradient bucket's reduction, a ZeRO gather), the optimizer tasks take the plan's figures.
:class:`Retimer` finds, once per graph, that source for every task among the plan's passes and
costs (:func:`_sources`); under a new calibration it plans the layout again (cheap) and reads every
task's times off the new plan's sources as arrays, with the same arithmetic as the graph builder,
so each time is the builder's to the last bit. It checks that on the built graph and on one built
afresh under a probe calibration (every constant moved); a graph it cannot account for (DualPipe's
paired chunks, whose passes the builder rewrites) gets None, and the caller builds instead.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from planner.calibration import Calibration
from planner.costs.collectives import CommCost, Group
from planner.transformer.graph import StepGraph, build
from planner.transformer.layer import Pass
from planner.transformer.plan import StepPlan, recost_plan
from planner.transformer.sharding import gathers_per_layer

PROBE_SCALE = 0.93
"""A probe calibration moves every constant by this factor (each stays in its range): two figures
of a plan that agree under it and under the plan's own calibration are taken to be one."""

Reduce = tuple[float, int, Group, bool]
"""One gradient reduction the builder asked the plan for: (parameters, rank, group, the plan's own dp group)."""


class _Recording(StepPlan):
    """A plan that notes each gradient reduction the graph builder asks it for."""

    def grad_reduce(self, params: float, rank: int, dp: Group) -> CommCost:
        self.__dict__.setdefault("reduces", []).append((params, rank, dp, dp is self.groups.dp))
        return super().grad_reduce(params, rank, dp)


def _sources(plan: StepPlan, reduces: list[Reduce]) -> list[Pass | CommCost | float]:
    """Every figure of ``plan`` a task's times can come from, in an order that depends on the
    layout only: the layer and head passes, ZeRO-3's per-layer figures, the pipeline send, the
    gradient-norm sync, each rank's optimizer step and gather, and the gradient reductions."""
    out: list[Pass | CommCost | float] = []
    for costs in (plan.layer, plan.dense, plan.head):
        out += [getattr(costs, f.name) for f in fields(costs) if isinstance(getattr(costs, f.name), Pass)]
    if gathers_per_layer(plan.strategy):
        for k in plan.fsdp.values():
            out += [k.contention_f, k.contention_b, k.ag, k.rs]
        out += list(plan.fsdp_root)
    out += [plan.p2p, plan.sync.total_s]
    for step_s, gather in plan.optimizer:
        out += [step_s, gather]
    out += [plan.grad_reduce(prm, rank, plan.groups.dp if own else dp) for prm, rank, dp, own in reduces]
    return out


class Retimer:
    """Per task of a built graph, where its duration, latency and transfer come from in the plan."""

    def __init__(self, plan: StepPlan, reduces: list[Reduce], parts: np.ndarray, counts: np.ndarray, comm: np.ndarray):
        self.plan = plan
        self.reduces = reduces
        self.parts = parts  # (tasks, most passes): source index of each pass (a zero source past the last)
        self.counts = counts  # (tasks, most passes): its repeat count (0.0 past the last)
        self.comm = comm  # (tasks,): source index of a transfer's cost (a zero source for other tasks)

    @staticmethod
    def build(plan: StepPlan) -> tuple[StepGraph, Retimer | None]:
        """The step graph of ``plan`` and its retimer, or None where a task's times come from no
        figure of the plan, two figures that agree under ``plan``'s calibration part under another
        (which one a task took could not be told), or the arrays do not give the builder's times."""
        recording = _Recording(**{f.name: getattr(plan, f.name) for f in fields(StepPlan)})
        recording.__dict__.update({k: plan.__dict__[k] for k in ("ops", "pairs") if k in plan.__dict__})
        graph = build(recording)
        reduces: list[Reduce] = list(recording.__dict__.get("reduces", []))
        src = _sources(recording, reduces)  # the very passes the graph's tasks hold (ZeRO-3's are cached on it)
        probe = plan.calib.model_copy(update={k: v * PROBE_SCALE for k, v in plan.calib.constants().items()})
        moved = [_figure(x) for x in _sources(recost_plan(plan, probe), reduces)]
        found: dict[tuple, int] = {}
        for i, x in reversed(list(enumerate(src))):  # the first source of a figure wins
            key = _figure(x)
            if key is not None:
                if moved[found.get(key, i)] != moved[i]:
                    return graph, None
                found[key] = i
        passes = {id(x): i for i, x in enumerate(src) if isinstance(x, Pass)}
        attrs = [graph.graph.nodes[n] for n in graph.graph.nodes]
        width = max((len(a.get("passes", ())) for a in attrs), default=0) or 1
        parts = np.full((len(attrs), width), len(src), dtype=np.intp)
        counts = np.zeros((len(attrs), width))
        comm = np.full(len(attrs), len(src), dtype=np.intp)
        for t, a in enumerate(attrs):
            if "link" in a:
                picked = [found.get(("cost", a["latency"], a["transfer"], a["link"].split("/", 1)[1]), -1)]
                comm[t] = picked[0]
            elif "passes" in a:
                picked = [passes.get(id(x), -1) for x, _ in a["passes"]]
                parts[t, : len(picked)], counts[t, : len(picked)] = picked, [c for _, c in a["passes"]]
            else:
                picked = [found.get(("seconds", a.get("duration", 0.0)), -1)]
                parts[t, 0], counts[t, 0] = picked[0], 1.0
            if min(picked, default=0) < 0:
                return graph, None
        retimer = Retimer(plan, reduces, parts, counts, comm)
        got = retimer.times(plan.calib)
        if any(got[j].tolist() != _times(graph, k) for j, k in enumerate(("duration", "latency", "transfer"))):
            return graph, None
        return graph, retimer

    def figures(self, calib: Calibration) -> np.ndarray:
        """The plan's figures under ``calib`` that the tasks' times come from: (seconds, latency,
        transfer) of each source, and a zero source. Equal figures give equal task times."""
        src = _sources(recost_plan(self.plan, calib), self.reduces)
        return np.array(
            [[s.seconds if isinstance(s, Pass) else s if isinstance(s, float) else 0.0 for s in src] + [0.0]]
            + [
                [getattr(s, k) if isinstance(s, CommCost) else 0.0 for s in src] + [0.0]
                for k in ("latency_s", "transfer_s")
            ]
        )

    def expand(self, figures: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every task's duration, latency and transfer (graph node order) from :meth:`figures`: a
        compute task's duration adds its passes' seconds times their counts in order, as the builder does."""
        seconds, latency, transfer = figures
        dur = np.zeros(len(self.comm))
        for j in range(self.parts.shape[1]):
            dur += seconds[self.parts[:, j]] * self.counts[:, j]
        return dur, latency[self.comm], transfer[self.comm]

    def times(self, calib: Calibration) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every task's duration, latency and transfer (graph node order) under ``calib``."""
        return self.expand(self.figures(calib))


def _figure(x: Pass | CommCost | float) -> tuple | None:
    """What identifies a cost or a duration among a plan's figures (a pass: the object itself)."""
    if isinstance(x, CommCost):
        return ("cost", x.latency_s, x.transfer_s, x.link)
    return None if isinstance(x, Pass) else ("seconds", x)


def _times(graph: StepGraph, key: str) -> list[Any]:
    """One of a built graph's task times, in node order, as the engine reads it (0.0 when absent;
    a compute task's latency and transfer, a transfer's duration: the engine ignores them)."""
    nodes = graph.graph.nodes
    if key == "duration":
        return [0.0 if "link" in nodes[n] else nodes[n].get(key, 0.0) for n in nodes]
    return [nodes[n].get(key, 0.0) for n in nodes]
