"""Every table of the app: readable headers, units, no index, no 'None', CSV and JSON downloads.

The unit of a column comes from its name (:mod:`planner.units_format`, shared with the CLI):
dollars as currency, fractions as percentages, seconds in ms when small. A numeric column with
gaps is written as text by the same formatter, so a gap reads as a dash, never 'None' or 'nan'.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from planner.units_format import column_kind, fmt_value, header

_NUMBER_FORMAT = {
    "usd": "dollar",
    "usd_small": "$%.3g",
    "percent": "%.1f %%",
    "days": "%.2f",
    "gib": "%.1f",
    "count": "localized",
}


def _column(name: str, s: pd.Series) -> tuple[pd.Series, Any]:
    """The column as shown and its column_config entry."""
    kind = column_kind(name)
    label = header(name)
    if s.dtype == bool:
        return s.map(lambda v: "yes" if v else "no"), st.column_config.TextColumn(label)
    numeric = pd.api.types.is_numeric_dtype(s)
    if numeric and s.notna().all() and kind != "seconds":
        fmt = _NUMBER_FORMAT.get(kind)
        if fmt is None:
            big = pd.api.types.is_integer_dtype(s) or s.abs().max() >= 1000
            fmt = "localized" if big else "%.4g"
            if big and not pd.api.types.is_integer_dtype(s):
                s = s.round().astype("int64")  # 395,644 tokens/s, not 395,644.468
        return (s * 100 if kind == "percent" else s), st.column_config.NumberColumn(label, format=fmt)
    if numeric or kind == "seconds":
        return s.map(lambda v: fmt_value(v, kind)), st.column_config.TextColumn(label)
    text = s.map(lambda v: fmt_value(v, "text"))
    wide = text.str.len().max() > 40 if len(text) else False
    return text, st.column_config.TextColumn(label, width="large" if wide else None)


def prepare(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The frame as displayed and its column_config: readable headers, units, dashes for gaps."""
    df = df.reset_index(drop=True)
    out: dict[str, pd.Series] = {}
    config: dict[str, Any] = {}
    for name in df.columns:
        if df[name].isna().all() or (df[name].dtype == object and (df[name].fillna("") == "").all()):
            continue  # an empty column says nothing
        out[name], config[name] = _column(str(name), df[name])
    return pd.DataFrame(out, index=range(len(df))), config


def show_table(df: pd.DataFrame, key: str, *, caption: str | None = None, height: int | None = None) -> None:
    """One table as :func:`prepare` lays it out, with its CSV and JSON downloads (raw values)."""
    shown, config = prepare(df)
    kw: dict[str, Any] = {"height": height} if height else {}
    st.dataframe(shown, column_config=config, hide_index=True, width="stretch", key=f"{key}_table", **kw)
    c1, c2, c3 = st.columns([1, 1, 4])
    raw = df.astype(object).where(df.notna(), None)
    c1.download_button("CSV", df.to_csv(index=False), file_name=f"{key}.csv", mime="text/csv", key=f"{key}_csv")
    c2.download_button(
        "JSON",
        json.dumps(raw.to_dict(orient="records"), indent=1, default=str),
        file_name=f"{key}.json",
        mime="application/json",
        key=f"{key}_json",
    )
    if caption:
        c3.caption(caption)
