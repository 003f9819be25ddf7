"""Shared helpers: cached calls into the API, messages shown literally, the per-session folder.

Everything shown comes from planner's Python API; the helpers here only call it, cache the
answers as plain data and lay out the messages.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from planner.errors import PlannerInputError

T = TypeVar("T")

PENDING_KEY = "sim_pending"
"""Session-state key under which another page leaves Simulate's inputs (copied into its widgets)."""

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:])")


def escape_md(text: str) -> str:
    """``text`` with every Markdown character escaped, so ``st.error`` shows it as written
    ("tp*pp*cp = 2*3*1" stays that, not italics)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def show_error(msg: str, box: Any = None) -> None:
    """One error line whose visible text equals ``msg``."""
    (box or st).error(escape_md(msg))


def guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Call ``fn``; a user mistake becomes one ``st.error`` line and ``None``."""
    try:
        return fn(*args, **kwargs)
    except PlannerInputError as e:
        show_error(str(e).splitlines()[0] if str(e) else type(e).__name__)
        return None


class _Folder:
    """A temporary folder removed when the session that owns it ends (or the app exits)."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="planner-app-")
        weakref.finalize(self, shutil.rmtree, self.path, True)


def session_dir() -> str:
    """This user's temporary folder (uploads, checked specs); cleaned up with the session."""
    if "_folder" not in st.session_state:
        st.session_state["_folder"] = _Folder()
    return st.session_state["_folder"].path


def calibration_option() -> dict[str, str]:
    """The sidebar's calibration profile (a path or an upload, from ``planner calibrate``), shared by
    every page: ``{"calibration": <the Calibration as JSON>}``, or ``{}`` for planner's default."""
    import os

    from planner.calibration import load_calibration

    box = st.sidebar.expander("Calibration", expanded=bool(st.session_state.get("in_calibration_path")))
    path = box.text_input("Profile (YAML path; planner calibrate --out)", key="in_calibration_path")
    up = box.file_uploader("...or upload it", type=["yaml", "yml"], key="calibration_upload")
    if up is not None:
        path = os.path.join(session_dir(), "calibration.yaml")
        with open(path, "wb") as f:
            f.write(up.getvalue())
    if not path:
        box.caption("calibration: default")
        return {}
    try:
        calib = load_calibration(path)
    except PlannerInputError as e:
        show_error(str(e).splitlines()[0], box)
        return {}
    box.caption(f"calibration: {calib.name}")
    return {"calibration": calib.model_dump_json()}


def _calibration_kw(fields: dict[str, Any]) -> dict[str, Any]:
    """Turn the ``calibration`` JSON of :func:`calibration_option` back into a Calibration."""
    from planner.calibration import Calibration

    text = fields.pop("calibration", None)
    return {"calibration": Calibration.model_validate_json(text)} if text else {}


def resolve(model: str) -> Any:
    """A model reference as the pages pass it: a preset name, or a spec as JSON (an uploaded or
    pasted model, with its ``kind``) turned back into the family's spec."""
    if not model.startswith("{"):
        return model
    from planner.registry import family

    data = json.loads(model)
    return family(str(data.pop("kind", "transformer"))).load(data)


def _hardware_kw(hardware: tuple[str, str], gpus: int | None) -> dict[str, Any]:
    kind, hw = hardware
    return {kind: hw, "gpus": gpus}


@st.cache_data(show_spinner=False, max_entries=64)
def simulate_cached(
    model: str, hardware: tuple[str, str], gpus: int | None, fields: tuple[tuple[str, Any], ...]
) -> dict:
    """One simulated step as plain data: the result (JSON), the Gantt rows and the trace file."""
    import planner
    from planner.app.charts import gantt_rows
    from planner.result import trace_events

    kw = dict(fields)
    r = planner.simulate(resolve(model), **_hardware_kw(hardware, gpus), **_calibration_kw(kw), **kw)
    events = trace_events(r._graph, r._timeline)
    return {
        "result": r.model_dump(mode="json"),
        "gantt": gantt_rows(r._graph, r._timeline),
        "trace": json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}),
    }


@st.cache_data(show_spinner=False, max_entries=16)
def search_cached(
    model: str, hardware: tuple[str, str], gpus: int | None, options: tuple[tuple[str, Any], ...]
) -> dict:
    """A layout search as plain data (workers=1: the app serves several users on one machine)."""
    from planner.search import search

    kw = dict(options)
    res = search(resolve(model), **_hardware_kw(hardware, gpus), workers=1, **_calibration_kw(kw), **kw)
    return res.model_dump(mode="json")


@st.cache_data(show_spinner=False, max_entries=16)
def compare_cached(model: str, instances: tuple[str, ...], options: tuple[tuple[str, Any], ...]) -> dict:
    """Instance types compared, as plain data."""
    from planner.search import compare

    kw = dict(options)
    return compare(resolve(model), instances=list(instances), workers=1, **_calibration_kw(kw), **kw).model_dump(
        mode="json"
    )


def catalog_ids() -> dict[str, list[str]]:
    """Catalog ids per hardware kind, as the selectors list them."""
    from planner.hardware import catalog

    cat = catalog()
    return {
        "accelerator": list(cat.accelerators),
        "instance": list(cat.instances),
        "cluster": list(cat.clusters),
    }


def fmt(v: float | None, spec: str = ".3g", unit: str = "") -> str:
    """A number with a format spec and a unit; a dash when there is none."""
    return "—" if v is None else f"{v:{spec}}{unit}"


def run_with_progress(label: str, fn: Callable[..., T], *args: Any) -> T | None:
    """Run a long API call behind a progress bar that fills when it returns (the API reports no
    intermediate progress to the app); a user mistake is one error line."""
    bar = st.progress(0.05, text=label)
    try:
        out = guarded(fn, *args)
    finally:
        bar.empty()
    return out
