"""Tables and altair charts built from what the API returns (no modelling here)."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

alt.data_transformers.disable_max_rows()

MAX_GANTT_ROWS = 40_000
"""Bars drawn at most in the timeline (a browser slows down beyond); the trace file has them all."""

KIND_COLOURS = {
    "forward": "#4c78a8",
    "backward": "#1f3f73",
    "recompute": "#72b7b2",
    "compute": "#6f8fb8",
    "overhead": "#bab0ac",
    "tp_comm": "#f58518",
    "cp_comm": "#e45756",
    "ep_comm": "#b279a2",
    "dp_comm": "#54a24b",
    "pp_comm": "#eeca3b",
    "optimizer": "#9d755d",
    "bubble": "#ffffff",
}
KIND_LABELS = {
    "forward": "forward",
    "backward": "backward",
    "recompute": "recomputation",
    "compute": "compute",
    "overhead": "host overhead",
    "tp_comm": "tensor-parallel comm.",
    "cp_comm": "context-parallel comm.",
    "ep_comm": "expert all-to-all",
    "dp_comm": "data-parallel comm.",
    "pp_comm": "pipeline send/recv",
    "optimizer": "optimizer",
    "bubble": "idle (bubble)",
}
"""Legend names of the timeline's kinds."""
INLINE_ORDER = ("recompute", "forward", "backward", "compute", "tp_comm", "cp_comm", "ep_comm", "overhead")


def _recompute_share(a: dict[str, Any]) -> float:
    """Seconds of a compute task's passes that recompute the forward (their segment labels say so)."""
    total = 0.0
    for p, count in a.get("passes") or ():
        total += count * sum(s.seconds for s in p.segments if s.kind == "compute" and s.label.startswith("recompute"))
    return total


def _split_compute(a: dict[str, Any]) -> dict[str, float]:
    """A compute task's in-line parts, its compute named forward or backward (by its label) and
    the recomputation of a backward task apart."""
    kinds = dict(a.get("kinds") or {})
    comp = kinds.pop("compute", 0.0)
    label = str(a.get("label", ""))
    if label[:1] == "F":
        kinds["forward"] = comp
    elif label[:1] in ("B", "W"):
        rc = min(comp, _recompute_share(a))
        kinds["recompute"] = rc
        kinds["backward"] = comp - rc
    else:
        kinds["compute"] = comp
    return {k: v for k, v in kinds.items() if v > 0}


def gantt_rows(graph: Any, tl: Any) -> list[dict[str, Any]]:
    """One bar per task of the timeline (per pipeline rank and stream), in milliseconds.

    A compute task's in-line parts (forward, backward, recomputation, tensor/context/expert-parallel
    collectives, host overhead) are drawn one after the other in proportion to their seconds, as
    the simulator reports them per task; the gaps on each rank's compute stream are drawn as
    ``bubble`` (idle) bars.
    """
    rows: list[dict[str, Any]] = []
    busy: dict[int, list[tuple[float, float]]] = {}
    for i, node in enumerate(tl.nodes):
        a = graph.nodes[node]
        rank = a.get("rank", -1)
        st, en = tl.start_s[i] * 1e3, tl.end_s[i] * 1e3
        stream = a["stream"].split("/")[-1]
        track = "global" if rank < 0 else f"rank {rank} {stream}"
        kinds = _split_compute(a) if a["kind"] == "compute" else {}
        total = sum(kinds.values())
        if total > 0:
            t = st
            for k in sorted(kinds, key=lambda k: INLINE_ORDER.index(k) if k in INLINE_ORDER else 99):
                d = (en - st) * kinds[k] / total
                rows.append({"track": track, "rank": rank, "kind": KIND_LABELS.get(k, k), "task": a["label"],
                             "start_ms": t, "end_ms": t + d})  # fmt: skip
                t += d
        else:
            rows.append({"track": track, "rank": rank, "kind": KIND_LABELS.get(a["kind"], a["kind"]),
                         "task": a["label"], "start_ms": st, "end_ms": en})  # fmt: skip
        if rank >= 0 and a["stream"].endswith("/compute"):
            busy.setdefault(rank, []).append((st, en))
    end = tl.makespan_s * 1e3
    idle = KIND_LABELS["bubble"]
    for rank, iv in busy.items():
        cur = 0.0
        for a, b in sorted(iv):
            if a > cur:
                rows.append({"track": f"rank {rank} compute", "rank": rank, "kind": idle, "task": "idle",
                             "start_ms": cur, "end_ms": a})  # fmt: skip
            cur = max(cur, b)
        if cur < end:
            rows.append({"track": f"rank {rank} compute", "rank": rank, "kind": idle, "task": "idle",
                         "start_ms": cur, "end_ms": end})  # fmt: skip
    return rows


_LABEL_COLOURS = {KIND_LABELS[k]: c for k, c in KIND_COLOURS.items()}


def _colour_scale(kinds: list[str]) -> alt.Scale:
    domain = [k for k in _LABEL_COLOURS if k in kinds] + sorted(k for k in kinds if k not in _LABEL_COLOURS)
    return alt.Scale(domain=domain, range=[_LABEL_COLOURS.get(k, "#999999") for k in domain])


