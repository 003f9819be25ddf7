"""Catalog: accelerators, instances, clusters and models; check a YAML spec before using it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from planner.app.common import PENDING_KEY, guarded
from planner.errors import PlannerInputError, pydantic_message

KINDS = ("model", "accelerator", "node type", "instance", "cluster", "sweep spec")


def _tables() -> dict[str, pd.DataFrame]:
    from planner.hardware import catalog
    from planner.recsys.spec import recsys_preset_names
    from planner.transformer.spec import load_model, preset_names

    cat = catalog()

    def frame(items: dict[str, Any], exclude: set[str] | None = None) -> pd.DataFrame:
        rows = []
        for v in items.values():
            d = v.model_dump(mode="json", exclude=exclude)
            rows.append({k: (str(x) if isinstance(x, (dict, list)) else x) for k, x in d.items()})
        return pd.DataFrame(rows)

    models = []
    for name in preset_names():
        m = load_model(name)
        models.append(
            {
                "name": name,
                "params_b": m.num_params / 1e9,
                "layers": m.num_layers,
                "hidden": m.hidden_size,
                "seq_len": m.seq_len,
            }
        )
    models += [{"name": n, "kind": "recsys"} for n in recsys_preset_names()]
    return {
        "Accelerators": frame(cat.accelerators),
        "Instances": frame(cat.instances),
        "Node types": frame(cat.node_types),
        "Clusters": frame(cat.clusters),
        "Models": pd.DataFrame(models),
    }


def check_spec(kind: str, text: str, name: str = "uploaded.yaml") -> str:
    """Validate an uploaded YAML spec of ``kind``; returns a one-line summary or raises PlannerInputError
    (naming the file as uploaded, not the temporary copy)."""
    folder = tempfile.mkdtemp(prefix="planner-upload-")
    path = os.path.join(folder, os.path.basename(name) or "uploaded.yaml")
    if not path.endswith((".yaml", ".yml")):
        path += ".yaml"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    try:
        return _check(kind, path)
    except PlannerInputError as e:
        raise PlannerInputError(e.field.replace(path, name), e.rule.replace(path, name)) from None
    finally:
        os.unlink(path)
        os.rmdir(folder)


def _check(kind: str, path: str) -> str:
    from pydantic import ValidationError

    from planner import hardware
    from planner.hardware import load_yaml

    if kind == "model":
        from planner.simulate import resolve_model

        spec = resolve_model(path)
        return f"valid {spec.kind} model '{spec.name}'"
    if kind == "sweep spec":
        from planner.sweep import load_spec

        return f"valid sweep spec: {len(load_spec(path).points())} points"
    data = load_yaml(Path(path), kind)
    if not isinstance(data, dict):
        raise PlannerInputError(kind, "expected a YAML mapping of fields")
    model = {
        "accelerator": hardware.Accelerator,
        "node type": hardware.NodeType,
        "instance": hardware.Instance,
        "cluster": hardware.ClusterSpec,
    }[kind]
    data.setdefault("id", "uploaded")
    try:
        obj = model.model_validate(data)
    except ValidationError as e:
        raise pydantic_message(kind, e) from None
    return f"valid {kind} '{obj.id}'"


def render() -> None:
    st.title("Catalog")
    tables = guarded(_tables)
    if tables is not None:
        for tab, (name, df) in zip(st.tabs(list(tables)), tables.items(), strict=True):
            with tab:
                st.caption(f"{len(df)} {name.lower()}")
                st.dataframe(df)
    st.subheader("Check a YAML spec")
    kind = st.selectbox("Kind", KINDS, key="cat_kind")
    up = st.file_uploader("YAML file", type=["yaml", "yml"], key="cat_upload")
    text = st.text_area("...or paste it", key="cat_text", height=150)
    name = "pasted.yaml"
    if up is not None:
        text, name = up.getvalue().decode("utf-8", errors="replace"), up.name
    if text.strip():
        ok = guarded(check_spec, kind, text, name)
        if ok is not None:
            st.success(ok)
            if kind == "model" and st.button("Use this model in Simulate", key="cat_use_model"):
                path = _keep(text, name)
                st.session_state[PENDING_KEY] = {"model": path}
                st.success(f"Saved as {path}: open Simulate, where it is the selected model.")


def _keep(text: str, name: str) -> str:
    """Keep a checked model spec where the other pages can load it by path."""
    folder = Path(tempfile.gettempdir()) / "planner-app-specs"
    folder.mkdir(exist_ok=True)
    stem = Path(name).stem or "model"
    path = folder / f"{stem}.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)
