"""The result of one simulated step, its breakdown, and the Chrome/Perfetto trace.

One pydantic schema, :class:`StepResult`, is what every face prints (``--json`` dumps it).
The breakdown is read off the timeline of the busiest pipeline rank: every instant of the step is
either compute, in-line communication on the compute stream (tensor/context/expert parallel),
waiting on an exposed transfer (data-parallel reduction, pipeline send), pipeline bubble (waiting
on nothing of its own), or the optimizer; the parts add up to the step time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

from planner.energy import Energy
from planner.engine import Timeline
from planner.memory import Memory


class Breakdown(BaseModel):
    """Where the step's time goes on the busiest rank; the parts sum to ``step_time_s``."""

    compute_s: float = Field(description="kernels doing model math (GEMMs, attention, norms, ...)")
    tp_comm_s: float = Field(description="tensor/sequence-parallel collectives in line with compute")
    cp_comm_s: float = Field(description="context-parallel exchange not hidden behind attention")
    ep_comm_s: float = Field(description="expert-parallel all-to-all")
    dp_comm_exposed_s: float = Field(description="data-parallel reduction / ZeRO gathers not overlapped")
    pp_comm_exposed_s: float = Field(description="pipeline sends waited on")
    exposed_comm_s: float = Field(description="sum of all communication on the critical path")
    bubble_s: float = Field(description="pipeline bubble: the rank waits for other stages")
    optimizer_s: float = Field(description="gradient-norm sync and optimizer step")
    host_overhead_s: float = Field(description="the GPU idles while the host issues small kernels")
    recompute_s: float = Field(description="part of compute_s spent recomputing activations")
    busiest_rank: int = Field(description="pipeline rank the breakdown describes")


class Cost(BaseModel):
    usd_per_gpu_hour: float | None
    usd_per_hour: float | None
    usd_per_step: float | None
    usd_per_million_tokens: float | None
    price_source: str | None
    price_date: str | None


class TimelineResult(BaseModel):
    """A result that carries the simulated timeline it came from, and writes it as a trace."""

    _timeline: Timeline | None = PrivateAttr(default=None)
    _graph: Any = PrivateAttr(default=None)

    def write_trace(self, path: str | Path) -> int:
        """Write the step's timeline as a Chrome trace (open in ui.perfetto.dev); returns events."""
        if self._timeline is None or self._graph is None:
            raise ValueError("this result carries no timeline (it was loaded, not simulated)")
        events = trace_events(self._graph, self._timeline)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)
        return len(events)


class StepResult(TimelineResult):
    """Prediction for one training step (one optimizer step over the global batch)."""

    step_time_s: float
    mfu: float = Field(description="model FLOPs/s / (GPUs x dense peak of the precision)")
    hfu: float = Field(description="as MFU, counting recomputed FLOPs too")
    tokens_per_s: float
    samples_per_s: float
    model_tflops_per_gpu: float
    hardware_tflops_per_gpu: float
    model_flops_per_step: float
    breakdown: Breakdown
    memory: Memory
    cost: Cost
    scenario: dict[str, Any]
    tasks: int = Field(description="tasks in the simulated step graph")
    calibration: str
    energy: Energy | None = Field(default=None, description="kWh, CO2, electricity $ (None: no power figure)")


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


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
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


