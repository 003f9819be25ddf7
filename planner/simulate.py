"""Scenario in, StepResult out: the pipeline every face (CLI, app, API) goes through.

workload + cluster + strategy -> family.check -> family.plan -> family.build_graph (networkx)
-> engine (simpy) -> family.result; the family comes from planner.registry, nothing here
branches on the kind of workload.
"""

from __future__ import annotations

from typing import Any

from planner.calibration import DEFAULT, Calibration
from planner.defaults import resolve_hardware
from planner.energy import Site, estimate_energy, make_site
from planner.engine import play
from planner.errors import PlannerInputError
from planner.hardware import Cluster
from planner.keywords import HardwareChoice, take
from planner.registry import family, family_of, load_model
from planner.transformer.result import StepResult
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy


def make_strategy(**fields: Any) -> Strategy:
    """A transformer :class:`Strategy` from keyword arguments; a bad value raises one clear user error."""
    return family("transformer").make_strategy(**fields)


def resolve_model(model: str | Any, seq_len: int | None = None) -> Any:
    """A workload from a preset name (any family), a YAML file (its ``kind`` field says which:
    ``transformer``, the default, or ``recsys``) or a spec object."""
    return load_model(model, seq_len)


def run_step(spec: Any, cluster: Cluster, strategy: Any, calib: Calibration = DEFAULT) -> Any:
    """The core, for any family: check the layout, plan the step, build its graph, play it on the
    engine, assemble the result (its timeline attached)."""
    fam = family_of(spec)
    checked = fam.check(spec, strategy, cluster)
    plan = fam.plan(spec, checked, cluster, calib)
    graph = fam.build_graph(plan)
    return fam.result(plan, graph, play(graph.graph))


def simulate(
    model: str | Any = "gpt3-1.7b",
    *,
    seq_len: int | None = None,
    strategy: Strategy | None = None,
    calibration: Calibration | None = None,
    site: Site | None = None,
    pue: float | None = None,
    grid_gco2_per_kwh: float | None = None,
    usd_per_kwh: float | None = None,
    tokens: float | None = None,
    **fields: Any,
) -> StepResult:
    """Predict one training step.

    ``model`` is a preset name, a YAML path, a :class:`TransformerSpec` or a :class:`RecsysSpec`
    (recommendation models take ``global_batch``, ``precision``, ``sharding`` =
    table|row|column|data|auto, ``placement``, ``host_memory_gib`` and return a
    :class:`~planner.recsys.result.RecsysStepResult`). ``fields`` are the hardware, the keywords of
    :class:`~planner.keywords.HardwareChoice` (``cluster``, ``instance`` or ``accelerator`` with
    ``gpus``, ...; default 8 GPUs of a priced p5.48xlarge instance), and, unless ``strategy`` is
    given, the layout's fields (``tp=8, pp=16, micro_batch=1, global_batch=1536, recompute="full"``,
    ...; an unknown one is a :class:`PlannerInputError` naming it). The result's
    ``energy`` uses ``site`` (a :class:`planner.energy.Site`) or its figures ``pue``,
    ``grid_gco2_per_kwh``, ``usd_per_kwh`` (defaults: planner.energy, sourced), and ``tokens``
    (the run's length, transformers) for the per-run figures.

    >>> r = simulate("gpt3-175b", accelerator="a100-sxm-80gb", gpus=1024, tp=8, pp=16,
    ...              micro_batch=1, global_batch=1536, recompute="full")   # doctest: +SKIP
    """
    where = make_site(site, pue=pue, grid_gco2_per_kwh=grid_gco2_per_kwh, usd_per_kwh=usd_per_kwh)
    if tokens is not None and not tokens > 0:
        raise PlannerInputError("tokens", f"must be > 0, got {tokens}")
    spec = resolve_model(model, seq_len)
    fam = family_of(spec)
    if tokens is not None and fam.unit != "tokens":
        raise PlannerInputError("tokens", f"a {fam.kind} model trains on {fam.unit}, not tokens")
    hw = resolve_hardware(**take(fields, HardwareChoice))  # what is left are the strategy's fields
    r = run_step(spec, hw, strategy if strategy is not None else fam.make_strategy(**fields),
                 calibration or DEFAULT)  # fmt: skip
    r.energy = estimate_energy(r, hw, where, tokens=tokens)  # the caller's site and run length
    return r


def simulate_scenario(model: TransformerSpec, cluster: Cluster, strategy: Strategy, calib: Calibration) -> StepResult:
    """Resolved transformer inputs to a :class:`StepResult` with its timeline attached."""
    return run_step(model, cluster, strategy, calib)
