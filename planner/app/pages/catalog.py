"""Catalog: accelerators, instances, clusters and models; check a YAML spec before using it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from planner.app.common import PENDING_KEY, escape_md, guarded, session_dir
from planner.app.inputs import add_custom_model, init_inputs
from planner.app.nav import go
from planner.app.tables import show_table
from planner.errors import PlannerInputError, pydantic_message

KINDS = ("model", "accelerator", "node type", "instance", "cluster", "sweep spec")


LONG_TEXT = ("description", "sources", "notes", "price_source")
"""Columns of prose: shown for one selected row, not in the table (they would stretch every row)."""


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested fields as their own columns (``scale_up_bandwidth_gb_s``); lists joined by "; "."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}_"))
        elif isinstance(v, (list, tuple)):
            out[f"{prefix}{k}"] = "; ".join(map(str, v))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _tables() -> dict[str, pd.DataFrame]:
    from planner.hardware import catalog
    from planner.registry import load_model, preset_names

    cat = catalog()

    def frame(items: dict[str, Any]) -> pd.DataFrame:
        return pd.DataFrame([_flat(v.model_dump(mode="json")) for v in items.values()])

    names = preset_names()
    models = []
    for name in names["transformer"]:
        m = load_model(name)
        models.append({"name": name, "kind": "transformer", "params_b": m.num_params / 1e9, "layers": m.num_layers,
                       "hidden": m.hidden_size, "seq_len": m.seq_len})  # fmt: skip
    models += [{"name": n, "kind": "recsys"} for n in names.get("recsys", [])]
    return {
        "Accelerators": frame(cat.accelerators),
        "Instances": frame(cat.instances),
        "Node types": frame(cat.node_types),
        "Clusters": frame(cat.clusters),
        "Models": pd.DataFrame(models),
    }


def _filtered(df: pd.DataFrame, text: str) -> pd.DataFrame:
    """Rows with ``text`` in any cell (case-insensitive); every row when it is empty."""
    if not text.strip():
        return df
    hit = df.astype(str).apply(lambda col: col.str.contains(text.strip(), case=False, regex=False)).any(axis=1)
    return df[hit]


def _show(name: str, df: pd.DataFrame, text: str) -> None:
    rows = _filtered(df, text)
    short = rows[[c for c in rows.columns if c not in LONG_TEXT]]
    show_table(short, name.lower().replace(" ", "_"), caption=f"{len(rows)} of {len(df)} {name.lower()}")
    prose = [c for c in LONG_TEXT if c in rows.columns]
    if prose and len(rows):
        pick = st.selectbox("Details of", list(rows.iloc[:, 0]), key=f"cat_detail_{name}")
        row = rows[rows.iloc[:, 0] == pick].iloc[0]
        for c in prose:
            if isinstance(row[c], str) and row[c]:
                st.caption(escape_md(f"{c.replace('_', ' ')}: {row[c]}"))


def check_spec(kind: str, text: str, name: str = "uploaded.yaml") -> str:
    """Validate an uploaded YAML spec of ``kind``; returns a one-line summary or raises PlannerInputError
    (naming the file as uploaded, not the temporary copy)."""
    folder = tempfile.mkdtemp(prefix="check-", dir=session_dir())
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

        return f"valid sweep spec: {load_spec(path).count():,} points"
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
    init_inputs()
    tables = guarded(_tables)
    if tables is not None:
        text = st.text_input("Filter (any cell contains)", key="cat_filter", placeholder="e.g. h100, aws, 80")
        for tab, (name, df) in zip(st.tabs(list(tables)), tables.items(), strict=True):
            with tab:
                _show(name, df, text)
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
            st.success(escape_md(ok))
            if kind == "model" and st.button("Use this model in Simulate", key="cat_use_model_btn"):
                spec = guarded(_spec_of, text, name)
                if spec is not None:
                    st.session_state[PENDING_KEY] = {"in_model": add_custom_model(spec)}
                    go("simulate")


def _spec_of(text: str, name: str) -> Any:
    """The checked model spec itself (named by its ``name`` field, else by the file's name)."""
    from planner.registry import load_model

    folder = tempfile.mkdtemp(prefix="model-", dir=session_dir())
    path = os.path.join(folder, (Path(name).stem or "model") + ".yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return load_model(path)
