"""Predict a row's step time under a trial calibration by re-timing its compiled step.

Calibration predicts every row under many trial constants. A row's layout (its tasks, edges and
stream orders) does not depend on the constants, so each worker process compiles a row once (check
the layout, plan the step, build its graph, compile it for :mod:`planner.replay`; a row is given to
one worker only, :class:`Shards`) and, for each
further calibration, re-times the graph's tasks and replays it: the engine's answer on a graph
compiled once. A family's ``build_retimed`` (the transformer family's:
:mod:`planner.transformer.retime`) gives every task's times as arrays read off the re-planned step;
where it gives no retimer (or for a graph the retimer cannot account for) the family re-costs the plan and
re-times the graph in place (:meth:`planner.family.WorkloadFamily.recost`). Same figure as
:func:`planner.validate._predict` (the step's makespan), without building the graph or assembling
the report again. A row whose task times come out as before (a constant it does not depend on
moved) is not replayed again.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from planner.calibration import Calibration
from planner.errors import PlannerInputError
from planner.pool import process_pool
from planner.registry import family_of
from planner.replay import CompiledGraph, Times, compile_graph, held_times, makespan_of, makespans_of
from planner.validate import row_scenario

MAX_ROWS = 512
"""Rows a process keeps compiled."""


@dataclass
class _Row:
    """A compiled row: its family, plan and graph, the graph's arrays, its retimer (None: the
    family re-costs), the fields left blank, and the makespan of each set of task times played."""

    family: Any
    plan: Any
    graph: Any
    compiled: CompiledGraph
    retimer: Any
    defaulted: list[str]
    played: dict[bytes, float]


_COMPILED: dict[tuple, _Row | tuple[PlannerInputError, list[str]]] = {}
"""Per worker process: row -> its compiled form, or the layout's error."""


def _compile(row: dict[str, str], line: int, calib: Calibration, key: tuple) -> _Row:
    model, cluster, strategy, defaulted = row_scenario(row, line)
    fam = family_of(model)
    try:
        plan = fam.plan(model, fam.check(model, strategy, cluster), cluster, calib)
    except PlannerInputError as e:  # the layout itself is refused: under any calibration
        _COMPILED[key] = (e, defaulted)
        raise
    graph, retimer = fam.build_retimed(plan)
    c = _Row(fam, plan, graph, compile_graph(graph.graph), retimer, defaulted, {})
    if len(_COMPILED) >= MAX_ROWS:  # a long-lived process (the app) calibrating file after file
        _COMPILED.clear()
    _COMPILED[key] = c
    if multiprocessing.parent_process() is not None:  # a pool worker: it ends with the calibration
        gc.freeze()  # keep its compiled graphs out of the collector's scans
    return c


Job = tuple[dict[str, str], int, Calibration]
"""A row, its line in its file, and the calibration to predict it under."""
Prediction = tuple[float | None, str | None, list[str]]
"""A row's step time (None: it failed), why it failed, and the fields it left blank."""


def _times(c: _Row, calib: Calibration) -> Times:
    """Every task's duration, latency and transfer under ``calib`` (node order), re-timed by the
    family in the graph itself: all that the engine's answer depends on."""
    c.plan, c.graph = c.family.recost(c.plan, c.graph, calib)
    return held_times(c.compiled, c.graph.graph)


def predict_recost(args: Job) -> Prediction:
    """Predict one row: (step time or None, the reason it failed, fields left blank)."""
    row, line, calib = args
    key = (line, tuple(row.items()))
    hit = _COMPILED.get(key)
    try:
        if isinstance(hit, tuple):
            raise hit[0]
        c = hit or _compile(row, line, calib, key)
        if c.retimer is not None:
            return _replay_retimed(c, [calib])[0], None, c.defaulted
        times = _times(c, calib) if hit else held_times(c.compiled, c.graph.graph)
        digest = hashlib.blake2b(b"".join(a.tobytes() for a in times), digest_size=16).digest()
        if digest not in c.played:
            c.played[digest] = makespan_of(c.compiled, *times)
        return c.played[digest], None, c.defaulted
    except PlannerInputError as e:
        refused = _COMPILED.get(key)  # the layout's error, with the fields the row left blank
        return None, str(e), refused[1] if isinstance(refused, tuple) else []


