"""Plan: search the best layouts, the Pareto front of time against cost, and why the winner wins."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from planner.app.common import PENDING_KEY, calibration_option, catalog_ids, fmt, guarded, model_names, search_cached


def _inputs() -> tuple[str, tuple[str, str], int, dict[str, Any]]:
    ids = catalog_ids()
    sb = st.sidebar
    sb.header("Search")
    models = model_names()
    model = sb.selectbox("Model (preset)", models, index=models.index("gpt3-1.7b"), key="plan_model")
    kind = sb.radio("Hardware", ["accelerator", "instance"], key="plan_hw_kind", horizontal=True)
    default = "h100-sxm-80gb" if kind == "accelerator" else "p5.48xlarge"
    hw = sb.selectbox(kind.capitalize(), ids[kind], index=ids[kind].index(default), key=f"plan_{kind}")
    gpus = int(sb.number_input("GPUs (most)", min_value=1, value=8, step=1, key="plan_gpus"))
    min_gpus = int(sb.number_input("Fewest GPUs (0: a quarter)", min_value=0, value=0, step=1, key="plan_min_gpus"))
    gb = int(sb.number_input("Global batch (0: default)", min_value=0, value=0, step=1, key="plan_gb"))
    objective = sb.radio("Objective", ["time", "cost"], key="plan_objective", horizontal=True)
    top = int(sb.number_input("Top", min_value=1, max_value=50, value=10, key="plan_top"))
    tokens = float(
        sb.number_input("Tokens to train (0: none)", min_value=0.0, value=0.0, format="%.3g", key="plan_tokens")
    )
    opts: dict[str, Any] = {"objective": objective, "top": top}
    if min_gpus:
        opts["min_gpus"] = min_gpus
    if gb:
        opts["global_batch"] = gb
    if tokens:
        opts["tokens"] = tokens
    return model, (kind, hw), gpus, opts


def _row(sim: dict[str, Any]) -> dict[str, Any]:
    c = sim["cost"]
    return {
        "gpus": sim["gpus"],
        "layout": " ".join([sim["layout"]["schedule"], _label(sim["layout"])]),
        "step_time_s": sim["step_time_s"],
        "mfu": sim["mfu"],
        "tokens_per_s": sim["tokens_per_s"],
        "peak_gib": sim["memory"]["peak_gib"],
        "usd_per_million_tokens": c["usd_per_million_tokens"],
        "gpu_hours_per_step": c["gpu_hours_per_step"],
    }


def _label(lay: dict[str, Any]) -> str:
    parts = [f"tp{lay['tp']}", f"pp{lay['pp']}"] + ([f"vpp{lay['vpp']}"] if lay["vpp"] > 1 else [])
    parts += [f"dp{lay['dp']}", f"mb{lay['micro_batch']}", f"rc={lay['recompute']}", f"z{lay['zero_stage']}"]
    return " ".join(parts + (["sp"] if lay["sequence_parallel"] else []))


def _to_simulate(model: str, hardware: tuple[str, str], sim: dict[str, Any]) -> None:
    lay = sim["layout"]
    kind, hw = hardware
    st.session_state[PENDING_KEY] = {
        "model": model,
        "hw_kind": kind,
        kind: hw,
        "gpus": sim["gpus"],
        **{k: lay[k] for k in ("tp", "pp", "vpp", "cp", "ep", "micro_batch", "global_batch", "recompute")},
        "zero_stage": lay["zero_stage"],
        "sequence_parallel": lay["sequence_parallel"],
        "precision": lay["precision"],
        "schedule": lay["schedule"],
    }


def render() -> None:
    st.title("Plan: search the layouts")
    model, hardware, gpus, opts = _inputs()
    with st.spinner("Searching layouts..."):
        res = guarded(search_cached, model, hardware, gpus, tuple(sorted({**opts, **calibration_option()}.items())))
    if res is None:
        return
    st.caption(
        f"{res['enumerated']:,} layouts listed, {res['evaluated']:,} estimated, {res['fits']:,} fit, "
        f"{res['fully_simulated']} fully simulated; GPU counts {res['gpu_counts']}; global batch {res['global_batch']}"
    )
    table = pd.DataFrame([_row(s) for s in res["results"]])
    st.subheader("Ranked layouts")
    st.dataframe(table)
    if res["results"]:
        choice = st.selectbox("Row", range(len(res["results"])), format_func=lambda i: f"{i}: {table['layout'][i]}")
        if st.button("Open in Simulate", key="plan_to_sim"):
            _to_simulate(model, hardware, res["results"][choice])
            st.success("Loaded into Simulate: open the Simulate page.")
    st.subheader("Pareto front: time against cost")
    pts = pd.DataFrame(
        [{**_row(s), "pareto": False} for s in res["results"]] + [{**_row(s), "pareto": True} for s in res["pareto"]]
    )
    cost_col = "usd_per_million_tokens" if pts["usd_per_million_tokens"].notna().all() else "gpu_hours_per_step"
    chart = (
        alt.Chart(pts)
        .mark_point(filled=True, size=90)
        .encode(
            x=alt.X("step_time_s:Q", title="step time (s)"),
            y=alt.Y(f"{cost_col}:Q", title=cost_col),
            color=alt.Color("pareto:N"),
            shape="pareto:N",
            tooltip=["gpus", "layout", "step_time_s", cost_col, "mfu"],
        )
        .interactive()
    )
    st.altair_chart(chart)
    st.subheader("Why the winner wins")
    if res["results"]:
        w = res["results"][0]
        st.markdown(
            f"**{_label(w['layout'])}** on {w['gpus']} GPUs: step {fmt(w['step_time_s'], '.4g', ' s')}, MFU {w['mfu']:.1%}"
        )
    alts = [
        {
            "alternative": a["name"],
            "layout": a["layout"],
            "step_time_s": a["step_time_s"],
            "slower_by": a["slower_by"],
            "reason": a["reason"],
        }
        for a in res["alternatives"]
    ]
    if alts:
        st.dataframe(pd.DataFrame(alts))
    if res["rejected"]:
        st.caption("Dropped layouts by reason: " + ", ".join(f"{k}: {v:,}" for k, v in res["rejected"].items()))
    if res.get("run"):
        run = res["run"]
        st.info(
            f"Whole run: {run['steps']:,} steps, {run['wall_days']:.2f} days, {fmt(run['usd'], ',.0f')} USD "
            f"(goodput {run['goodput']['goodput']:.1%})"
        )
