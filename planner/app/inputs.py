"""Inputs shared by every page: the model (presets, an uploaded Hugging Face config.json or a
checked YAML spec), the hardware (accelerator | instance | cluster) and the GPU count.

They live under the same ``st.session_state`` keys on every page, so a choice made on one page
is there on the next. Their first values are the API's defaults (planner.simulate's model,
planner.hardware's default instance and GPU count), not the app's.
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Any

import streamlit as st

from planner.app.common import catalog_ids, guarded

KEEP_PREFIXES = ("in_", "sim_", "plan_", "cmp_", "sweep_", "cat_")
"""Widget keys kept when the user changes page (Streamlit drops a widget's state once it is not drawn)."""
NOT_KEPT_SUFFIXES = ("_upload", "_btn", "_csv", "_json", "_table", "_pending", "_fill")
"""Buttons, uploads and tables cannot be written back into session state."""
CUSTOM_KEY = "custom_models"
"""Session-state key: {name: spec as JSON} of the models the user brought (upload or YAML)."""
HW_KINDS = ("instance", "accelerator", "cluster")


def keep_inputs() -> None:
    """Write every input back into session state so it survives a change of page."""
    for k in list(st.session_state.keys()):
        if isinstance(k, str) and k.startswith(KEEP_PREFIXES) and not k.endswith(NOT_KEPT_SUFFIXES):
            try:
                st.session_state[k] = st.session_state[k]
            except st.errors.StreamlitAPIException:  # a button or upload under a kept prefix
                pass


def api_defaults() -> dict[str, Any]:
    """The first values of the shared inputs: whatever the API does when it is given nothing."""
    import planner
    from planner.defaults import DEFAULT_GPUS, DEFAULT_INSTANCE
    from planner.hardware import catalog

    cat = catalog()
    inst = cat.instances[DEFAULT_INSTANCE]
    acc = cat.node_types[inst.node_type].accelerator if inst.node_type in cat.node_types else None
    return {
        "in_model": inspect.signature(planner.simulate).parameters["model"].default,
        "in_hw_kind": "instance",
        "in_instance": DEFAULT_INSTANCE,
        "in_accelerator": acc if isinstance(acc, str) else list(cat.accelerators)[0],
        "in_cluster": list(cat.clusters)[0],
        "in_gpus": DEFAULT_GPUS,
    }


def init_inputs() -> None:
    """Keep the inputs across pages and give the shared ones the API's defaults the first time."""
    keep_inputs()
    for k, v in api_defaults().items():
        st.session_state.setdefault(k, v)


def custom_models() -> dict[str, str]:
    """The models this user brought: name -> spec JSON (with its ``kind``)."""
    return st.session_state.setdefault(CUSTOM_KEY, {})


def add_custom_model(spec: Any) -> str:
    """Remember a spec under its own name; returns that name (what the model selector shows)."""
    data = spec.model_dump(mode="json")
    data.setdefault("kind", getattr(spec, "kind", "transformer"))
    custom_models()[spec.name] = json.dumps(data)
    return spec.name


def model_ref(name: str) -> str:
    """What the cached API calls take: a preset name, or the JSON of a model the user brought."""
    return custom_models().get(name, name)


def _from_hf_upload(up: Any) -> Any:
    """A model from an uploaded Hugging Face ``config.json`` (planner.transformer.hf_config), named
    by the config (its ``_name_or_path``) or by the file, never by a temporary path."""
    from planner.transformer.hf_config import from_hf_config, parse_json_object

    data = parse_json_object(up.getvalue(), where=up.name)
    stem = os.path.splitext(os.path.basename(up.name))[0]
    return from_hf_config(data, name=None if stem in ("", "config") or data.get("_name_or_path") else stem)


def model_input(recsys: bool = True) -> str:
    """The model selector (presets and the user's own models) with a config.json upload; returns
    the reference for the API calls."""
    from planner.registry import preset_names

    names = preset_names()
    models = list(custom_models()) + names["transformer"] + (names.get("recsys", []) if recsys else [])
    sb = st.sidebar
    with sb.expander("Bring your own model (Hugging Face config.json)"):
        up = st.file_uploader("config.json", type=["json"], key="in_hf_upload")
        if up is not None and st.session_state.get("_hf_seen") != (up.name, up.size):
            spec = guarded(_from_hf_upload, up)
            if spec is not None:
                st.session_state["_hf_seen"] = (up.name, up.size)
                st.session_state["in_model"] = add_custom_model(spec)
                st.rerun()
    if st.session_state.get("in_model") not in models:
        if st.session_state.get("in_model") and not recsys:
            st.sidebar.caption(f"{st.session_state['in_model']} is not a transformer: this page plans transformers.")
        st.session_state["in_model"] = api_defaults()["in_model"]
    name = sb.selectbox("Model", models, key="in_model")
    return model_ref(name)


def hardware_input(gpus_label: str = "GPUs") -> tuple[tuple[str, str], int | None]:
    """The hardware selector: kind (instance | accelerator | cluster), the catalog id and the
    GPU count (a cluster brings its own count, so none is asked)."""
    ids = catalog_ids()
    sb = st.sidebar
    kind = sb.radio("Hardware", list(HW_KINDS), key="in_hw_kind", horizontal=True)
    hw = sb.selectbox(kind.capitalize(), ids[kind], key=f"in_{kind}")
    if kind == "cluster":
        from planner.hardware import catalog

        c = catalog().clusters[hw]
        n = c.nodes * catalog().node_types[c.node_type].gpus_per_node
        sb.caption(f"{hw}: {n:,} GPUs ({c.nodes:,} nodes)")
        return (kind, hw), None
    gpus = sb.number_input(gpus_label, min_value=1, step=1, key="in_gpus")
    return (kind, hw), int(gpus)
