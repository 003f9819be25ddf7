"""Replay a task graph many times with new task times: :func:`planner.engine.play`'s semantics on a
graph compiled once, without simpy.

Calibration plays the same graph (one per measured row) under many trial constants: only the
tasks' ``duration``, ``latency`` and ``transfer`` change, never the tasks, edges, streams or links.
:func:`compile_graph` turns the graph into index arrays once; :func:`makespan` plays it with the
times the graph's nodes hold now (:func:`held_times`), :func:`makespan_of` with times given as arrays.

A task starts when its stream's previous task and its predecessors have ended, whatever order the
engine's events come in; only a link shared by concurrent transfers (processor sharing) makes the
answer depend on event order. So the replay is in two parts: the *isolated* schedule (every task
at ``max(predecessors' ends) + its time``, in one pass in topological order) is the engine's own
until ``t0``, the first instant two transfers meet on one link; from ``t0`` on an event replay
(simpy's arithmetic for the shared link, :class:`planner.engine.Link`) finishes the step. Most
graphs meet nowhere or only at their tail. Where the two parts could disagree with the engine (a
transfer arriving on a link at the instant another leaves it, whose order simpy decides by event
number), or the graph has a cycle, the whole graph is replayed event by event instead
(:mod:`planner.replay_events` holds both event replays). The
answer is the engine's to the last bit (tests/test_replay.py checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from planner.engine import TIMED_FIELDS
from planner.replay_events import from_meeting, play_events

Times = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Every task's duration, latency and transfer (arrays in ``CompiledGraph.nodes`` order)."""


@dataclass(frozen=True)
class _Levels:
    """The tasks by level (a task's level: one more than its predecessors' highest, 0 without
    any), so that a level's tasks are timed together: ``order`` lists the tasks level by level,
    ``pos`` is each task's place in it; per level (but level 0) its places ``lo:hi``, its tasks'
    predecessors' places (flattened, each task's first at ``firsts``) and whether a transfer is
    among its tasks; ``flat`` and ``firsts`` are the same over all levels but 0 (which ends at ``head``)."""

    order: np.ndarray
    pos: np.ndarray
    head: int
    steps: list[tuple[int, int, np.ndarray, np.ndarray, bool]]
    flat: np.ndarray
    firsts: np.ndarray


@dataclass(frozen=True)
class CompiledGraph:
    """A task graph as arrays: per stream its tasks in issue order; per task its successors, its
    predecessors and its link (-1: none) and whether it has one; per link whether more than one
    stream uses it, and the tasks of each link that does; the tasks by level, a task's stream
    predecessor counted among its predecessors (:class:`_Levels`; None: the graph has a cycle)."""

    nodes: list[Any]
    streams: list[list[int]]
    stream_of: list[int]
    succ: list[list[int]]
    pred_lists: list[list[int]]
    link_of: list[int]
    links: int
    shared: list[bool]
    on_shared: list[np.ndarray]
    levels: _Levels | None
    is_link: np.ndarray

    @property
    def preds(self) -> list[int]:
        """Each task's number of predecessors."""
        return [len(p) for p in self.pred_lists]