TRACK_PX = 26
"""Height of one timeline track: every track keeps its label, however many ranks there are."""
_LEGEND = {"orient": "bottom", "columns": 4, "labelLimit": 0, "symbolStrokeColor": "#888888"}


def gantt_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    """The step's timeline: one track per rank and stream, a fixed height per track, full legend."""
    df = pd.DataFrame(rows[:MAX_GANTT_ROWS])
    return (
        alt.Chart(df)
        .mark_bar(stroke="#888888", strokeWidth=0.2)
        .encode(
            x=alt.X("start_ms:Q", title="time in the step (ms)"),
            x2="end_ms:Q",
            y=alt.Y(
                "track:N",
                title=None,
                sort=sorted(df["track"].unique(), key=_track_key),
                axis=alt.Axis(labelLimit=0, labelOverlap=False),
            ),  # fmt: skip
            color=alt.Color("kind:N", scale=_colour_scale(list(df["kind"].unique())), title=None, legend=_LEGEND),
            tooltip=[
                alt.Tooltip("track:N", title="track"),
                alt.Tooltip("kind:N", title="kind"),
                alt.Tooltip("task:N", title="task"),
                alt.Tooltip("start_ms:Q", format=".3f", title="start (ms)"),
                alt.Tooltip("end_ms:Q", format=".3f", title="end (ms)"),
            ],
        )
        .properties(height=alt.Step(TRACK_PX))
    )


def _track_key(track: str) -> tuple[int, str]:
    parts = track.split()
    return (int(parts[1]), track) if len(parts) > 1 and parts[1].isdigit() else (10**9, track)


def breakdown_rows(bd: dict[str, Any], recsys: bool) -> list[dict[str, Any]]:
    """The step's parts on the busiest rank, readable names, recomputation apart from compute."""
    if recsys:
        parts = (("embedding_s", "embedding lookups", "forward"), ("dense_compute_s", "dense layers", "forward"),
                 ("all_to_all_exposed_s", "embedding all-to-all (exposed)", "ep_comm"),
                 ("all_reduce_exposed_s", "gradient all-reduce (exposed)", "dp_comm"),
                 ("optimizer_s", "optimizer", "optimizer"), ("host_s", "host overhead", "overhead"),
                 ("idle_s", "idle", "bubble"))  # fmt: skip
        return [{"part": n, "kind": KIND_LABELS[k], "seconds": bd[f]} for f, n, k in parts if f in bd]
    rc = bd.get("recompute_s", 0.0)
    rows = [
        ("compute (forward and backward)", "forward", bd["compute_s"] - rc),
        ("recomputation", "recompute", rc),
        ("tensor-parallel comm.", "tp_comm", bd["tp_comm_s"]),
        ("context-parallel comm.", "cp_comm", bd["cp_comm_s"]),
        ("expert all-to-all", "ep_comm", bd["ep_comm_s"]),
        ("data-parallel comm. (exposed)", "dp_comm", bd["dp_comm_exposed_s"]),
        ("pipeline send/recv (exposed)", "pp_comm", bd["pp_comm_exposed_s"]),
        ("pipeline bubble", "bubble", bd["bubble_s"]),
        ("optimizer", "optimizer", bd["optimizer_s"]),
        ("host overhead", "overhead", bd["host_overhead_s"]),
    ]
    return [{"part": n, "kind": KIND_LABELS[k], "seconds": v} for n, k, v in rows if v > 0 or k == "forward"]


def breakdown_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    """Horizontal bars of :func:`breakdown_rows`, in milliseconds."""
    df = pd.DataFrame(rows)
    df["ms"] = df["seconds"] * 1e3
    return (
        alt.Chart(df)
        .mark_bar(stroke="#888888", strokeWidth=0.5)
        .encode(
            x=alt.X("ms:Q", title="ms of the step (busiest rank)"),
            y=alt.Y("part:N", sort=None, title=None, axis=alt.Axis(labelLimit=0)),
            color=alt.Color("kind:N", scale=_colour_scale(list(df["kind"])), legend=None),
            tooltip=[alt.Tooltip("part:N", title="part"), alt.Tooltip("ms:Q", format=",.2f", title="ms")],
        )
    )


MEMORY_PARTS = ("weights_gib", "gradients_gib", "optimizer_gib", "activations_gib", "reserved_gib")
RECSYS_MEMORY_PARTS = ("embeddings_gib", "dense_gib", "activations_gib", "reserved_gib")


