"""Replay a task graph many times with new task times: :func:`planner.engine.play`'s semantics on a
graph compiled once, without simpy.

Calibration plays the same graph (one per measured row) under many trial constants: only the
tasks' ``duration``, ``latency`` and ``transfer`` change, never the tasks, edges, streams or links.
:func:`compile_graph` turns the graph into index arrays once; :func:`makespan` plays it with the
times the graph's nodes hold now. The event order is simpy's (time, then priority, then the order
events were scheduled) and the processor-sharing link is :class:`planner.engine.Link`'s arithmetic,
so the answer is the engine's, to the last bit (tests/test_engine.py checks it).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from planner.engine import DeadlockError

_URGENT, _NORMAL = 0, 1  # simpy's priorities: a process's start, then every other event
_RESUME, _TIMER = 0, 1


@dataclass(frozen=True)
class CompiledGraph:
    """A task graph as arrays: per stream its tasks in issue order; per task its successors, its
    number of predecessors and its link (-1: none)."""

    nodes: list[Any]
    streams: list[list[int]]
    stream_of: list[int]
    succ: list[list[int]]
    preds: list[int]
    link_of: list[int]
    links: int


def compile_graph(graph: Any) -> CompiledGraph:
    """The arrays of ``graph`` (a ``networkx.DiGraph`` as :func:`planner.engine.play` takes it)."""
    nodes = list(graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    attrs = [graph.nodes[n] for n in nodes]
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
    return CompiledGraph(
        nodes,
        streams,
        stream_of,
        [[index[x] for x in graph.successors(n)] for n in nodes],
        [graph.in_degree(n) for n in nodes],
        link_of,
        len(link_ids),
    )


def makespan(cg: CompiledGraph, graph: Any) -> float:
    """When the last task of ``graph`` (compiled as ``cg``) ends, with the times its nodes hold now."""
    attrs = [graph.nodes[n] for n in cg.nodes]
    dur = [a.get("duration", 0.0) for a in attrs]
    lat = [a.get("latency", 0.0) for a in attrs]
    work = [a.get("transfer", 0.0) for a in attrs]
    return _play(cg, dur, lat, work)


def _play(cg: CompiledGraph, dur: list[float], lat: list[float], work: list[float]) -> float:
    count = len(cg.nodes)
    waiting = list(cg.preds)
    awaited = [False] * count  # its stream waits for it (the engine's ready event exists)
    end = [-1.0] * count
    pos = [0] * len(cg.streams)
    state = [0] * len(cg.streams)  # 0: start the next task; 1: start its transfer; 2: finish it
    queue: list[tuple[float, int, int, int, int, int]] = []  # (time, priority, order, what, arg, version)
    eid = 0
    now = 0.0
    flows: list[dict[int, float]] = [{} for _ in range(cg.links)]  # per link: stream -> work left
    last = [0.0] * cg.links
    version = [0] * cg.links

    def push(t: float, prio: int, what: int, arg: int, ver: int = 0) -> None:
        nonlocal eid
        heapq.heappush(queue, (t, prio, eid, what, arg, ver))
        eid += 1

    def advance(k: int) -> None:
        n = len(flows[k])
        if n and now > last[k]:
            share = (now - last[k]) / n
            f = flows[k]
            for s in f:
                f[s] -= share
        last[k] = now

    def reschedule(k: int) -> None:
        version[k] += 1
        if flows[k]:
            wait = min(flows[k].values()) * len(flows[k])
            push(now + max(wait, 0.0), _NORMAL, _TIMER, k, version[k])

    def resume(s: int) -> None:
        tasks = cg.streams[s]
        while pos[s] < len(tasks):
            i = tasks[pos[s]]
            if state[s] == 0:
                if waiting[i] > 0:
                    awaited[i] = True
                    return
                state[s] = 1 if cg.link_of[i] >= 0 else 2
                delay = lat[i] if cg.link_of[i] >= 0 else dur[i]
                if delay > 0:
                    push(now + delay, _NORMAL, _RESUME, s)
                    return
            if state[s] == 1:
                state[s] = 2
                k = cg.link_of[i]
                if work[i] <= 0:
                    push(now, _NORMAL, _RESUME, s)
                else:
                    advance(k)
                    flows[k][s] = work[i]
                    reschedule(k)
                return
            end[i] = now
            for j in cg.succ[i]:
                waiting[j] -= 1
                if waiting[j] == 0 and awaited[j]:
                    push(now, _NORMAL, _RESUME, cg.stream_of[j])
            pos[s] += 1
            state[s] = 0

    for s in range(len(cg.streams)):
        push(0.0, _URGENT, _RESUME, s)
    while queue:
        now, _, _, what, arg, ver = heapq.heappop(queue)
        if what == _RESUME:
            resume(arg)
        elif ver == version[arg]:  # a link's timer not overtaken by a newer arrival or departure
            advance(arg)
            eps = 1e-12 * max(1.0, now)
            done = [s for s, left in flows[arg].items() if left <= eps]
            for s in done:
                del flows[arg][s]
                push(now, _NORMAL, _RESUME, s)
            reschedule(arg)
    if min(end, default=0.0) < 0:
        unfinished = [cg.nodes[i] for i in range(count) if end[i] < 0]
        raise DeadlockError(f"{len(unfinished)} tasks never ran, e.g. {unfinished[:3]}")
    return max(end, default=0.0)
