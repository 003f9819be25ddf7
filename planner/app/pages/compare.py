"""Compare instances: the best layout, time and cost to train N tokens on each instance type."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from planner.app import charts
from planner.app.common import calibration_option, catalog_ids, compare_cached, escape_md, run_with_progress
from planner.app.inputs import init_inputs, model_input
from planner.app.tables import show_table

RESULT_KEY = "cmp_last"
"""Session-state key of the last comparison: (its inputs, its result)."""
FIRST_CHOICE = ("p4d.24xlarge",)
"""Shown next to the API's default instance the first time, so a first comparison compares two."""


def _inputs() -> tuple[str, tuple[str, ...], dict[str, Any]]:
    from planner.defaults import DEFAULT_INSTANCE

    sb = st.sidebar
    sb.header("Compare")
    model = model_input(recsys=False)
    ids = catalog_ids()["instance"]
    st.session_state.setdefault("cmp_instances", [DEFAULT_INSTANCE, *(i for i in FIRST_CHOICE if i in ids)])
    chosen = sb.multiselect("Instances", ids, key="cmp_instances")
    gpus = int(sb.number_input("GPUs (0: planner chooses)", min_value=0, step=1, key="cmp_gpus"))
    tokens = float(sb.number_input("Tokens to train (0: planner's, 20 per parameter)", min_value=0.0,
                                   format="%.3g", key="cmp_tokens"))  # fmt: skip
    objective = sb.radio("Objective", ["cost", "time"], key="cmp_objective", horizontal=True)
    deadline = float(sb.number_input("Deadline days (0: none)", min_value=0.0, key="cmp_deadline"))
    budget = float(sb.number_input("Budget $ (0: none)", min_value=0.0, step=1000.0, key="cmp_budget"))
    opts = {"tokens": tokens or None, "objective": objective, "gpus": gpus or None,
            "deadline_days": deadline or None, "budget_usd": budget or None}  # fmt: skip
    return model, tuple(chosen), {k: v for k, v in opts.items() if v is not None}


def _layout(lay: dict[str, Any] | None) -> str | None:
    if not lay:
        return None
    vpp = f" vpp{lay['vpp']}" if lay.get("vpp", 1) > 1 else ""
    return (f"tp{lay['tp']} pp{lay['pp']}{vpp} dp{lay['dp']} mb{lay['micro_batch']}, recompute {lay['recompute']},"
            f" ZeRO {lay['zero_stage']}")  # fmt: skip


def _rows(res: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for r in res["results"]:
        run = r.get("run") or {}
        row = {"instance": r["instance"], "gpus": r["gpus"], "best_layout": _layout(r.get("layout")),
               "days": run.get("wall_days"), "usd": run.get("usd"),
               "usd_per_million_tokens": r["usd_per_million_tokens"], "step_time_s": r["step_time_s"],
               "mfu": r["mfu"], "usd_per_gpu_hour": r["usd_per_gpu_hour"]}  # fmt: skip
        for flag in ("meets_deadline", "within_budget"):
            if flag in r and r[flag] is not None:
                row[flag] = r[flag]
        row["note"] = r["reason"] or ("" if r["usd_per_gpu_hour"] is not None else "no price in the catalog")
        rows.append(row)
    return pd.DataFrame(rows)


def _prices(res: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([
        {"instance": r["instance"], "provider": r["provider"], "accelerator": r["accelerator"],
         "usd_per_gpu_hour": r["usd_per_gpu_hour"], "price_date": r["price_date"], "price_source": r["price_source"]}
        for r in res["results"]
    ])  # fmt: skip


def render() -> None:
    st.title("Compare instance types")
    init_inputs()
    model, chosen, opts = _inputs()
    key = (model, chosen, tuple(sorted({**opts, **calibration_option()}.items())))
    if st.button("Compare", type="primary", key="cmp_run_btn"):
        res = run_with_progress("Comparing instance types...", compare_cached, *key)
        st.session_state[RESULT_KEY] = (key, res) if res is not None else None
        if res is None:
            return
    last = st.session_state.get(RESULT_KEY)
    if not last:
        st.info("Pick the instances and the run in the sidebar, then press Compare.")
        return
    if last[0] != key:
        st.warning("The inputs changed since this comparison: press Compare to update it.")
    res, o = last[1], dict(last[0][2])
    st.caption(
        escape_md(
            f"{res['model']}: {res['tokens'] / 1e9:,.3g} B tokens, best by {res['objective']} first"
            + ("" if "tokens" in o else " (no tokens given: planner's default, 20 per parameter)")
        )
    )
    df = _rows(res)
    ok = df[df["days"].notna() & df["usd"].notna()]
    if len(ok):
        chart = charts.compare_chart(ok, o.get("deadline_days"), o.get("budget_usd"))
        st.altair_chart(chart, width="stretch")
    missing = [i for i in df["instance"] if i not in set(ok["instance"])]
    if missing:
        st.caption(escape_md("Not on the chart (no price or no layout that runs): " + ", ".join(missing)))
    show_table(df, "compare")
    with st.expander("Prices and their sources"):
        show_table(_prices(res), "prices")