def memory_chart(mem: dict[str, Any], parts: tuple[str, ...] = MEMORY_PARTS) -> alt.LayerChart:
    """The peak memory per accelerator by part, with the capacity as a red line."""
    names = [p.removesuffix("_gib").replace("_", " ") for p in parts]
    df = pd.DataFrame([{"bar": "peak", "part": n, "GiB": mem[p]} for p, n in zip(parts, names, strict=True)])
    bars = (
        alt.Chart(df)
        .mark_bar(size=30)
        .encode(
            x=alt.X("sum(GiB):Q", title="GiB per accelerator"),
            y=alt.Y("bar:N", title=None),
            color=alt.Color("part:N", sort=names, title=None, legend={**_LEGEND, "columns": 5}),
            order=alt.Order("order:Q"),
            tooltip=["part", alt.Tooltip("GiB:Q", format=".2f")],
        )
        .transform_calculate(order=f"indexof({names}, datum.part)")
    )
    cap = (
        alt.Chart(pd.DataFrame({"capacity": [mem["capacity_gib"]]}))
        .mark_rule(color="red", strokeWidth=2)
        .encode(x="capacity:Q", tooltip=[alt.Tooltip("capacity:Q", title="capacity GiB")])
    )
    return (bars + cap).properties(height=44)


def _t(df: pd.DataFrame, c: str) -> str:
    numeric = pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool
    return f"{c}:{'Q' if numeric else 'N'}"


def scatter(df: pd.DataFrame, x: str, y: str, colour: str | None, tooltip: list[str]) -> alt.Chart:
    """Sweep points: a GPU axis on a log scale, colours categorical (each value its own colour)."""
    from planner.units_format import column_kind, header

    def title(c: str) -> str:
        return header(c) + (" (s)" if column_kind(c) == "seconds" else "")

    def axis(c: str, enc: Any) -> Any:
        log = c == "gpus" or (
            column_kind(c) == "seconds" and pd.api.types.is_numeric_dtype(df[c]) and (df[c] > 0).all()
        )
        return enc(_t(df, c), title=title(c), scale=alt.Scale(type="log", zero=False) if log else alt.Scale(zero=False))

    enc: dict[str, Any] = {"x": axis(x, alt.X), "y": axis(y, alt.Y), "tooltip": tooltip}
    if colour:
        enc["color"] = alt.Color(f"{colour}:N", title=header(colour), scale=alt.Scale(scheme="category10"),
                                 legend=alt.Legend(labelLimit=0))  # fmt: skip
    return alt.Chart(df).mark_circle(size=90, opacity=0.85).encode(**enc).interactive()


def pareto_chart(points: pd.DataFrame, x: str, y: str, x_title: str, y_title: str) -> alt.LayerChart:
    """Layouts as points labelled with their GPU count, the Pareto front drawn as a step line;
    the axes start near the data, not at zero."""
    base = alt.Chart(points)
    dots = base.mark_point(filled=True).encode(
        x=alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(zero=False)),
        y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(zero=False)),
        color=alt.Color("GPUs label:N", title="GPUs", scale=alt.Scale(scheme="category10")),
        shape=alt.Shape(
            "front:N", title=None, scale=alt.Scale(domain=["on the front", "dominated"], range=["diamond", "circle"])
        ),  # fmt: skip
        size=alt.Size("front:N", legend=None, scale=alt.Scale(domain=["on the front", "dominated"], range=[160, 60])),
        tooltip=["GPUs", "layout", alt.Tooltip(f"{x}:Q", format=",.3g"), alt.Tooltip(f"{y}:Q", format=",.4g")],
    )
    labels = (
        base.transform_filter(alt.datum.front == "on the front")
        .mark_text(dx=10, dy=-10, fontSize=12)
        .encode(x=f"{x}:Q", y=f"{y}:Q", text="GPUs label:N")
    )
    front = (
        base.transform_filter(alt.datum.front == "on the front")
        .mark_line(interpolate="step-after", color="#555555", strokeWidth=1.5, strokeDash=[4, 2])
        .encode(x=f"{x}:Q", y=f"{y}:Q", order=f"{x}:Q")
    )
    return (front + dots + labels).interactive()


def compare_chart(df: pd.DataFrame, deadline_days: float | None, budget_usd: float | None) -> alt.LayerChart:
    """Days against dollars per instance type, with the deadline and the budget as lines."""
    base = alt.Chart(df)
    dots = base.mark_circle(size=140).encode(
        x=alt.X("days:Q", title="days to train", scale=alt.Scale(zero=False)),
        y=alt.Y("usd:Q", title="dollars to train", scale=alt.Scale(zero=False), axis=alt.Axis(format="$,.0f")),
        color=alt.Color(
            "instance:N",
            scale=alt.Scale(scheme="category10"),
            legend=alt.Legend(labelLimit=0, orient="bottom", columns=3),
        ),  # fmt: skip
        tooltip=["instance", "gpus", alt.Tooltip("days:Q", format=",.2f"), alt.Tooltip("usd:Q", format="$,.0f")],
    )
    layers: list[Any] = [dots]
    if deadline_days:
        layers.append(alt.Chart(pd.DataFrame({"days": [deadline_days]})).mark_rule(color="red", strokeDash=[6, 3])
                      .encode(x="days:Q", tooltip=[alt.Tooltip("days:Q", title="deadline (days)")]))  # fmt: skip
    if budget_usd:
        layers.append(alt.Chart(pd.DataFrame({"usd": [budget_usd]})).mark_rule(color="orange", strokeDash=[6, 3])
                      .encode(y="usd:Q", tooltip=[alt.Tooltip("usd:Q", title="budget ($)", format="$,.0f")]))  # fmt: skip
    return alt.layer(*layers)
