"""Sweeps: open a results store written by ``planner sweep`` and plot one column against another."""

from __future__ import annotations

import os
import sqlite3
import tempfile

import pandas as pd
import streamlit as st

from planner.app import charts
from planner.app.common import guarded
from planner.errors import PlannerInputError


@st.cache_data(show_spinner=False, max_entries=8)
def _load(path: str, mtime: float) -> pd.DataFrame:
    from planner.sweep import Store

    if not os.path.isfile(path):
        raise PlannerInputError("store", f"file not found: {path}")
    store = Store(path)
    try:
        rows = store.rows()
    except sqlite3.DatabaseError as e:
        raise PlannerInputError("store", f"{path} is not a results store: {e}") from None
    finally:
        store.close()
    return pd.DataFrame(rows)


def _from_upload(data: bytes) -> str:
    fd, path = tempfile.mkstemp(suffix=".db", prefix="planner-sweep-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def render() -> None:
    st.title("Sweeps")
    st.caption("A results store written by `planner sweep SPEC.yaml --out results.db` (or `r.csv.sqlite`).")
    path = st.text_input("Path to the store", key="sweep_path")
    up = st.file_uploader("...or upload it", type=["db", "sqlite", "sqlite3"], key="sweep_upload")
    if up is not None:
        path = _from_upload(up.getvalue())
    if not path:
        st.info("Give a path or upload a store.")
        return
    mtime = os.path.getmtime(path) if os.path.isfile(path) else 0.0
    with st.spinner("Reading the store..."):
        df = guarded(_load, path, mtime)
    if df is None:
        return
    if df.empty:
        st.warning("The store has no points yet.")
        return
    n_err = int((df["status"] == "error").sum()) if "status" in df else 0
    st.caption(f"{len(df)} points, {n_err} with an error")
    cols = [c for c in df.columns if c not in ("key",) and df[c].notna().any()]
    numeric = [c for c in cols if pd.api.types.is_numeric_dtype(df[c])]
    x0 = "gpus" if "gpus" in cols else cols[0]
    y0 = "step_time_s" if "step_time_s" in cols else (numeric or cols)[0]
    c1, c2, c3 = st.columns(3)
    x = c1.selectbox("x", cols, index=cols.index(x0), key="sweep_x")
    y = c2.selectbox("y", cols, index=cols.index(y0), key="sweep_y")
    colour = c3.selectbox("colour", ["(none)", *cols], key="sweep_colour")
    colour_col = None if colour == "(none)" else colour
    plot = df[df[x].notna() & df[y].notna()]
    tips = list(dict.fromkeys(c for c in ("point", x, y, colour_col, "status") if c and c in df))
    st.altair_chart(charts.scatter(plot, x, y, colour_col, tips))
    st.dataframe(df)
    if n_err:
        st.dataframe(df[df["status"] == "error"][["point", "error"]])
