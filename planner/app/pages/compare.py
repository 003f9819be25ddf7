"""Compare instances: time and cost to train N tokens on each instance type."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from planner.app.common import calibration_option, catalog_ids, compare_cached, guarded, model_names


def render() -> None:
    st.title("Compare instance types")
    sb = st.sidebar
    models = model_names()
    model = sb.selectbox("Model (preset)", models, index=models.index("gpt3-1.7b"), key="cmp_model")
    ids = catalog_ids()["instance"]
    chosen = sb.multiselect("Instances", ids, default=["p5.48xlarge", "p4d.24xlarge"], key="cmp_instances")
    gpus = int(sb.number_input("GPUs (0: choose)", min_value=0, value=8, step=1, key="cmp_gpus"))
    tokens = float(sb.number_input("Tokens to train", min_value=1.0, value=1e10, format="%.3g", key="cmp_tokens"))
    objective = sb.radio("Objective", ["cost", "time"], key="cmp_objective", horizontal=True)
    deadline = float(sb.number_input("Deadline days (0: none)", min_value=0.0, value=0.0, key="cmp_deadline"))
    budget = float(sb.number_input("Budget USD (0: none)", min_value=0.0, value=0.0, key="cmp_budget"))
    opts: dict[str, Any] = {"tokens": tokens, "objective": objective}
    if gpus:
        opts["gpus"] = gpus
    if deadline:
        opts["deadline_days"] = deadline
    if budget:
        opts["budget_usd"] = budget
    with st.spinner("Comparing instance types..."):
        res = guarded(compare_cached, model, tuple(chosen), tuple(sorted({**opts, **calibration_option()}.items())))
    if res is None:
        return
    rows = []
    for r in res["results"]:
        run = r.get("run") or {}
        rows.append(
            {
                "instance": r["instance"],
                "provider": r["provider"],
                "accelerator": r["accelerator"],
                "gpus": r["gpus"],
                "fits": r["fits"],
                "days": run.get("wall_days"),
                "usd": run.get("usd"),
                "usd_per_million_tokens": r["usd_per_million_tokens"],
                "step_time_s": r["step_time_s"],
                "mfu": r["mfu"],
                "usd_per_gpu_hour": r["usd_per_gpu_hour"],
                "price_date": r["price_date"],
                "price_source": r["price_source"],
                "reason": r["reason"],
            }
        )
    df = pd.DataFrame(rows)
    st.caption(f"{res['model']}: {res['tokens']:.3g} tokens, best by {res['objective']} first")
    ok = df[df["days"].notna() & df["usd"].notna()] if len(df) else df
    if len(ok):
        chart = (
            alt.Chart(ok)
            .mark_circle(size=120)
            .encode(
                x=alt.X("days:Q", title="days to train"),
                y=alt.Y("usd:Q", title="USD to train"),
                color="instance:N",
                tooltip=["instance", "gpus", "days", "usd", "mfu", "price_date"],
            )
        )
        st.altair_chart(chart)
    st.dataframe(df)
