"""Tables and altair charts built from what the API returns (no modelling here)."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

alt.data_transformers.disable_max_rows()

MAX_GANTT_ROWS = 40_000
"""Bars drawn at most in the timeline (a browser slows down beyond); the trace file has them all."""

KIND_COLOURS = {
    "compute": "#4c78a8",
    "recompute": "#72b7b2",
    "overhead": "#bab0ac",
    "tp_comm": "#f58518",
    "cp_comm": "#e45756",
    "ep_comm": "#b279a2",
    "dp_comm": "#54a24b",
    "pp_comm": "#eeca3b",
    "optimizer": "#9d755d",
    "bubble": "#ffffff",
}
INLINE_ORDER = ("compute", "recompute", "tp_comm", "cp_comm", "ep_comm", "overhead")


def gantt_rows(graph: Any, tl: Any) -> list[dict[str, Any]]:
    """One bar per task of the timeline (per pipeline rank and stream), in milliseconds.

    A compute task's in-line parts (tensor/context/expert-parallel collectives, host overhead)
    are drawn one after the other in proportion to their seconds, as the simulator reports them
    per task; the gaps on each rank's compute stream are drawn as ``bubble`` (idle) bars.
    """
    rows: list[dict[str, Any]] = []
    busy: dict[int, list[tuple[float, float]]] = {}
    for i, node in enumerate(tl.nodes):
        a = graph.nodes[node]
        rank = a.get("rank", -1)
        st, en = tl.start_s[i] * 1e3, tl.end_s[i] * 1e3
        stream = a["stream"].split("/")[-1]
        track = "global" if rank < 0 else f"rank {rank} {stream}"
        kinds = a.get("kinds") or {}
        total = sum(kinds.values())
        if a["kind"] == "compute" and total > 0:
            t = st
            for k in sorted(kinds, key=lambda k: INLINE_ORDER.index(k) if k in INLINE_ORDER else 99):
                d = (en - st) * kinds[k] / total
                if d > 0:
                    rows.append(
                        {"track": track, "rank": rank, "kind": k, "task": a["label"], "start_ms": t, "end_ms": t + d}
                    )
                t += d
        else:
            rows.append(
                {"track": track, "rank": rank, "kind": a["kind"], "task": a["label"], "start_ms": st, "end_ms": en}
            )
        if rank >= 0 and a["stream"].endswith("/compute"):
            busy.setdefault(rank, []).append((st, en))
    end = tl.makespan_s * 1e3
    for rank, iv in busy.items():
        cur = 0.0
        for a, b in sorted(iv):
            if a > cur:
                rows.append({"track": f"rank {rank} compute", "rank": rank, "kind": "bubble", "task": "idle",
                             "start_ms": cur, "end_ms": a})  # fmt: skip
            cur = max(cur, b)
        if cur < end:
            rows.append({"track": f"rank {rank} compute", "rank": rank, "kind": "bubble", "task": "idle",
                         "start_ms": cur, "end_ms": end})  # fmt: skip
    return rows


def _colour_scale(kinds: list[str]) -> alt.Scale:
    domain = [k for k in KIND_COLOURS if k in kinds] + sorted(k for k in kinds if k not in KIND_COLOURS)
    return alt.Scale(domain=domain, range=[KIND_COLOURS.get(k, "#999999") for k in domain])


def gantt_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    df = pd.DataFrame(rows[:MAX_GANTT_ROWS])
    height = max(120, 28 * df["track"].nunique())
    return (
        alt.Chart(df)
        .mark_bar(stroke="#888888", strokeWidth=0.2)
        .encode(
            x=alt.X("start_ms:Q", title="time in the step (ms)"),
            x2="end_ms:Q",
            y=alt.Y("track:N", title=None, sort=sorted(df["track"].unique(), key=_track_key)),
            color=alt.Color("kind:N", scale=_colour_scale(list(df["kind"].unique())), title="kind"),
            tooltip=[
                "track",
                "kind",
                "task",
                alt.Tooltip("start_ms:Q", format=".3f"),
                alt.Tooltip("end_ms:Q", format=".3f"),
            ],
        )
        .properties(height=height)
    )


def _track_key(track: str) -> tuple[int, str]:
    parts = track.split()
    return (int(parts[1]), track) if len(parts) > 1 and parts[1].isdigit() else (10**9, track)


BREAKDOWN_PARTS = (
    ("compute_s", "compute"),
    ("tp_comm_s", "tp_comm"),
    ("cp_comm_s", "cp_comm"),
    ("ep_comm_s", "ep_comm"),
    ("dp_comm_exposed_s", "dp_comm"),
    ("pp_comm_exposed_s", "pp_comm"),
    ("bubble_s", "bubble"),
    ("optimizer_s", "optimizer"),
    ("host_overhead_s", "overhead"),
)


RECSYS_BREAKDOWN_PARTS = (
    ("embedding_s", "compute"),
    ("dense_compute_s", "compute"),
    ("all_to_all_exposed_s", "ep_comm"),
    ("all_reduce_exposed_s", "dp_comm"),
    ("optimizer_s", "optimizer"),
    ("host_s", "overhead"),
    ("idle_s", "bubble"),
)


def breakdown_chart(bd: dict[str, Any], parts: tuple[tuple[str, str], ...] = BREAKDOWN_PARTS) -> alt.Chart:
    df = pd.DataFrame([{"part": field, "kind": kind, "seconds": bd[field]} for field, kind in parts if field in bd])
    return (
        alt.Chart(df)
        .mark_bar(stroke="#888888", strokeWidth=0.5)
        .encode(
            x=alt.X("seconds:Q", title="seconds of the step (busiest rank)"),
            y=alt.Y("part:N", sort=None, title=None),
            color=alt.Color("kind:N", scale=_colour_scale(list(df["kind"])), legend=None),
            tooltip=["part", alt.Tooltip("seconds:Q", format=".4f")],
        )
    )


MEMORY_PARTS = ("weights_gib", "gradients_gib", "optimizer_gib", "activations_gib", "reserved_gib")
RECSYS_MEMORY_PARTS = ("embeddings_gib", "dense_gib", "activations_gib", "reserved_gib")


def memory_chart(mem: dict[str, Any], parts: tuple[str, ...] = MEMORY_PARTS) -> alt.LayerChart:
    df = pd.DataFrame([{"bar": "peak", "part": p.removesuffix("_gib"), "GiB": mem[p]} for p in parts])
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("sum(GiB):Q", title="GiB per accelerator"),
            y=alt.Y("bar:N", title=None),
            color=alt.Color("part:N", sort=[p.removesuffix("_gib") for p in parts]),
            order=alt.Order("order:Q"),
            tooltip=["part", alt.Tooltip("GiB:Q", format=".2f")],
        )
        .transform_calculate(order=f"indexof({[p.removesuffix('_gib') for p in parts]}, datum.part)")
    )
    cap = (
        alt.Chart(pd.DataFrame({"capacity": [mem["capacity_gib"]]}))
        .mark_rule(color="red", strokeWidth=2)
        .encode(x="capacity:Q", tooltip=[alt.Tooltip("capacity:Q", title="capacity GiB")])
    )
    return (bars + cap).properties(height=90)


def scatter(df: pd.DataFrame, x: str, y: str, colour: str | None, tooltip: list[str]) -> alt.Chart:
    def t(c: str) -> str:
        return f"{c}:{'Q' if pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool else 'N'}"

    enc: dict[str, Any] = {"x": alt.X(t(x), title=x), "y": alt.Y(t(y), title=y), "tooltip": tooltip}
    if colour:
        enc["color"] = alt.Color(t(colour), title=colour)
    return alt.Chart(df).mark_circle(size=80).encode(**enc).interactive()
