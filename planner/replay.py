"""Replay a task graph many times with new task times: :func:`planner.engine.play`'s semantics on a
graph compiled once, without simpy.

Calibration plays the same graph (one per measured row) under many trial constants: only the
tasks' ``duration``, ``latency`` and ``transfer`` change, never the tasks, edges, streams or links.
:func:`compile_graph` turns the graph into index arrays once; :func:`makespan` plays it with the
times the graph's nodes hold now, :func:`makespan_of` with times given as sequences.

A task starts when its stream's previous task and its predecessors have ended, whatever order the
engine's events come in; only a link shared by concurrent transfers (processor sharing) makes the
answer depend on event order. So the replay is in two parts: the *isolated* schedule (every task
at ``max(predecessors' ends) + its time``, in one pass in topological order) is the engine's own
until ``t0``, the first instant two transfers meet on one link; from ``t0`` on an event replay
(simpy's arithmetic for the shared link, :class:`planner.engine.Link`) finishes the step. Most
graphs meet nowhere or only at their tail. Where the two parts could disagree with the engine (a
transfer arriving on a link at the instant another leaves it, whose order simpy decides by event
number), or the graph has a cycle, :func:`_play` replays the whole graph event by event instead. The
answer is the engine's to the last bit (tests/test_replay.py checks it).
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from planner.engine import TIMED_FIELDS, DeadlockError

_URGENT, _NORMAL = 0, 1  # simpy's priorities: a process's start, then every other event
_RESUME, _TIMER = 0, 1


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
    predecessors and its link (-1: none); a topological order of the tasks with a task's stream
    predecessor counted among its predecessors (``before``; None: the graph has a cycle); per link
    whether more than one stream uses it, and the tasks of each link that does."""

    nodes: list[Any]
    streams: list[list[int]]
    stream_of: list[int]
    succ: list[list[int]]
    pred_lists: list[list[int]]
    link_of: list[int]
    links: int
    topo: list[int] | None
    before: list[tuple[int, ...]]
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
    return CompiledGraph(
        nodes, streams, stream_of, succ, pred_lists, link_of, len(link_ids), topo, [tuple(b) for b in before],
        shared, [np.array(t, dtype=np.intp) for t, sh in zip(on_link, shared, strict=True) if sh],
        None if topo is None else _levels(before, topo, [k >= 0 for k in link_of]),
        np.array([k >= 0 for k in link_of], dtype=bool),
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


def makespan(cg: CompiledGraph, graph: Any) -> float:
    """When the last task of ``graph`` (compiled as ``cg``) ends, with the times its nodes hold now."""
    attrs = [graph.nodes[n] for n in cg.nodes]
    return makespan_of(cg, *(np.array([a.get(k, 0.0) for a in attrs], dtype=float) for k in TIMED_FIELDS))


def makespan_of(cg: CompiledGraph, dur: np.ndarray, lat: np.ndarray, work: np.ndarray) -> float:
    """When the last task of ``cg`` ends with these task times (arrays in ``cg.nodes`` order)."""
    if cg.levels is None:  # a cycle: the event replay names it
        return _play(cg, dur.tolist(), lat.tolist(), work.tolist())
    start, arrive, end = _isolated(cg, cg.levels, dur, lat, work)
    t0 = _first_meeting(cg, arrive, end, work)
    if t0 == math.inf:
        return float(end.max()) if len(end) else 0.0
    out = _from(cg, t0, start, arrive, end, dur, lat, work)
    return _play(cg, dur.tolist(), lat.tolist(), work.tolist()) if out is None else out


def _isolated(
    cg: CompiledGraph, lv: _Levels, dur: np.ndarray, lat: np.ndarray, work: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, arrival on its link and end of every task, each transfer alone on its link: level
    by level, a task starts at its predecessors' last end (its stream's previous task is one)."""
    # a task with no link: its duration, then nothing; a transfer: its latency, then its work alone
    # on the link (the engine waits only for positive times, and x + 0.0 is x)
    first = np.maximum(np.where(cg.is_link, lat, dur), 0.0)[lv.order]
    then = np.where(cg.is_link, np.maximum(work, 0.0), 0.0)[lv.order]
    end = np.zeros(len(first))
    end[: lv.head] = first[: lv.head] + then[: lv.head]  # level 0 starts at 0 (and 0.0 + x is x)
    for lo, hi, preds, firsts, links in lv.steps:
        a = np.maximum.reduceat(end[preds], firsts) + first[lo:hi]
        end[lo:hi] = a + then[lo:hi] if links else a  # (a task with no link adds nothing after)
    start = np.zeros(len(first))
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


def _from(
    cg: CompiledGraph,
    t0: float,
    start: np.ndarray,
    arrive: np.ndarray,
    end: np.ndarray,
    dur: np.ndarray,
    lat: np.ndarray,
    work: np.ndarray,
) -> float | None:
    """The makespan, replaying events from ``t0`` on: what started before ``t0`` is as the isolated
    schedule has it (``start``, ``arrive``, ``end``; ``end`` is overwritten), transfers on a shared
    link from then on share it as :class:`planner.engine.Link` does, and every other task is timed
    as soon as it can start. None where the event order could matter (see the module). Only the
    tasks not done by ``t0`` (few: most graphs meet at their tail) get state of their own."""
    link_of, shared, succ, stream_of, streams = cg.link_of, cg.shared, cg.succ, cg.stream_of, cg.streams
    queue: list[tuple[float, int, int, int]] = []  # (time, order, task arriving or -1 - link (its timer), version)
    order = itertools.count()
    flows: list[dict[int, float]] = [{} for _ in range(cg.links)]  # per link: task -> work left
    last, version = [0.0] * cg.links, [0] * cg.links
    timer_at, gone_at = [-1.0] * cg.links, [-1.0] * cg.links  # a link's pending timer; its last departure
    pos, free = [0] * len(streams), [0.0] * len(streams)
    waiting: dict[int, int] = {}  # a pending task: its predecessors not done
    ready: dict[int, float] = {}  # its done predecessors' last end
    awaited: set[int] = set()  # its stream waits for it
    on_link: set[int] = set()  # a transfer its link ends
    # per link, its transfers still to arrive (by the earliest they can: the isolated schedule's
    # arrival, or the real one once known), but those in ``resolved``, lazily dropped
    expected: list[list[tuple[float, int]]] = [[] for _ in range(cg.links)]
    resolved: set[int] = set()

    def alone(k: int, i: int, a: float, e: float) -> bool:
        """Whether transfer ``i`` has link ``k`` to itself from its arrival ``a`` to ``e``: no flow
        on it, none leaving at ``a``, none else to arrive by ``e`` (a task starts no earlier than
        in the isolated schedule). Then it ends at ``e`` whatever else happens meanwhile."""
        if flows[k] or gone_at[k] >= a:
            return False
        resolved.add(i)
        h = expected[k]
        while h and h[0][1] in resolved:
            heapq.heappop(h)
        if h and h[0][0] <= e:
            resolved.discard(i)
            heapq.heappush(h, (a, i))
            return False
        return True

    def reschedule(k: int, now: float) -> None:
        version[k] += 1
        timer_at[k] = -1.0
        if flows[k]:
            t = timer_at[k] = now + max(min(flows[k].values()) * len(flows[k]), 0.0)
            heapq.heappush(queue, (t, next(order), -1 - k, version[k]))

    def advance(k: int, now: float) -> None:
        f = flows[k]
        if f and now > last[k]:
            share = (now - last[k]) / len(f)
            for i in f:
                f[i] -= share
        last[k] = now

    def finish(i: int, t: float, todo: list[int]) -> None:
        end[i] = t
        for j in succ[i]:
            waiting[j] -= 1
            if t > ready[j]:
                ready[j] = t
            if waiting[j] == 0 and j in awaited:
                todo.append(stream_of[j])
        s = stream_of[i]
        pos[s] += 1
        free[s] = t

    def run(todo: list[int]) -> None:
        while todo:
            s = todo.pop()
            tasks = streams[s]
            while pos[s] < len(tasks):
                i = tasks[pos[s]]
                if i in on_link:  # its link ends it
                    break
                if waiting[i] > 0:
                    awaited.add(i)
                    break
                t = max(free[s], ready[i])
                k = link_of[i]
                if k < 0:
                    d = float(dur[i])
                    t = t + d if d > 0 else t
                else:
                    x, w = float(lat[i]), float(work[i])
                    t = t + x if x > 0 else t
                    if w > 0 and shared[k]:
                        if not alone(k, i, t, t + w):
                            on_link.add(i)
                            heapq.heappush(queue, (t, next(order), i, 0))
                            break
                        gone_at[k] = t + w
                    t = t + w if w > 0 else t
                finish(i, t, todo)

    # the state at t0: each stream's tasks that started before t0 are done, but for a transfer on a
    # shared link still under way at t0 (alone on it since it arrived: t0 is the first meeting) or
    # yet to arrive
    pending: list[int] = []
    for s, tasks in enumerate(streams):
        p = len(tasks)
        while p and start[tasks[p - 1]] >= t0:
            p -= 1
        i = tasks[p - 1] if p else -1
        k = link_of[i] if p else -1
        if k >= 0 and shared[k] and work[i] > 0 and end[i] >= t0:  # the last task it started is on its link
            p -= 1
            on_link.add(i)
            a = float(arrive[i])
            if a < t0:
                flows[k][i], last[k] = float(work[i]), a
                reschedule(k, a)
            else:
                heapq.heappush(queue, (a, next(order), i, 0))
        pos[s] = p
        free[s] = float(end[tasks[p - 1]]) if p else 0.0
        pending += tasks[p:]
    end[pending] = -1.0
    for j in pending:
        k = link_of[j]
        if k >= 0 and shared[k] and work[j] > 0 and j not in flows[k]:
            heapq.heappush(expected[k], (float(arrive[j]), j))
        waiting[j], ready[j] = 0, 0.0
        for i in cg.pred_lists[j]:
            e = float(end[i])
            if e < 0:
                waiting[j] += 1
            elif e > ready[j]:
                ready[j] = e
    run(list(range(len(streams))))
    while queue:
        now, _, what, ver = heapq.heappop(queue)
        if what >= 0:  # a transfer arrives on its link
            k = link_of[what]
            if timer_at[k] == now or gone_at[k] == now:  # and one leaves it at that instant
                return None
            resolved.add(what)
            advance(k, now)
            flows[k][what] = float(work[what])
            reschedule(k, now)
            continue
        k = -1 - what
        if ver != version[k]:  # a timer overtaken by a newer arrival or departure
            continue
        advance(k, now)
        eps = 1e-12 * max(1.0, now)
        gone = [i for i, left in flows[k].items() if left <= eps]
        for i in gone:
            del flows[k][i]
        if gone:
            gone_at[k] = now
        reschedule(k, now)
        todo: list[int] = []
        for i in gone:
            on_link.discard(i)
            finish(i, now, todo)
            todo.append(stream_of[i])
        run(todo)
    if end.min() < 0:
        return None  # the event replay names what never ran
    return float(end.max())


def _play(cg: CompiledGraph, dur: list[float], lat: list[float], work: list[float]) -> float:
    count = len(cg.nodes)
    waiting = cg.preds
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
