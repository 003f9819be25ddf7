"""Sweeps: define a grid of scenarios around the current one and run it, or open a results store
written by ``planner sweep`` (read-only); plot one column against another."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import streamlit as st
import yaml

from planner.app import charts
from planner.app.common import escape_md, guarded, session_dir, show_error
from planner.app.inputs import hardware_input, init_inputs, model_input
from planner.app.tables import show_table
from planner.errors import PlannerInputError

APP_MAX_POINTS = 200
"""The most points one sweep may have here (one process serves every user of the app; the CLI's
``planner sweep`` runs larger grids on all cores)."""
AXES = 3
RESULT_KEY = "sweep_last"
"""Session-state key of the last table shown: (where it came from, its rows)."""


@st.cache_data(show_spinner=False, max_entries=8)
def _load(path: str, mtime: float) -> pd.DataFrame:
    """A results store opened read-only: nothing in the file is created, converted or locked."""
    from planner.sweep import Store

    if not os.path.isfile(path):
        raise PlannerInputError("store", f"file not found: {path}")
    store = Store(path, readonly=True)
    try:
        return pd.DataFrame(store.rows())
    except Exception as e:  # noqa: BLE001 - sqlite3 errors of a file that is not a store
        raise PlannerInputError("store", f"{path} is not a results store: {e}") from None
    finally:
        store.close()


def _values(text: str, field: str) -> list[Any]:
    """An axis' values typed as "8, 16, 32" (YAML scalars: numbers, words, true/false)."""
    try:
        vals = yaml.safe_load(f"[{text}]")
    except yaml.YAMLError:
        raise PlannerInputError(field, f"write the values separated by commas, got '{text}'") from None
    if not vals:
        raise PlannerInputError(field, "give at least one value")
    return list(vals)


def _spec(base: dict[str, Any], search: bool) -> dict[str, Any] | None:
    """The sweep spec the page's axis pickers describe (inputs named as the sweep knows them)."""
    from planner.sweep import SEARCH_INPUTS, SIMULATE_INPUTS

    names = sorted(k for k in (SEARCH_INPUTS if search else SIMULATE_INPUTS) if k != "model")
    axes: dict[str, list[Any]] = {}
    cols = st.columns(AXES)
    for i, c in enumerate(cols):
        st.session_state.setdefault(f"sweep_axis{i}", ["gpus", "micro_batch", "(none)"][i])
        st.session_state.setdefault(f"sweep_vals{i}", ["8, 16, 32, 64", "1, 2, 4", ""][i])
        opts = ["(none)", *names]
        if st.session_state[f"sweep_axis{i}"] not in opts:
            st.session_state[f"sweep_axis{i}"] = "(none)"
        name = c.selectbox(f"Axis {i + 1}", opts, key=f"sweep_axis{i}")
        text = c.text_input("Values (comma-separated)", key=f"sweep_vals{i}")
        if name != "(none)" and text.strip():
            vals = guarded(_values, text, name)
            if vals is None:
                return None
            axes[name] = vals
    if not axes:
        st.info("Pick at least one axis and its values.")
        return None
    return {"base": {k: v for k, v in base.items() if k not in axes}, "axes": axes, "search": search}


def _define() -> None:
    st.subheader("Define a sweep around the scenario in the sidebar")
    model = st.session_state["in_model"]
    (kind, hw), gpus = st.session_state["_sweep_hw"]
    from planner.app.inputs import custom_models

    if model in custom_models():
        st.info("A sweep runs in separate processes from a model name or file: pick a preset model for sweeps.")
        return
    base: dict[str, Any] = {"model": model, kind: hw, **({"gpus": gpus} if gpus else {})}
    search = st.checkbox("Search the best layout at each point (instead of simulating one layout)", key="sweep_search")
    spec = _spec(base, search)
    if spec is None:
        return
    from planner.sweep import load_spec

    checked = guarded(load_spec, spec)
    if checked is None:
        return
    n = checked.count()
    st.caption(escape_md(f"{n:,} points around " + ", ".join(f"{k} {v}" for k, v in spec["base"].items())))
    if n > APP_MAX_POINTS:
        show_error(f"{n} points: the app runs at most {APP_MAX_POINTS}; use planner sweep for larger grids")
        return
    if st.button("Run the sweep", type="primary", key="sweep_run_btn"):
        from planner.sweep import run_sweep

        out = os.path.join(session_dir(), f"sweep-{abs(hash(str(spec)))}.db")
        bar = st.progress(0.05, text=f"Running {n} points...")
        try:
            res = guarded(run_sweep, spec, out=out, workers=1, max_points=APP_MAX_POINTS)
        finally:
            bar.empty()
        if res is not None:
            st.session_state[RESULT_KEY] = (f"sweep of {n} points", res[1])


