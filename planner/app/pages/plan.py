"""Plan: search the best layouts, the whole run's days against dollars, and why the winner wins."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from planner.app import charts
from planner.app.common import PENDING_KEY, calibration_option, escape_md, resolve, run_with_progress, search_cached
from planner.app.inputs import hardware_input, init_inputs, model_input
from planner.app.nav import go
from planner.app.tables import show_table
from planner.units_format import fmt_percent, fmt_seconds, fmt_usd

RESULT_KEY = "plan_last"
"""Session-state key of the last search: (its inputs, its result), kept until the next search."""


def _inputs() -> tuple[str, tuple[str, str], int | None, dict[str, Any]]:
    sb = st.sidebar
    sb.header("Search")
    model = model_input(recsys=False)
    hardware, gpus = hardware_input("GPUs (most)")
    min_gpus = int(sb.number_input("Fewest GPUs (0: a quarter of the most)", min_value=0, step=1,
                                   key="plan_min_gpus"))  # fmt: skip
    gb = int(sb.number_input("Global batch (0: planner's, ~4 M tokens)", min_value=0, step=1, key="plan_gb"))
    objective = sb.radio("Objective", ["time", "cost"], key="plan_objective", horizontal=True)
    st.session_state.setdefault("plan_top", _api_default("top"))
    top = int(sb.number_input("Layouts to show", min_value=1, max_value=50, key="plan_top"))
    tokens = float(sb.number_input("Tokens to train (0: planner's, 20 per parameter)", min_value=0.0,
                                   format="%.3g", key="plan_tokens"))  # fmt: skip
    opts: dict[str, Any] = {"objective": objective, "top": top, "min_gpus": min_gpus or None,
                            "global_batch": gb or None, "tokens": tokens or None}  # fmt: skip
    return model, hardware, gpus, {k: v for k, v in opts.items() if v is not None}


def _api_default(name: str) -> Any:
    """A search option's default where the API sets it, ``Searcher.run`` (``planner.search`` passes its
    options there): the app shows it, it does not choose it."""
    import inspect

    from planner.search.search import Searcher

    return inspect.signature(Searcher.run).parameters[name].default


def _label(lay: dict[str, Any]) -> str:
    parts = [f"tp{lay['tp']}", f"pp{lay['pp']}"] + ([f"vpp{lay['vpp']}"] if lay["vpp"] > 1 else [])
    parts += [f"dp{lay['dp']}"] + [f"{k}{lay[k]}" for k in ("cp", "ep") if lay.get(k, 1) > 1]
    parts += [f"mb{lay['micro_batch']}", f"recompute {lay['recompute']}", f"ZeRO {lay['zero_stage']}"]
    return " ".join(parts + (["sp"] if lay["sequence_parallel"] else []) + [lay["schedule"]])


def _runs(res: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """Each ranked layout's whole run (planner.search.goodput.run_plan, as the search prices its winner)."""
    from planner.registry import load_model
    from planner.search.goodput import run_plan

    tokens = res["run"]["tokens"]
    params = load_model(resolve(model)).num_params
    seen: dict[tuple[int, str], dict[str, Any]] = {}
    for s in res["results"] + res["pareto"] + res.get("best_per_gpu_count", []):
        per_gpu_h = s["cost"]["usd_per_hour"] / s["gpus"] if s["cost"]["usd_per_hour"] is not None else None
        run = run_plan(tokens=tokens, tokens_per_step=res["global_batch"] * res["seq_len"], step_time_s=s["step_time_s"],
                       gpus=s["gpus"], params=params, usd_per_gpu_hour=per_gpu_h)  # fmt: skip
        seen[(s["gpus"], _label(s["layout"]))] = {
            "GPUs": s["gpus"], "layout": _label(s["layout"]), "days": run.wall_days, "usd": run.usd,
            "gpu_hours": run.gpu_hours,
        }  # fmt: skip
    front = {(s["gpus"], _label(s["layout"])) for s in res["pareto"]}
    return [{**v, "front": "on the front" if k in front else "dominated", "GPUs label": f"{k[0]} GPUs"}
            for k, v in seen.items()]  # fmt: skip


