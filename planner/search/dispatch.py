"""One search entry point for every workload family, chosen by a table keyed on the family's kind.

Faces (the CLI, the app) call :func:`search_any` and :func:`format_any_search` and never ask what
kind of model they hold: a transformer gets the layout search (:func:`planner.search.search`), a
recommendation model the sharding search (:func:`planner.search.recsys.search_recsys`). Both get the
same defaults: the hardware of :func:`planner.defaults.default_hardware` and the fewest GPUs of
:func:`planner.search.search.default_min_gpus` (a quarter).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from planner.defaults import default_hardware
from planner.errors import PlannerInputError
from planner.hardware import resolve_cluster
from planner.keywords import HardwareChoice, take
from planner.registry import family_of, load_model
from planner.search.format import format_search
from planner.search.recsys import RecsysSearchResult, format_recsys_search, search_recsys
from planner.search.search import default_min_gpus, search
from planner.search.types import SearchResult, SearchSpace
from planner.transformer.frameworks import framework as framework_entry


def _search_recsys(model: Any, *, spec: Any, **kw: Any) -> RecsysSearchResult:
    """The recommendation-model search with the transformer search's keywords: the run-length and
    process options that do not apply are refused (``tokens``) or ignored (``workers``, ``progress``)."""
    if kw.pop("tokens", None) is not None:
        raise PlannerInputError("tokens", "a recommendation model trains on samples, not tokens")
    for unused in ("seq_len", "goodput", "workers", "progress", "space", "alternatives"):
        kw.pop(unused, None)
    hw = take(kw, HardwareChoice)
    hw.update(default_hardware(**{k: hw.get(k) for k in ("cluster", "instance", "accelerator", "gpus")}))
    gpus = hw.pop("gpus") or resolve_cluster(**hw, gpus=None).num_gpus  # a cluster: all of its GPUs
    if kw.get("global_batch") is None:
        kw["global_batch"] = spec.default_global_batch
    kw["min_gpus"] = default_min_gpus(gpus, kw.get("min_gpus"))
    if kw.get("calibration") is None:
        kw.pop("calibration", None)
    hw = {k: v for k, v in hw.items() if v is not None}
    return search_recsys(model if isinstance(model, str) else spec.name, gpus=gpus, **kw, **hw)


def _search_transformer(model: Any, *, spec: Any, **kw: Any) -> SearchResult:
    """The layout search (:func:`planner.search.search`) on the loaded spec; a ``framework`` is fixed
    in the search space (its choices fill what the search does not vary)."""
    framework = kw.pop("framework", None)
    if framework is not None:
        framework_entry(framework)  # an unknown name: one line, exit 2
        framework = framework.strip().lower()
        kw["space"] = (kw.get("space") or SearchSpace()).model_copy(update={"framework": framework})
    return search(spec, **kw)


SEARCHES: dict[str, Callable[..., Any]] = {"transformer": _search_transformer, "recsys": _search_recsys}
"""Family kind -> its search, called as ``f(model, spec=loaded_spec, **keywords of search())``."""

FORMATS: dict[type, Callable[[Any], str]] = {SearchResult: format_search, RecsysSearchResult: format_recsys_search}
"""Search result type -> its text report."""


def search_any(model: str | Any, *, seq_len: int | None = None, **kw: Any) -> SearchResult | RecsysSearchResult:
    """Search any model (preset, file or spec) with the keywords of :func:`planner.search.search`;
    the model's family picks the search."""
    spec = load_model(model, seq_len)
    kind = family_of(spec).kind
    if kind not in SEARCHES:
        raise PlannerInputError("model", f"search does not cover {kind} models")
    return SEARCHES[kind](model, spec=spec, **kw)


def format_any_search(result: SearchResult | RecsysSearchResult) -> str:
    """The text report of any search result."""
    return FORMATS[type(result)](result)
