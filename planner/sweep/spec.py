"""A sweep's spec: what it runs (base scenario, axes, mode), checked on load, and its points, counted
before they are expanded and then streamed one at a time (a spec may describe far more points than fit
in memory: three 1,000-value axes are 10^9)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from planner.errors import PlannerInputError, pydantic_message
from planner.recsys.strategy import RecsysStrategy
from planner.transformer.strategy import Strategy

HARDWARE_INPUTS: dict[str, Any] = {
    "model": str,
    "cluster": str,
    "instance": str,
    "accelerator": str,
    "gpus": int,
    "gpus_per_node": int,
    "inter_node_gbps_per_gpu": float,
    "seq_len": int,
}
SIMULATE_INPUTS: dict[str, Any] = {
    **HARDWARE_INPUTS,
    **{k: f.annotation for k, f in Strategy.model_fields.items()},
    **{k: f.annotation for k, f in RecsysStrategy.model_fields.items() if k not in Strategy.model_fields},
}
SEARCH_INPUTS: dict[str, Any] = {
    **HARDWARE_INPUTS,
    "global_batch": int,
    "objective": Literal["time", "cost"],
}

MAX_POINTS = 100_000
"""Default limit on a sweep's points (``--max-points`` / ``max_points`` raise it): a typo in an axis
should not start a run of a billion points."""

_STRICT = ConfigDict(extra="forbid", strict=False)
_SimulateInputs = create_model(  # type: ignore[call-overload]
    "SimulateInputs", __config__=_STRICT, **{k: (t | None, None) for k, t in SIMULATE_INPUTS.items()}
)
_SearchInputs = create_model(  # type: ignore[call-overload]
    "SearchInputs", __config__=_STRICT, **{k: (t | None, None) for k, t in SEARCH_INPUTS.items()}
)


class SweepSpec(BaseModel):
    """What a sweep runs. Keys of ``base`` and ``axes`` are inputs of :func:`planner.simulate`
    (or, with ``search: true``, of :func:`planner.search.search`: model, hardware, seq_len,
    global_batch, objective)."""

    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any] = {}
    axes: dict[str, list[Any]] = {}
    mode: Literal["product", "zip"] = "product"
    search: bool = False
    calibration: str | None = None  # a calibration profile (planner calibrate); relative to the spec's folder

    def count(self) -> int:
        """How many points, without expanding them: the product of the axes' lengths (zip: their
        common length; no axes: the base alone)."""
        lens = [len(v) for v in self.axes.values()]
        if not lens:
            return 1
        return min(lens) if self.mode == "zip" else math.prod(lens)

    def points(self) -> Points:
        """Every point's inputs, in order (base, then the axes' values), lazily: ``len()`` counts
        them and iterating yields one at a time; no list of them is ever built."""
        return Points(self)


class Points:
    """A spec's points, never expanded: ``len()`` is :meth:`SweepSpec.count`; iteration streams them."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec

    def __len__(self) -> int:
        return self.spec.count()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        s = self.spec
        names = list(s.axes)
        lists = [s.axes[n] for n in names]
        combos: Iterable[tuple[Any, ...]] = zip(*lists, strict=True) if s.mode == "zip" else itertools.product(*lists)
        return ({**s.base, **dict(zip(names, c, strict=True))} for c in combos)


def check_count(spec: SweepSpec, max_points: int | None) -> int:
    """The spec's point count; refuses a spec with more than ``max_points`` (default :data:`MAX_POINTS`)."""
    limit = MAX_POINTS if max_points is None else max_points
    if limit < 1:
        raise PlannerInputError("max_points", f"must be a positive integer, got {limit}")
    n = spec.count()
    if n > limit:
        raise PlannerInputError(
            "spec.axes", f"has {n:,} points, more than the limit of {limit:,}; raise it with --max-points (max_points)"
        )
    return n


def _check_inputs(where: str, values: dict[str, Any], search: bool, value_where: str | None = None) -> None:
    """Every key a known input and every value of its type and finite; ``value_where`` names a lone value."""
    known = SEARCH_INPUTS if search else SIMULATE_INPUTS
    for k, v in values.items():
        if k not in known:
            hint = " (search: true chooses the layout itself)" if search and k in SIMULATE_INPUTS else ""
            raise PlannerInputError(f"{where}.{k}", f"not a sweep input{hint}; known: {', '.join(known)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise PlannerInputError(value_where or f"{where}.{k}", f"must be a finite number, got {v}")
    model = _SearchInputs if search else _SimulateInputs
    try:
        model.model_validate(values)
    except ValidationError as e:
        err = pydantic_message(where, e)
        if value_where is not None:
            raise PlannerInputError(value_where, err.rule) from None
        raise err from None


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PlannerInputError("spec", f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise PlannerInputError("spec", f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except yaml.YAMLError as e:
        raise PlannerInputError("spec", f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None


def load_spec(spec: str | os.PathLike[str] | dict[str, Any] | SweepSpec) -> SweepSpec:
    """A validated :class:`SweepSpec` from a YAML path, a dict or a spec; a mistake raises one
    :class:`PlannerInputError` naming the key."""
    try:
        return _load_spec(spec)
    except RecursionError:
        raise PlannerInputError("spec", "is nested too deeply; base and axes hold plain values") from None


def _load_spec(spec: str | os.PathLike[str] | dict[str, Any] | SweepSpec) -> SweepSpec:
    if isinstance(spec, SweepSpec):
        data: Any = spec.model_dump()
    elif isinstance(spec, dict):
        data = spec
    else:
        data = _read_yaml(Path(spec))
    if not isinstance(data, dict):
        raise PlannerInputError("spec", "must be a mapping with base, axes, mode, search")
    if isinstance(data.get("calibration"), str) and not isinstance(spec, (dict, SweepSpec)):
        prof = Path(data["calibration"])
        if not prof.is_absolute() and not prof.exists():
            data = {**data, "calibration": str(Path(spec).parent / prof)}
    try:
        s = SweepSpec.model_validate(data)
    except ValidationError as e:
        raise pydantic_message("spec", e) from None
    _check_inputs("spec.base", s.base, s.search)
    for name, values in s.axes.items():
        _check_inputs("spec.axes", {name: None}, s.search)
        if not values:
            raise PlannerInputError(f"spec.axes.{name}", "is an empty list")
        if name in s.base:
            raise PlannerInputError(f"spec.axes.{name}", "is also set in base; set it in one place")
        for i, v in enumerate(values):
            _check_inputs("spec.axes", {name: v}, s.search, value_where=f"spec.axes.{name}[{i}]")
    if s.mode == "zip" and len({len(v) for v in s.axes.values()}) > 1:
        lens = ", ".join(f"{k} has {len(v)}" for k, v in s.axes.items())
        raise PlannerInputError("spec.axes", f"zip mode needs lists of equal length ({lens})")
    return s


def point_key(inputs: dict[str, Any], search: bool) -> str:
    """Stable id of a point: a hash of its inputs (order-free) and of the search flag."""
    text = json.dumps({"inputs": inputs, "search": search}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]
