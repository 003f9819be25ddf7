"""Scenario in, StepResult out: the pipeline every face (CLI, app, API) goes through.

workload + cluster + strategy -> check_layout -> graph (networkx) -> engine (simpy) -> report
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from planner.calibration import DEFAULT, Calibration
from planner.costs.collectives import CollectiveModel
from planner.costs.compute import ComputeModel
from planner.energy import Site, estimate_energy, make_site
from planner.engine import play
from planner.errors import PlannerInputError, pydantic_message
from planner.graph.transformer import build
from planner.hardware import Cluster, resolve_cluster
from planner.memory import memory
from planner.report import Cost, StepResult, breakdown, step_price
from planner.strategy import Strategy, check_layout
from planner.workloads.recsys import RecsysSpec, is_recsys_preset, load_recsys
from planner.workloads.transformer import TransformerSpec, load_model

STRATEGY_FIELDS = tuple(Strategy.model_fields)


def make_strategy(**fields: Any) -> Strategy:
    """A :class:`Strategy` from keyword arguments; a bad value raises one clear user error."""
    unknown = [k for k in fields if k not in STRATEGY_FIELDS]
    if unknown:
        raise PlannerInputError(unknown[0], f"not a strategy field (known: {', '.join(STRATEGY_FIELDS)})")
    try:
        return Strategy.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        raise pydantic_message("strategy", e) from None


def resolve_model(
    model: str | TransformerSpec | RecsysSpec, seq_len: int | None = None
) -> TransformerSpec | RecsysSpec:
    """A workload from a preset name (transformer or recsys), a YAML file (its ``kind`` field says
    which: ``transformer``, the default, or ``recsys``) or a spec object."""
    if not isinstance(model, str):
        if seq_len is not None and isinstance(model, TransformerSpec):
            return model.model_copy(update={"seq_len": seq_len})
        return model
    if is_recsys_preset(model):
        spec: TransformerSpec | RecsysSpec = load_recsys(model)
    elif model.endswith((".yaml", ".yml")) or "/" in model:
        from planner.hardware import load_yaml

        data = load_yaml(Path(model), "model")
        if isinstance(data, dict) and data.get("kind") == "recsys":
            data.setdefault("name", Path(model).stem)
            spec = load_recsys(data)
        else:
            spec = load_model(model, seq_len)
    else:
        spec = load_model(model, seq_len)
    if seq_len is not None and isinstance(spec, RecsysSpec):
        raise PlannerInputError("seq_len", "a recommendation model has no sequence length")
    return spec


def _simulate_transformer(
    spec: Any, hw: Cluster, strategy: Any, calib: Calibration, strategy_fields: dict[str, Any]
) -> StepResult:
    strat = strategy if strategy is not None else make_strategy(**strategy_fields)
    return simulate_scenario(spec, hw, strat, calib)


def _simulate_recsys(spec: Any, hw: Cluster, strategy: Any, calib: Calibration, strategy_fields: dict[str, Any]) -> Any:
    from planner.recsys.run import make_recsys_strategy, simulate_recsys

    strat = strategy if strategy is not None else make_recsys_strategy(**strategy_fields)
    return simulate_recsys(spec, hw, strat, calib)


SIMULATORS: dict[str, Callable[..., Any]] = {"transformer": _simulate_transformer, "recsys": _simulate_recsys}
"""Workload kind (the spec's ``kind`` field) -> the function that simulates it. A new workload
family is a new entry here and a new graph builder; nothing else dispatches on the kind."""


def simulate(
    model: str | TransformerSpec | RecsysSpec = "gpt3-1.7b",
    *,
    cluster: str | Cluster | None = None,
    instance: str | None = None,
    accelerator: str | None = None,
    gpus: int | None = None,
    gpus_per_node: int | None = None,
    inter_node_gbps_per_gpu: float | None = None,
    seq_len: int | None = None,
    strategy: Strategy | None = None,
    calibration: Calibration | None = None,
    site: Site | None = None,
    pue: float | None = None,
    grid_gco2_per_kwh: float | None = None,
    usd_per_kwh: float | None = None,
    tokens: float | None = None,
    **strategy_fields: Any,
) -> StepResult:
    """Predict one training step.

    ``model`` is a preset name, a YAML path, a :class:`TransformerSpec` or a :class:`RecsysSpec`
    (recommendation models take ``global_batch``, ``precision``, ``sharding`` =
    table|row|column|data|auto, ``placement``, ``host_memory_gib`` and return a
    :class:`~planner.report.RecsysStepResult`); the hardware is one of
    ``cluster`` (catalog id, YAML path or a resolved :class:`Cluster`), ``instance`` or
    ``accelerator`` with ``gpus``; the layout is ``strategy`` or its fields as keywords
    (``tp=8, pp=16, micro_batch=1, global_batch=1536, recompute="full"``, ...). The result's
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
    if tokens is not None and spec.kind == "recsys":
        raise PlannerInputError("tokens", "a recommendation model trains on samples, not tokens")
    if accelerator is None and instance is None and cluster is None:
        accelerator = "h100-sxm-80gb"
    hw = resolve_cluster(
        gpus=gpus,
        cluster=cluster,
        instance=instance,
        accelerator=accelerator,
        gpus_per_node=gpus_per_node,
        inter_node_gbps_per_gpu=inter_node_gbps_per_gpu,
    )
    r = SIMULATORS[spec.kind](spec, hw, strategy, calibration or DEFAULT, strategy_fields)
    r.energy = estimate_energy(r, hw, where, tokens=tokens)  # the caller's site and run length
    return r


def simulate_scenario(model: TransformerSpec, cluster: Cluster, strategy: Strategy, calib: Calibration) -> StepResult:
    """The core: resolved inputs to a :class:`StepResult` with its timeline attached."""
    s = check_layout(strategy, model, cluster)
    comp = ComputeModel(cluster.accelerator, calib, s.precision)
    coll = CollectiveModel(cluster, calib)
    sg = build(model, s, comp, coll)
    tl = play(sg.graph)
    bd = breakdown(sg.graph, tl, sg.ranks)
    step = tl.makespan_s
    n = cluster.num_gpus
    tokens = s.global_batch * model.seq_len  # type: ignore[operator]
    model_flops = model.model_flops_per_token() * tokens
    recompute_flops_per_token = 0.0
    if s.recompute == "full":
        recompute_flops_per_token = model.model_flops_per_token() / 3 - 2.0 * model.vocab_size * model.hidden_size
    elif s.recompute == "selective":
        recompute_flops_per_token = model.attention_flops_per_token()
    hw_flops = model_flops + recompute_flops_per_token * tokens
    peak = cluster.accelerator.peak_flops(s.precision)
    mem = memory(model, s, cluster, comp.elem_bytes)
    priced = step_price(cluster, step)
    usd_step = priced["usd_per_step"]
    cost = Cost(**priced, usd_per_million_tokens=usd_step / tokens * 1e6 if usd_step is not None else None)
    scenario = {
        "model": model.model_dump(),
        "cluster": {
            "name": cluster.name,
            "accelerator": cluster.accelerator.id,
            "num_gpus": n,
            "gpus_per_node": cluster.node.gpus_per_node,
            "nodes": cluster.num_nodes,
            "node_type": cluster.node.id,
            "scale_up_gb_s": cluster.node.scale_up.bandwidth_gb_s,
            "scale_out_gbps_per_gpu": cluster.node.scale_out_gbps_per_gpu,
            "instance": cluster.instance,
        },
        "strategy": s.model_dump(),
        "micro_batches_per_replica": s.micro_batches,
    }
    res = StepResult(
        step_time_s=step,
        mfu=model_flops / (step * n * peak),
        hfu=hw_flops / (step * n * peak),
        tokens_per_s=tokens / step,
        samples_per_s=s.global_batch / step,  # type: ignore[operator]
        model_tflops_per_gpu=model_flops / step / n / 1e12,
        hardware_tflops_per_gpu=hw_flops / step / n / 1e12,
        model_flops_per_step=model_flops,
        breakdown=bd,
        memory=mem,
        cost=cost,
        scenario=scenario,
        tasks=sg.graph.number_of_nodes(),
        calibration=calib.name,
    )
    res.energy = estimate_energy(res, cluster)
    res._timeline = tl
    res._graph = sg.graph
    return res