def _subtract(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
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


def _length(iv: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in iv)


def breakdown(graph: Any, tl: Timeline, ranks: int) -> Breakdown:
    """Attribute every instant of the step on the busiest rank to one category."""
    per_rank: dict[int, dict[str, Any]] = {
        r: {"busy": [], "kinds": {}, "dp": [], "pp": [], "opt": 0.0, "rec": 0.0} for r in range(ranks)
    }
    sync_s = 0.0
    for i, node in enumerate(tl.nodes):
        a = graph.nodes[node]
        r = a.get("rank", -1)
        st, en = tl.start_s[i], tl.end_s[i]
        if r < 0:
            sync_s += en - st
            continue
        d = per_rank[r]
        kind = a["kind"]
        if a["stream"].endswith("/compute"):
            d["busy"].append((st, en))
            if kind == "optimizer":
                d["opt"] += en - st
            for k, sec in a.get("kinds", {}).items():
                d["kinds"][k] = d["kinds"].get(k, 0.0) + sec
            for p, count in a.get("passes", []):
                if any(seg.label.startswith("recompute") for seg in p.segments):
                    d["rec"] += p.seconds_of("compute") * count
        elif kind == "dp_comm":
            d["dp"].append((st, en))
        elif kind == "pp_comm":
            d["pp"].append((st, en))
    # incoming sends count as pipeline communication for the receiver too
    for i, node in enumerate(tl.nodes):
        a = graph.nodes[node]
        if a["kind"] == "pp_comm" and isinstance(node, tuple) and len(node) == 3:
            tag, vs, mb = node
            dst = (vs + 1) if tag == "SF" else (vs - 1)
            recv = ("F" if tag == "SF" else "B", dst, mb)  # the pass that waits for it (DualPipe: either way)
            to = graph.nodes[recv].get("rank", dst % ranks) if recv in graph else dst % ranks
            per_rank[to]["pp"].append((tl.start_s[i], tl.end_s[i]))
    busiest = max(per_rank, key=lambda r: (_length(_merge(per_rank[r]["busy"])), -r))
    d = per_rank[busiest]
    span = [(0.0, tl.makespan_s)]
    busy = _merge(d["busy"])
    idle = _subtract(span, busy)
    dp_iv = _merge(d["dp"])
    dp_exp = _overlap(idle, dp_iv)
    rest = _subtract(idle, dp_iv)
    pp_exp = _overlap(rest, _merge(d["pp"]))
    bubble = _length(rest) - _length(pp_exp)
    kinds = d["kinds"]
    tp, cp, ep = kinds.get("tp_comm", 0.0), kinds.get("cp_comm", 0.0), kinds.get("ep_comm", 0.0)
    dp_s, pp_s = _length(dp_exp), _length(pp_exp)
    # The optimizer phase includes waiting on the global gradient-norm sync.
    return Breakdown(
        compute_s=kinds.get("compute", 0.0),
        tp_comm_s=tp,
        cp_comm_s=cp,
        ep_comm_s=ep,
        dp_comm_exposed_s=dp_s,
        pp_comm_exposed_s=pp_s,
        exposed_comm_s=tp + cp + ep + dp_s + pp_s,
        bubble_s=max(0.0, bubble),
        optimizer_s=d["opt"],
        host_overhead_s=kinds.get("overhead", 0.0),
        recompute_s=d["rec"],
        busiest_rank=busiest,
    )


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


# ------------------------------------------------------------------------ recommendation models


class RecsysBreakdown(BaseModel):
    """Where a recommendation step's time goes on the slowest rank; the parts sum to the step."""

    embedding_s: float = Field(description="embedding lookups, gradient scatter and sparse optimizer")
    all_to_all_exposed_s: float = Field(description="embedding all-to-all (and row-wise collectives) waited on")
    dense_compute_s: float = Field(description="bottom MLP, interaction, top MLP, casts")
    all_reduce_exposed_s: float = Field(description="dense gradient all-reduce waited on")
    optimizer_s: float = Field(description="dense optimizer step")
    host_s: float = Field(description="per-step host overhead no kernel hides")
    idle_s: float = Field(description="waiting on nothing attributable (should be ~0)")
    compute_s: float = Field(description="embedding_s + dense_compute_s")
    exposed_comm_s: float = Field(description="all_to_all_exposed_s + all_reduce_exposed_s")
    bubble_s: float = 0.0
    slowest_rank: int = Field(description="rank of the sharding plan this timeline follows")


class RecsysMemory(BaseModel):
    """Memory of the fullest accelerator (GiB) and what every rank holds."""

    embeddings_gib: float = Field(description="embedding shards: weights + sparse optimizer state (+ caches)")
    dense_gib: float = Field(description="MLP weights, gradients, optimizer state")
    activations_gib: float
    reserved_gib: float
    peak_gib: float
    capacity_gib: float
    fits: bool
    rank: int
    host_gib_per_node: float = Field(description="embedding shards kept in host memory, fullest node")
    per_rank: list[dict[str, Any]] = Field(description="rank, hbm_gib, host_gib and the table shards it holds")


class RecsysCost(BaseModel):
    usd_per_gpu_hour: float | None
    usd_per_hour: float | None
    usd_per_step: float | None
    usd_per_billion_samples: float | None
    price_source: str | None
    price_date: str | None


class RecsysStepResult(TimelineResult):
    """Prediction for one training step of a recommendation model (one optimizer step)."""

    kind: str = "recsys"
    step_time_s: float
    samples_per_s: float
    mfu: float = Field(description="dense-part model FLOPs/s / (GPUs x dense peak of the precision)")
    model_tflops_per_gpu: float
    dense_flops_per_step: float
    breakdown: RecsysBreakdown
    memory: RecsysMemory
    cost: RecsysCost
    sharding: dict[str, Any] = Field(description="the plan: options per sharding type, per-table choice")
    scenario: dict[str, Any]
    tasks: int
    calibration: str
    energy: Energy | None = Field(default=None, description="kWh, CO2, electricity $ (None: no power figure)")


def recsys_breakdown(graph: Any, tl: Timeline, rank: int) -> RecsysBreakdown:
    """Attribute every instant of the step on the representative rank: compute by kind, idle time
    to the all-to-all first, then the all-reduce, then idle."""
    busy: dict[str, list[tuple[float, float]]] = {"embedding": [], "dense": [], "optimizer": [], "host": []}
    comm: dict[str, list[tuple[float, float]]] = {"a2a_comm": [], "dp_comm": []}
    for i, node in enumerate(tl.nodes):
        a = graph.nodes[node]
        iv = (tl.start_s[i], tl.end_s[i])
        if a["stream"].endswith("/compute"):
            busy.setdefault(a["kind"], []).append(iv)
        elif a["kind"] in comm:
            comm[a["kind"]].append(iv)
    all_busy = _merge([iv for ivs in busy.values() for iv in ivs])
    idle = _subtract([(0.0, tl.makespan_s)], all_busy)
    a2a = _overlap(idle, _merge(comm["a2a_comm"]))
    rest = _subtract(idle, _merge(comm["a2a_comm"]))
    ar = _overlap(rest, _merge(comm["dp_comm"]))
    emb = _length(_merge(busy["embedding"]))
    dense = _length(_merge(busy["dense"]))
    return RecsysBreakdown(
        embedding_s=emb,
        all_to_all_exposed_s=_length(a2a),
        dense_compute_s=dense,
        all_reduce_exposed_s=_length(ar),
        optimizer_s=_length(_merge(busy["optimizer"])),
        host_s=_length(_merge(busy["host"])),
        idle_s=max(0.0, _length(rest) - _length(ar)),
        compute_s=emb + dense,
        exposed_comm_s=_length(a2a) + _length(ar),
        slowest_rank=rank,
    )