def predict_many(jobs: list[Job]) -> list[Prediction]:
    """:func:`predict_recost` of each job, in one call (one round trip to a worker); a retimed
    row's new task times are replayed together (:func:`planner.replay.makespans_of`)."""
    out: list[Prediction | None] = [None] * len(jobs)
    by_row: dict[tuple, list[int]] = {}
    for k, (row, line, _) in enumerate(jobs):
        by_row.setdefault((line, tuple(row.items())), []).append(k)
    for key, ks in by_row.items():
        out[ks[0]] = predict_recost(jobs[ks[0]])  # compiles the row when it is new
        c = _COMPILED.get(key)
        if not isinstance(c, _Row) or c.retimer is None:
            for k in ks[1:]:
                out[k] = predict_recost(jobs[k])
            continue
        for k, span in zip(ks[1:], _replay_retimed(c, [jobs[k][2] for k in ks[1:]]), strict=True):
            out[k] = (span, None, c.defaulted)
    return out  # type: ignore[return-value]


def _replay_retimed(c: _Row, calibs: list[Calibration]) -> list[float]:
    """The makespan of a retimed row under each calibration. The few figures its task times come
    from tell played times apart (a constant the row's tasks do not depend on moves nothing); the
    sets of times not played before are replayed together (:func:`planner.replay.makespans_of`)."""
    figures = [c.retimer.figures(calib) for calib in calibs]
    digests = [f.tobytes() for f in figures]
    new = {d: f for d, f in zip(digests, figures, strict=True) if d not in c.played}
    c.played.update(zip(new, makespans_of(c.compiled, [c.retimer.expand(f) for f in new.values()]), strict=True))
    return [c.played[d] for d in digests]


class Shards:
    """Worker processes that each keep their own rows compiled: a row goes to the first worker
    free when it is first seen, and to that worker ever after, so each row is compiled (its graph
    built) once, not once per worker."""

    def __init__(self, workers: int, stack: ExitStack) -> None:
        self.pools: list[ProcessPoolExecutor] = [stack.enter_context(process_pool(1)) for _ in range(workers)]
        self.home: dict[int, int] = {}
        """Row -> the worker that compiled it."""

    def run(self, rows: Sequence[int], jobs: Sequence[Job]) -> list[Prediction]:
        """The prediction of each job (``rows[k]``: the row of ``jobs[k]``)."""
        out: list[Prediction | None] = [None] * len(jobs)
        mine: dict[int, list[int]] = {}  # row -> its jobs
        for k, r in enumerate(rows):
            mine.setdefault(r, []).append(k)
        batches: dict[int, list[int]] = {}  # worker -> jobs of its rows
        new: list[int] = []
        for r, ks in mine.items():
            if r in self.home:
                batches.setdefault(self.home[r], []).extend(ks)
            else:
                new.append(r)
        running: dict[Future, tuple[int, list[int]]] = {}

        def submit(w: int, ks: list[int]) -> None:
            running[self.pools[w].submit(predict_many, [jobs[k] for k in ks])] = (w, ks)

        for w, ks in batches.items():
            submit(w, ks)
        idle = [w for w in range(len(self.pools)) if w not in batches]
        while running or new:
            while idle and new:
                r = new.pop(0)
                self.home[r] = w = idle.pop()
                submit(w, mine[r])
            for f in wait(running, return_when=FIRST_COMPLETED).done:
                w, ks = running.pop(f)
                for k, p in zip(ks, f.result(), strict=True):
                    out[k] = p
                idle.append(w)
        return out  # type: ignore[return-value]
