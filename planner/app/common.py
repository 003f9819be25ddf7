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


def calibration_option() -> dict[str, str]:
    """The sidebar's calibration profile (a path or an upload, from ``planner calibrate``), shared by
    every page: ``{"calibration": <the Calibration as JSON>}``, or ``{}`` for planner's default."""
    import os
    import tempfile

    from planner.calibration import load_calibration

    box = st.sidebar.expander("Calibration", expanded=bool(st.session_state.get("calibration_path")))
    path = box.text_input("Profile (YAML path; planner calibrate --out)", key="calibration_path")
    up = box.file_uploader("...or upload it", type=["yaml", "yml"], key="calibration_upload")
    tmp = None
    if up is not None:
        fd, tmp = tempfile.mkstemp(suffix=".yaml", prefix="planner-calibration-")
        with os.fdopen(fd, "wb") as f:
            f.write(up.getvalue())
        path = tmp
    if not path:
        box.caption("calibration: default")
        return {}
    try:
        calib = load_calibration(path)
    except PlannerInputError as e:
        box.error(str(e).splitlines()[0])
        return {}
    finally:
        if tmp:
            os.unlink(tmp)
    box.caption(f"calibration: {calib.name}")
    return {"calibration": calib.model_dump_json()}


def _calibration_kw(fields: dict[str, Any]) -> dict[str, Any]:
    """Turn the ``calibration`` JSON of :func:`calibration_option` back into a Calibration."""
    from planner.calibration import Calibration

    text = fields.pop("calibration", None)
    return {"calibration": Calibration.model_validate_json(text)} if text else {}


@st.cache_data(show_spinner=False, max_entries=64)
def simulate_cached(model: str, hardware: tuple[str, str], gpus: int, fields: tuple[tuple[str, Any], ...]) -> dict:
    """One simulated step as plain data: the result (JSON), the Gantt rows and the trace file."""
    import planner
    from planner.app.charts import gantt_rows
    from planner.result import trace_events

    kind, hw = hardware
    kw = dict(fields)
    r = planner.simulate(model, gpus=gpus, **{kind: hw}, **_calibration_kw(kw), **kw)
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
    kw = dict(options)
    return search(model, gpus=gpus, **{kind: hw}, workers=1, **_calibration_kw(kw), **kw).model_dump(mode="json")


@st.cache_data(show_spinner=False, max_entries=16)
def compare_cached(model: str, instances: tuple[str, ...], options: tuple[tuple[str, Any], ...]) -> dict:
    from planner.search import compare

    kw = dict(options)
    return compare(model, instances=list(instances), workers=1, **_calibration_kw(kw), **kw).model_dump(mode="json")


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
    from planner.transformer.spec import preset_names

    names = preset_names()
    if recsys:
        from planner.recsys.spec import recsys_preset_names

        names += recsys_preset_names()
    return names


def fmt(v: float | None, spec: str = ".3g", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{spec}}{unit}"