def compile_graph(graph: Any) -> CompiledGraph:
    """The arrays of ``graph`` (a ``networkx.DiGraph`` as :func:`planner.engine.play` takes it)."""
    nodes = list(graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    attrs = [a for _, a in graph.nodes(data=True)]
    by_stream: dict[str, list[int]] = {}
    for i, a in enumerate(attrs):
        by_stream.setdefault(a["stream"], []).append(i)
    streams = [sorted(tasks, key=lambda i: attrs[i].get("order", 0)) for tasks in by_stream.values()]
    stream_of = [0] * len(nodes)
    for s, tasks in enumerate(streams):
        for i in tasks:
            stream_of[i] = s
    link_ids: dict[str, int] = {}
    link_of = [link_ids.setdefault(a["link"], len(link_ids)) if a.get("link") is not None else -1 for a in attrs]
    succ = [[index[x] for x in after] for _, after in graph.adjacency()]  # node order
    pred_lists: list[list[int]] = [[] for _ in nodes]
    for i, ss in enumerate(succ):
        for j in ss:
            pred_lists[j].append(i)
    before = [list(p) for p in pred_lists]
    for tasks in streams:
        for a, b in zip(tasks, tasks[1:], strict=False):
            before[b].append(a)
    on_link: list[list[int]] = [[] for _ in link_ids]
    for i, k in enumerate(link_of):
        if k >= 0:
            on_link[k].append(i)
    shared = [len({stream_of[i] for i in tasks}) > 1 for tasks in on_link]
    topo = _topological(before)
    is_link = [k >= 0 for k in link_of]
    return CompiledGraph(
        nodes, streams, stream_of, succ, pred_lists, link_of, len(link_ids), shared,
        [np.array(t, dtype=np.intp) for t, sh in zip(on_link, shared, strict=True) if sh],
        None if topo is None else _levels(before, topo, is_link), np.array(is_link, dtype=bool),
    )  # fmt: skip


def _levels(before: list[list[int]], topo: list[int], is_link: list[bool]) -> _Levels:
    level = [0] * len(before)
    for i in topo:
        b = before[i]
        level[i] = 1 + max(level[p] for p in b) if b else 0
    order = sorted(range(len(before)), key=level.__getitem__)
    pos = [0] * len(order)
    for k, i in enumerate(order):
        pos[i] = k
    head = next((k for k, i in enumerate(order) if level[i]), len(order))
    steps: list[tuple[int, int, np.ndarray, np.ndarray, bool]] = []
    flat: list[int] = []
    firsts: list[int] = []
    lo = head
    while lo < len(order):
        hi, here, starts = lo, [], []
        while hi < len(order) and level[order[hi]] == level[order[lo]]:
            starts.append(len(here))
            firsts.append(len(flat) + len(here))
            here += [pos[p] for p in before[order[hi]]]
            hi += 1
        flat += here
        links = any(is_link[i] for i in order[lo:hi])
        steps.append((lo, hi, np.array(here, dtype=np.intp), np.array(starts, dtype=np.intp), links))
        lo = hi
    o, p, f, fs = (np.array(x, dtype=np.intp) for x in (order, pos, flat, firsts))
    return _Levels(o, p, head, steps, f, fs)


def _topological(before: list[list[int]]) -> list[int] | None:
    """Kahn's order of tasks whose predecessors are ``before``; None when there is a cycle."""
    after: list[list[int]] = [[] for _ in before]
    left = [len(b) for b in before]
    for j, b in enumerate(before):
        for i in b:
            after[i].append(j)
    order = [i for i, n in enumerate(left) if n == 0]
    for i in order:  # grows while it is walked
        for j in after[i]:
            left[j] -= 1
            if left[j] == 0:
                order.append(j)
    return order if len(order) == len(before) else None


def held_times(cg: CompiledGraph, graph: Any) -> Times:
    """The duration, latency and transfer the nodes of ``graph`` (compiled as ``cg``) hold now, in
    ``cg.nodes`` order (0.0 where absent, as the engine reads them)."""
    attrs = [graph.nodes[n] for n in cg.nodes]
    dur, lat, work = (np.array([a.get(k, 0.0) for a in attrs], dtype=float) for k in TIMED_FIELDS)
    return dur, lat, work


def makespan(cg: CompiledGraph, graph: Any) -> float:
    """When the last task of ``graph`` (compiled as ``cg``) ends, with the times its nodes hold now."""
    return makespan_of(cg, *held_times(cg, graph))


def makespan_of(cg: CompiledGraph, dur: np.ndarray, lat: np.ndarray, work: np.ndarray) -> float:
    """When the last task of ``cg`` ends with these task times (arrays in ``cg.nodes`` order)."""
    return makespans_of(cg, [(dur, lat, work)])[0]


def makespans_of(cg: CompiledGraph, times: list[Times]) -> list[float]:
    """:func:`makespan_of` for each set of task times (duration, latency, transfer): the isolated
    schedules of all of them are worked out together, level by level."""
    if cg.levels is None or not times:  # a cycle: the event replay names it
        return [play_events(cg, *(x.tolist() for x in t)) for t in times]
    dur, lat, work = (np.stack(x, axis=1) for x in zip(*times, strict=True))
    start, arrive, end = _isolated(cg, cg.levels, dur, lat, work)
    out = []
    for j, t in enumerate(times):
        t0 = _first_meeting(cg, arrive[:, j], end[:, j], t[2])
        if t0 == math.inf:
            out.append(float(end[:, j].max()) if len(end) else 0.0)
            continue
        span = from_meeting(cg, t0, start[:, j], arrive[:, j], end[:, j].copy(), *t)
        out.append(play_events(cg, *(x.tolist() for x in t)) if span is None else span)
    return out


def _isolated(
    cg: CompiledGraph, lv: _Levels, dur: np.ndarray, lat: np.ndarray, work: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, arrival on its link and end of every task (a row each; a column per set of times),
    each transfer alone on its link: level by level, a task starts at its predecessors' last end
    (its stream's previous task is one)."""
    # a task with no link: its duration, then nothing; a transfer: its latency, then its work alone
    # on the link (the engine waits only for positive times, and x + 0.0 is x)
    link = cg.is_link[:, None]
    first = np.maximum(np.where(link, lat, dur), 0.0)[lv.order]
    then = np.where(link, np.maximum(work, 0.0), 0.0)[lv.order]
    end = np.zeros(first.shape)
    end[: lv.head] = first[: lv.head] + then[: lv.head]  # level 0 starts at 0 (and 0.0 + x is x)
    for lo, hi, preds, firsts, links in lv.steps:
        a = np.maximum.reduceat(end[preds], firsts) + first[lo:hi]
        end[lo:hi] = a + then[lo:hi] if links else a  # (a task with no link adds nothing after)
    start = np.zeros(first.shape)
    if lv.head < len(first):  # every task but level 0's starts at its predecessors' last end
        start[lv.head :] = np.maximum.reduceat(end[lv.flat], lv.firsts)
    arrive = start + first
    return start[lv.pos], arrive[lv.pos], end[lv.pos]


def _first_meeting(cg: CompiledGraph, arrive: np.ndarray, end: np.ndarray, work: np.ndarray) -> float:
    """The first instant two transfers are on one link at once (touching counts), or infinity."""
    t0 = math.inf
    for on_link in cg.on_shared:
        tasks = on_link[work[on_link] > 0]
        if len(tasks) < 2:
            continue
        by_arrival = np.argsort(arrive[tasks], kind="stable")
        a, e = arrive[tasks][by_arrival], end[tasks][by_arrival]
        met = np.nonzero(a[1:] <= np.maximum.accumulate(e)[:-1])[0]  # arrives before an earlier one left
        if len(met):
            t0 = min(t0, float(a[1 + met[0]]))
    return t0
