"""The discrete-event engine: plays a task graph on streams and shared links with simpy.

It knows tasks, streams and links, nothing about transformers. A graph builder (one per workload
family) produces a ``networkx.DiGraph`` whose nodes carry:

``stream``   the stream that runs the task (a CUDA-stream-like FIFO: one task at a time, in
             ``order``); tasks on different streams run concurrently;
``order``    issue order on its stream (ties broken by insertion order);
``duration`` busy time in seconds, for a task that uses no link;
``latency`` / ``transfer`` / ``link``
             for a transfer: a fixed latency, then ``transfer`` seconds of work on the shared link
             named ``link``. Concurrent transfers on one link share its bandwidth equally
             (processor sharing), so two flows take twice as long as one;
``kind``     a category for the report (compute, tp_comm, pp_comm, dp_comm, ...).

Edges are finish-to-start dependencies. :func:`play` returns the start and end of every task.
Every ``duration``, ``latency`` and ``transfer`` must be a finite number >= 0: a NaN or infinite
one would never let simulated time pass its event (the processor-sharing link never drains), so
:func:`play` refuses it up front with one line naming the task instead of looping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import simpy

from planner.errors import PlannerInputError

TIMED_FIELDS = ("duration", "latency", "transfer")


@dataclass
class Timeline:
    """Start and end time of every task, in the graph's node order."""

    nodes: list[Any]
    start_s: list[float]
    end_s: list[float]
    makespan_s: float
    index: dict[Any, int] = field(default_factory=dict)

    def span(self, node: Any) -> tuple[float, float]:
        i = self.index[node]
        return self.start_s[i], self.end_s[i]


class Link:
    """A link whose bandwidth is shared equally by the transfers on it (processor sharing)."""

    def __init__(self, env: simpy.Environment, name: str) -> None:
        self.env = env
        self.name = name
        self.flows: dict[simpy.Event, float] = {}
        self._last = 0.0
        self._version = 0

    def transfer(self, work_s: float) -> simpy.Event:
        """Start a transfer needing ``work_s`` seconds of the link alone; fires when done."""
        done = self.env.event()
        if work_s <= 0:
            done.succeed()
            return done
        self._advance()
        self.flows[done] = work_s
        self._reschedule()
        return done

    def _advance(self) -> None:
        now = self.env.now
        n = len(self.flows)
        if n and now > self._last:
            share = (now - self._last) / n
            for f in self.flows:
                self.flows[f] -= share
        self._last = now

    def _reschedule(self) -> None:
        self._version += 1
        if not self.flows:
            return
        version = self._version
        wait = min(self.flows.values()) * len(self.flows)
        timer = self.env.timeout(max(wait, 0.0))
        timer.callbacks.append(lambda _ev: self._on_timer(version))

    def _on_timer(self, version: int) -> None:
        if version != self._version:
            return  # a newer arrival or departure rescheduled
        self._advance()
        eps = 1e-12 * max(1.0, self.env.now)
        finished = [f for f, left in self.flows.items() if left <= eps]
        for f in finished:
            del self.flows[f]
            f.succeed()
        self._reschedule()


class DeadlockError(RuntimeError):
    """The graph could not finish: a cycle, or stream orders that contradict its edges."""


def check_times(nodes: list[Any], attrs: list[dict[str, Any]]) -> None:
    """Refuse a task whose duration, latency or transfer is not a finite number >= 0 (see the module)."""
    for node, a in zip(nodes, attrs, strict=True):
        for name in TIMED_FIELDS:
            x = a.get(name)
            if x is not None and not (math.isfinite(x) and x >= 0):
                raise PlannerInputError(
                    f"task {a.get('label', node)}",
                    f"{name} must be a finite number of seconds >= 0, got {x} (a non-finite or negative input figure)",
                )


def play(graph: nx.DiGraph) -> Timeline:
    """Simulate ``graph`` and return when each task started and ended."""
    env = simpy.Environment()
    nodes = list(graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    count = len(nodes)
    attrs = [graph.nodes[n] for n in nodes]
    check_times(nodes, attrs)
    waiting = [graph.in_degree(n) for n in nodes]
    succ = [[index[s] for s in graph.successors(n)] for n in nodes]
    ready_ev: list[simpy.Event | None] = [None] * count
    start = [0.0] * count
    end = [-1.0] * count

    streams: dict[str, list[int]] = {}
    for i, a in enumerate(attrs):
        streams.setdefault(a["stream"], []).append(i)
    for tasks in streams.values():
        tasks.sort(key=lambda i: attrs[i].get("order", 0))
    links: dict[str, Link] = {}

    def finish(i: int) -> None:
        end[i] = env.now
        for j in succ[i]:
            waiting[j] -= 1
            if waiting[j] == 0 and ready_ev[j] is not None:
                ready_ev[j].succeed()  # type: ignore[union-attr]

    def run_stream(tasks: list[int]):  # noqa: ANN202 - a simpy process
        for i in tasks:
            if waiting[i] > 0:
                ev = env.event()
                ready_ev[i] = ev
                yield ev
            start[i] = env.now
            a = attrs[i]
            link = a.get("link")
            if link is None:
                d = a.get("duration", 0.0)
                if d > 0:
                    yield env.timeout(d)
            else:
                lat = a.get("latency", 0.0)
                if lat > 0:
                    yield env.timeout(lat)
                lk = links.get(link)
                if lk is None:
                    lk = links[link] = Link(env, link)
                yield lk.transfer(a.get("transfer", 0.0))
            finish(i)

    for tasks in streams.values():
        env.process(run_stream(tasks))
    env.run()
    unfinished = [nodes[i] for i in range(count) if end[i] < 0]
    if unfinished:
        raise DeadlockError(f"{len(unfinished)} tasks never ran, e.g. {unfinished[:3]}")
    return Timeline(nodes=nodes, start_s=start, end_s=end, makespan_s=max(end, default=0.0), index=index)
