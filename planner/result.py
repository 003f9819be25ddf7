"""What every simulated result shares: the timeline it carries, its Chrome/Perfetto trace, the
step's price, and interval arithmetic for attributing a timeline's instants to categories.

A family's result schema (:mod:`planner.transformer.result`, :mod:`planner.recsys.result`) builds on
these; this module knows tasks, streams and intervals, not any workload.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, PrivateAttr

from planner.engine import Timeline


class TimelineResult(BaseModel):
    """A result that carries the simulated timeline it came from, and writes it as a trace."""

    _timeline: Timeline | None = PrivateAttr(default=None)
    _graph: Any = PrivateAttr(default=None)

    def attach(self, graph: Any, timeline: Timeline) -> None:
        """Keep the played graph and its timeline with the result (for the trace and the app's Gantt)."""
        self._graph = graph
        self._timeline = timeline

    def write_trace(self, path: str | Path) -> int:
        """Write the step's timeline as a Chrome trace (open in ui.perfetto.dev); returns events."""
        if self._timeline is None or self._graph is None:
            raise ValueError("this result carries no timeline (it was loaded, not simulated)")
        from planner.io import atomic_write_text

        events = trace_events(self._graph, self._timeline)
        atomic_write_text(path, json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}), field="trace")
        return len(events)


def step_price(cluster: Any, step_s: float) -> dict[str, Any]:
    """The price fields of a step on ``cluster``: per GPU-hour, per hour, per step, and the source."""
    price = cluster.usd_per_gpu_hour
    usd_hour = price * cluster.num_gpus if price is not None else None
    return {
        "usd_per_gpu_hour": price,
        "usd_per_hour": usd_hour,
        "usd_per_step": usd_hour * step_s / 3600 if usd_hour is not None else None,
        "price_source": cluster.price_source,
        "price_date": cluster.price_date,
    }


def cluster_summary(cluster: Any) -> dict[str, Any]:
    """The resolved hardware as a result's ``scenario.cluster`` reports it."""
    return {
        "name": cluster.name,
        "accelerator": cluster.accelerator.id,
        "num_gpus": cluster.num_gpus,
        "gpus_per_node": cluster.node.gpus_per_node,
        "nodes": cluster.num_nodes,
        "node_type": cluster.node.id,
        "scale_up_gb_s": cluster.node.scale_up.bandwidth_gb_s,
        "scale_out_gbps_per_gpu": cluster.node.scale_out_gbps_per_gpu,
        "instance": cluster.instance,
    }


def merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for lo, hi in a:
        cur = lo
        for blo, bhi in b:
            if bhi <= cur or blo >= hi:
                continue
            if blo > cur:
                out.append((cur, blo))
            cur = max(cur, bhi)
        if cur < hi:
            out.append((cur, hi))
    return out


def length(iv: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in iv)


MAX_DETAILED_EVENTS = 200_000


def trace_events(graph: Any, tl: Timeline) -> list[dict[str, Any]]:
    """Chrome trace events: one process per pipeline rank, one thread per stream; compute tasks
    are expanded into their layer segments (all of them while the trace stays under
    :data:`MAX_DETAILED_EVENTS`, else for the first and last micro-batch only)."""
    events: list[dict[str, Any]] = []
    tids: dict[str, int] = {}
    seg_total = 0
    for node in tl.nodes:
        for p, count in graph.nodes[node].get("passes", []):
            seg_total += len(p.segments) * count
    detailed_all = seg_total <= MAX_DETAILED_EVENTS
    names = {}
    for i, node in enumerate(tl.nodes):
        a = graph.nodes[node]
        stream = a["stream"]
        pid = a.get("rank", -1)
        if pid < 0:
            pid = 1_000_000
        tid = tids.setdefault(stream, len(tids) + 1)
        names[(pid, tid)] = stream.split("/")[-1]
        st, en = tl.start_s[i] * 1e6, tl.end_s[i] * 1e6
        events.append(
            {
                "name": a["label"],
                "cat": a["kind"],
                "ph": "X",
                "pid": pid,
                "tid": tid,
                "ts": st,
                "dur": en - st,
            }
        )
        passes = a.get("passes", [])
        mb = node[2] if isinstance(node, tuple) and len(node) >= 3 and isinstance(node[2], int) else 0
        if not passes or not (detailed_all or mb == 0):
            continue
        t = st
        for p, count in passes:
            for _ in range(count):
                for seg in p.segments:
                    dur = seg.seconds * 1e6
                    if dur > 0:
                        events.append(
                            {
                                "name": seg.label,
                                "cat": seg.kind,
                                "ph": "X",
                                "pid": pid,
                                "tid": tid,
                                "ts": t,
                                "dur": dur,
                            }
                        )
                    t += dur
    for (pid, tid), name in names.items():
        events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
    for pid in {p for p, _ in names}:
        label = "global" if pid == 1_000_000 else f"pipeline rank {pid}"
        events.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": label}})
    return events
