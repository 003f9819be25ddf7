"""Shared helpers: cached calls into the API, error display, catalog lists."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from planner.errors import PlannerInputError

T = TypeVar("T")

PENDING_KEY = "sim_pending"
"""Session-state key under which another page leaves Simulate's inputs (copied into its widgets)."""


def guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Call ``fn``; a user mistake becomes one ``st.error`` line and ``None``."""
    try:
        return fn(*args, **kwargs)
    except PlannerInputError as e:
        st.error(str(e).splitlines()[0] if str(e) else type(e).__name__)
        return None


@st.cache_data(show_spinner=False, max_entries=64)
def simulate_cached(model: str, hardware: tuple[str, str], gpus: int, fields: tuple[tuple[str, Any], ...]) -> dict:
    """One simulated step as plain data: the result (JSON), the Gantt rows and the trace file."""
    import planner
    from planner.app.charts import gantt_rows
    from planner.report import trace_events

    kind, hw = hardware
    r = planner.simulate(model, gpus=gpus, **{kind: hw}, **dict(fields))
    events = trace_events(r._graph, r._timeline)
    return {
        "result": r.model_dump(mode="json"),
        "gantt": gantt_rows(r._graph, r._timeline),
        "trace": json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}),
    }


@st.cache_data(show_spinner=False, max_entries=16)
def search_cached(model: str, hardware: tuple[str, str], gpus: int, options: tuple[tuple[str, Any], ...]) -> dict:
    from planner.search import search

    kind, hw = hardware
    return search(model, gpus=gpus, **{kind: hw}, workers=1, **dict(options)).model_dump(mode="json")


@st.cache_data(show_spinner=False, max_entries=16)
def compare_cached(model: str, instances: tuple[str, ...], options: tuple[tuple[str, Any], ...]) -> dict:
    from planner.search import compare

    return compare(model, instances=list(instances), workers=1, **dict(options)).model_dump(mode="json")


def catalog_ids() -> dict[str, list[str]]:
    from planner.hardware import catalog

    cat = catalog()
    return {
        "accelerator": list(cat.accelerators),
        "instance": list(cat.instances),
        "cluster": list(cat.clusters),
    }


def model_names(recsys: bool = False) -> list[str]:
    """Model presets: transformers, and with ``recsys`` the recommendation models too."""
    from planner.workloads.transformer import preset_names

    names = preset_names()
    if recsys:
        from planner.workloads.recsys import recsys_preset_names

        names += recsys_preset_names()
    return names


def fmt(v: float | None, spec: str = ".3g", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{spec}}{unit}"