def _table(res: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([
        {"gpus": s["gpus"], "layout": _label(s["layout"]), "step_time_s": s["step_time_s"], "mfu": s["mfu"],
         "tokens_per_s": s["tokens_per_s"], "peak_gib": s["memory"]["peak_gib"],
         "usd_per_million_tokens": s["cost"]["usd_per_million_tokens"],
         "gpu_hours_per_step": s["cost"]["gpu_hours_per_step"]}
        for s in res["results"]
    ])  # fmt: skip


def _to_simulate(model_name: str, hardware: tuple[str, str], sim: dict[str, Any]) -> None:
    lay = sim["layout"]
    kind, hw = hardware
    st.session_state[PENDING_KEY] = {
        "in_model": model_name, "in_hw_kind": kind, f"in_{kind}": hw, "in_gpus": sim["gpus"],
        **{k: lay[k] for k in ("tp", "pp", "vpp", "cp", "ep", "micro_batch", "global_batch", "recompute",
                               "zero_stage", "sequence_parallel", "precision", "schedule")},
    }  # fmt: skip


def _summary(res: dict[str, Any], given_tokens: bool) -> None:
    st.caption(
        f"{res['enumerated']:,} layouts listed, {res['evaluated']:,} estimated, {res['fits']:,} fit, "
        f"{res['fully_simulated']} fully simulated; GPU counts searched: {', '.join(map(str, res['gpu_counts']))};"
        f" global batch {res['global_batch']:,} sequences"
    )
    run = res.get("run")
    if run:
        how = "" if given_tokens else " (no tokens given: planner's default of 20 tokens per parameter)"
        cost = fmt_usd(run["usd"]) if run["usd"] is not None else "no price for this hardware"
        st.info(escape_md(
            f"Whole run of the winner: {run['tokens'] / 1e9:,.3g} B tokens{how}, {run['steps']:,} steps,"
            f" {run['wall_days']:,.2f} days, {cost} (goodput {fmt_percent(run['goodput']['goodput'])})."
        ))  # fmt: skip


def _pareto(res: dict[str, Any], model: str) -> None:
    st.subheader("Whole run: days against dollars")
    pts = pd.DataFrame(_runs(res, model))
    priced = pts["usd"].notna().all()
    y, title = (
        ("usd", "dollars for the whole run") if priced else ("gpu_hours", "GPU-hours (no price for this hardware)")
    )
    if not priced:
        st.caption("No price for this hardware: the chart shows GPU-hours instead of dollars.")
    on_front = sorted({s["gpus"] for s in res["pareto"]}, reverse=True)
    off = [k for k in res["gpu_counts"] if k not in set(pts["GPUs"])]
    st.caption(
        f"On the front (diamonds, dashed line): {', '.join(map(str, on_front))} GPUs."
        + (f" Not drawn: {', '.join(map(str, off))} GPUs (no layout fits there)." if off else "")
    )  # fmt: skip
    st.altair_chart(charts.pareto_chart(pts, "days", y, "days for the whole run", title), width="stretch")


def _alternatives(res: dict[str, Any]) -> None:
    st.subheader("Why the winner wins")
    if not res["results"]:
        return
    w = res["results"][0]
    st.markdown(escape_md(
        f"{_label(w['layout'])} on {w['gpus']} GPUs: step {fmt_seconds(w['step_time_s'])}, MFU {fmt_percent(w['mfu'])}"
    ))  # fmt: skip
    n = res["gpus"]
    best_n = next((s for s in res["results"] if s["gpus"] == n), None)
    if best_n is not None:
        st.caption(escape_md(
            f"Alternatives are measured against the best layout on {n} GPUs by {res['objective']}"
            f" ({_label(best_n['layout'])}); at one GPU count, slower by x % is also costlier by x %."
        ))  # fmt: skip
    alts = [{"alternative": a["name"], "layout": a["layout"], "step_time_s": a["step_time_s"],
             "slower_by": a["slower_by"], "reason": a["reason"]} for a in res["alternatives"]]  # fmt: skip
    if alts:
        show_table(pd.DataFrame(alts), "alternatives")
    if res["rejected"]:
        st.caption(
            escape_md("Dropped layouts by reason: " + "; ".join(f"{k}: {v:,}" for k, v in res["rejected"].items()))
        )


def render() -> None:
    st.title("Plan: search the layouts")
    init_inputs()
    model, hardware, gpus, opts = _inputs()
    key = (model, hardware, gpus, tuple(sorted({**opts, **calibration_option()}.items())))
    if st.button("Search", type="primary", key="plan_run_btn"):
        res = run_with_progress("Searching layouts...", search_cached, *key)
        st.session_state[RESULT_KEY] = (key, res) if res is not None else None
        if res is None:
            return
    last = st.session_state.get(RESULT_KEY)
    if not last:
        st.info("Set the inputs in the sidebar, then press Search.")
        return
    if last[0] != key:
        st.warning("The inputs changed since this search: press Search to update it.")
    model, hardware, gpus = last[0][0], last[0][1], last[0][2]
    res = last[1]
    _summary(res, "tokens" in dict(last[0][3]))
    st.subheader("Ranked layouts")
    show_table(_table(res), "layouts")
    if res["results"]:
        labels = [f"{i + 1}: {s['gpus']} GPUs, {_label(s['layout'])}" for i, s in enumerate(res["results"])]
        choice = st.selectbox("Layout", range(len(labels)), format_func=lambda i: labels[i], key="plan_row")
        if st.button("Open in Simulate", key="plan_to_sim_btn"):
            _to_simulate(st.session_state["in_model"], hardware, res["results"][choice])
            go("simulate")
    _pareto(res, model)
    _alternatives(res)
