"""The registry of workload families: the one place that names them.

Everything above the families (simulate, search, sweep, validate, calibrate, the faces) finds a
family here, by a spec, a result, a kind or a model reference, and then calls only the contract in
:mod:`planner.family`. A new family is a new package and a new entry in :data:`FAMILIES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planner.errors import PlannerInputError, unknown_id
from planner.family import WorkloadFamily
from planner.recsys.family import FAMILY as RECSYS
from planner.transformer.family import FAMILY as TRANSFORMER

FAMILIES: dict[str, WorkloadFamily] = {TRANSFORMER.kind: TRANSFORMER, RECSYS.kind: RECSYS}
"""Workload kind (a spec's ``kind`` field) -> its family. The first is the default kind of a file."""

DEFAULT_KIND = TRANSFORMER.kind


def family(kind: str) -> WorkloadFamily:
    """The family of a workload kind."""
    if kind not in FAMILIES:
        raise unknown_id("kind", kind, FAMILIES)
    return FAMILIES[kind]


def family_of(spec: object) -> WorkloadFamily:
    """The family a loaded spec belongs to."""
    for fam in FAMILIES.values():
        if fam.accepts(spec):
            return fam
    raise PlannerInputError("model", f"not a model spec of any family: {type(spec).__name__}")


def family_of_result(result: object) -> WorkloadFamily:
    """The family that produced a result."""
    for fam in FAMILIES.values():
        if isinstance(result, fam.result_type):  # type: ignore[attr-defined]
            return fam
    raise TypeError(f"not a step result of any family: {type(result).__name__}")


def preset_names() -> dict[str, list[str]]:
    """Built-in model names per kind."""
    return {kind: fam.preset_names() for kind, fam in FAMILIES.items()}


def is_file_ref(ref: str) -> bool:
    """Whether a model reference names a file rather than a preset."""
    return ref.endswith((".yaml", ".yml", ".json")) or "/" in ref or "\\" in ref


def load_model(ref: str | Any, seq_len: int | None = None) -> Any:
    """A workload from a preset name of any family, a YAML file (its ``kind`` field says which
    family; transformer by default), a Hugging Face ``config.json`` (planner.transformer.hf_config)
    or an already loaded spec."""
    if not isinstance(ref, str):
        return family_of(ref).with_overrides(ref, seq_len)
    if is_file_ref(ref):
        from planner.hardware import load_yaml
        from planner.transformer.hf_config import from_hf_config, is_hf_config, read_json_object

        data = read_json_object(ref) if ref.lower().endswith(".json") else load_yaml(Path(ref), "model")
        if ref.lower().endswith(".json") and is_hf_config(data):
            return from_hf_config(ref, seq_len=seq_len)
        if not isinstance(data, dict):
            raise PlannerInputError("model", f"{ref}: expected a YAML mapping of fields")
        data = dict(data)
        data.setdefault("name", Path(ref).stem)
        return family(str(data.pop("kind", DEFAULT_KIND))).load(data, seq_len)
    for fam in FAMILIES.values():
        if fam.is_preset(ref):
            return fam.load(ref, seq_len)
    raise unknown_id("model", ref, [n for names in preset_names().values() for n in names])