def _open() -> None:
    with st.expander("...or open a results store (planner sweep SPEC.yaml --out results.db)"):
        path = st.text_input("Path to the store (opened read-only)", key="sweep_path")
        up = st.file_uploader("...or upload it", type=["db", "sqlite", "sqlite3"], key="sweep_upload")
        if up is not None:
            path = os.path.join(session_dir(), "uploaded-" + os.path.basename(up.name))
            with open(path, "wb") as f:
                f.write(up.getvalue())
        if not path:
            return
        mtime = os.path.getmtime(path) if os.path.isfile(path) else 0.0
        df = guarded(_load, path, mtime)
        if df is not None:
            st.session_state[RESULT_KEY] = (os.path.basename(path), df.to_dict(orient="records"))


SUMMARY = (
    "step_time_s",
    "mfu",
    "tokens_per_s",
    "samples_per_s",
    "memory.peak_gib",
    "memory.fits",
    "cost.usd_per_million_tokens",
    "run.wall_days",
    "run.usd",
    "error",
)
"""Result columns the table shows unless the user asks for all of them."""


def _summary(df: pd.DataFrame) -> list[str]:
    """Point, status, the inputs (those that vary, and the model and hardware), the main results."""
    from planner.sweep import SIMULATE_INPUTS

    inputs = [c for c in df.columns if c in SIMULATE_INPUTS and (df[c].nunique() > 1 or c in HW_COLUMNS)]
    return [c for c in ("point", "status", *inputs, *SUMMARY) if c in df.columns]


HW_COLUMNS = ("model", "accelerator", "instance", "cluster")


def _name(column: str) -> str:
    """A column as the pickers show it: its readable header and, for nested results, where it is from."""
    from planner.units_format import header

    where = column.rsplit(".", 1)[0] + ": " if "." in column else ""
    return column if column == "(none)" else where + header(column)


def _plot(source: str, rows: list[dict[str, Any]]) -> None:
    df = pd.DataFrame(rows)
    if df.empty:
        st.warning("The store has no points yet.")
        return
    first = [c for c in ("point", "status") if c in df]
    cols = first + [c for c in df.columns if c not in (*first, "key") and df[c].notna().any()]
    df = df[cols]
    n_err = int((df["status"] == "error").sum()) if "status" in df else 0
    st.subheader(f"Results: {source}")
    st.caption(f"{len(df)} points, {n_err} with an error")
    plottable = [c for c in cols if c not in ("status", "error")]
    numeric = [c for c in plottable if pd.api.types.is_numeric_dtype(df[c])]
    x0 = "gpus" if "gpus" in plottable else plottable[0]
    y0 = "step_time_s" if "step_time_s" in plottable else (numeric or plottable)[0]
    for k, v in (("sweep_x", x0), ("sweep_y", y0), ("sweep_colour", "(none)")):
        if st.session_state.get(k) not in [*plottable, "(none)"]:
            st.session_state[k] = v
    c1, c2, c3 = st.columns(3)
    x = c1.selectbox("x", plottable, key="sweep_x", format_func=_name)
    y = c2.selectbox("y", plottable, key="sweep_y", format_func=_name)
    colour = c3.selectbox("Colour", ["(none)", *plottable], key="sweep_colour", format_func=_name)
    colour_col = None if colour == "(none)" else colour
    plot = df[df[x].notna() & df[y].notna()]
    tips = list(dict.fromkeys(c for c in ("point", x, y, colour_col, "status") if c and c in df))
    if len(plot):
        st.altair_chart(charts.scatter(plot, x, y, colour_col, tips), width="stretch")
    show_table(df if st.checkbox("All columns", key="sweep_all") else df[_summary(df)], "sweep")
    if n_err and "error" in df:
        st.caption("Points with an error")
        show_table(df[df["status"] == "error"][["point", "error"]], "sweep_errors")


def render() -> None:
    st.title("Sweeps")
    init_inputs()
    st.sidebar.header("Scenario (the sweep's base)")
    model_input(recsys=True)
    st.session_state["_sweep_hw"] = hardware_input()
    _define()
    _open()
    last = st.session_state.get(RESULT_KEY)
    if last:
        _plot(*last)
