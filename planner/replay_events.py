"""The event part of :mod:`planner.replay`: simpy's semantics (:func:`planner.engine.play`) without
simpy, on a graph compiled by :func:`planner.replay.compile_graph`.

:func:`from_meeting` replays from the first instant two transfers meet on a link, taking what
happened before from the isolated schedule; :func:`play_events` replays a whole graph (the
fallback, and the one that names a deadlock). The event order is simpy's (time, then priority,
then the order events were scheduled) and a shared link's arithmetic is
:class:`planner.engine.Link`'s, so both give the engine's answer to the last bit.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING

import numpy as np

from planner.engine import DeadlockError

if TYPE_CHECKING:  # annotations only: planner.replay imports this module
    from planner.replay import CompiledGraph

_URGENT, _NORMAL = 0, 1  # simpy's priorities: a process's start, then every other event
_RESUME, _TIMER = 0, 1


def _advance(flows: dict[int, float], last: float, now: float) -> None:
    """Take from each transfer on a link its equal share of the time since ``last`` (the link's
    previous arrival or departure), as :meth:`planner.engine.Link._advance` does."""
    if flows and now > last:
        share = (now - last) / len(flows)
        for i in flows:
            flows[i] -= share


def _drained(flows: dict[int, float], now: float) -> list[int]:
    """The transfers on a link done at ``now`` (as :meth:`planner.engine.Link._on_timer` tells
    them), taken off it."""
    eps = 1e-12 * max(1.0, now)
    gone = [i for i, left in flows.items() if left <= eps]
    for i in gone:
        del flows[i]
    return gone


def from_meeting(
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
        _advance(flows[k], last[k], now)
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
        gone = _drained(flows[k], now)
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


def play_events(cg: CompiledGraph, dur: list[float], lat: list[float], work: list[float]) -> float:
    """The makespan, replaying every event of the graph as :func:`planner.engine.play` orders them
    (each stream a process, each shared link's timer versioned): the fallback where the isolated
    schedule and :func:`from_meeting` could disagree with the engine, and for a graph with a cycle,
    which it names (:class:`planner.engine.DeadlockError`)."""
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
        _advance(flows[k], last[k], now)
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
            for s in _drained(flows[arg], now):
                push(now, _NORMAL, _RESUME, s)
            reschedule(arg)
    if min(end, default=0.0) < 0:
        unfinished = [cg.nodes[i] for i in range(count) if end[i] < 0]
        raise DeadlockError(f"{len(unfinished)} tasks never ran, e.g. {unfinished[:3]}")
    return max(end, default=0.0)
