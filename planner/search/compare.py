"""Compare cloud instance types: for each, the best layout, step time, MFU, days and dollars to train.

For each instance the GPU count is ``gpus`` when given; otherwise the count is chosen on the quick
estimate among whole-instance counts doubling up to ``max_gpus``: the cheapest that meets
``deadline_days``, else the fastest within ``budget_usd``, else the cheapest that fits. With both a
deadline and a budget, both hold together: the cheapest count that meets the deadline within the
budget; if none does, the fastest count within the budget; if none is within it, the fastest tried.
Each row then says whether its run meets the deadline (``meets_deadline``) and stays within the
budget (``within_budget``); both are null when not asked, so a missed constraint is never silent. A
row whose hardware cannot run the model says why in ``reason``; the other rows are still answered.
The chosen count then gets a full search (a lighter pruning than ``planner search``: the estimate's best few
are simulated). Time and cost to train ``tokens`` include failures, checkpoints and restarts
(:mod:`planner.search.goodput`). Rows are sorted by the objective: total cost (unpriced instances
last) or wall time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from planner.calibration import DEFAULT, Calibration
from planner.errors import PlannerInputError
from planner.hardware import Cluster, catalog, resolve_cluster
from planner.registry import load_model
from planner.search.enumerate import GridEnumerator
from planner.search.evaluate import FullSimulator
from planner.search.goodput import GoodputModel, run_plan
from planner.search.prune import TopKPruner
from planner.search.search import (
    CHINCHILLA_TOKENS_PER_PARAM,
    NoLayoutFits,
    Searcher,
    default_global_batch,
    require_transformer,
)
from planner.search.types import OBJECTIVES, CompareResult, CompareRow, Objective, RunPlan, SearchSpace
from planner.transformer.estimate import AnalyticalEstimator
from planner.transformer.frameworks import framework as framework_entry
from planner.transformer.spec import TransformerSpec


def _estimated_run(
    searcher: Searcher,
    model: TransformerSpec,
    cluster: Cluster,
    tokens: float,
    gb: int,
    gm: GoodputModel,
    space: SearchSpace | None = None,
) -> RunPlan | None:
    """The run plan of the estimate's fastest fitting layout (no full simulation), or None."""
    en = GridEnumerator().enumerate(model, cluster, space or SearchSpace(), gb)
    best = None
    for s in en.valid:
        e = searcher.estimator.estimate(model, cluster, s)
        if e.fits and (best is None or e.step_time_s < best):
            best = e.step_time_s
    if best is None:
        return None
    return run_plan(
        tokens=tokens,
        tokens_per_step=gb * model.seq_len,
        step_time_s=best,
        gpus=cluster.num_gpus,
        params=model.num_params,
        usd_per_gpu_hour=cluster.usd_per_gpu_hour,
        model=gm,
    )


@dataclass(frozen=True)
class RowRequest:
    """What every instance's row of one comparison shares: the search, the model, the run and its
    constraints."""

    searcher: Searcher
    model: TransformerSpec
    tokens: float
    goodput: GoodputModel
    deadline_days: float | None
    budget_usd: float | None
    max_gpus: int
    global_batch: int | None
    objective: Objective
    space: SearchSpace | None = None


def choose_gpus(req: RowRequest, instance: str) -> int | None:
    """The GPU count for an instance when none is given (see the module docstring); None if none fits."""
    searcher, model, tokens, gm, space = req.searcher, req.model, req.tokens, req.goodput, req.space
    deadline_days, budget_usd, max_gpus, global_batch = req.deadline_days, req.budget_usd, req.max_gpus, req.global_batch
    node = catalog().node_type(catalog().instance(instance).node_type)
    k = node.gpus_per_node
    plans: list[tuple[int, RunPlan]] = []
    while k <= max_gpus:
        cl = resolve_cluster(gpus=k, instance=instance)
        gb = global_batch if global_batch is not None else default_global_batch(model, k)
        p = _estimated_run(searcher, model, cl, tokens, gb, gm, space)
        if p is not None:
            plans.append((k, p))
            if deadline_days is not None and budget_usd is None and p.wall_days <= deadline_days:
                return k  # the smallest count that meets the deadline: fewest GPUs, highest efficiency
        k *= 2
    if not plans:
        return None
    within = [(k, p) for k, p in plans if budget_usd is not None and p.usd is not None and p.usd <= budget_usd]
    if deadline_days is not None:
        both = [(k, p) for k, p in within if p.wall_days <= deadline_days]
        if both:
            return min(both, key=lambda kp: (kp[1].usd, kp[1].wall_s))[0]
        if within:
            return min(within, key=lambda kp: kp[1].wall_s)[0]  # the deadline is missed: the closest within budget
        return plans[-1][0]  # none meets it: the fastest tried
    if budget_usd is not None:
        return min(within, key=lambda kp: kp[1].wall_s)[0] if within else plans[0][0]
    return min(plans, key=lambda kp: (kp[1].usd if kp[1].usd is not None else kp[1].gpu_hours, kp[1].wall_s))[0]


def compare(
    model: str | TransformerSpec,
    *,
    instances: Sequence[str],
    gpus: int | None = None,
    tokens: float | None = None,
    deadline_days: float | None = None,
    budget_usd: float | None = None,
    max_gpus: int = 4096,
    objective: Objective = "cost",
    global_batch: int | None = None,
    seq_len: int | None = None,
    goodput: GoodputModel | None = None,
    workers: int | None = None,
    progress: bool = False,
    calibration: Calibration | None = None,
    framework: str | None = None,
) -> CompareResult:
    """Best layout, time and cost to train ``tokens`` on each instance type, best first."""
    spec = load_model(model, seq_len) if isinstance(model, str) else model
    require_transformer(spec)
    if not instances:
        raise PlannerInputError("instances", "name at least one instance type")
    if objective not in OBJECTIVES:
        raise PlannerInputError("objective", f"must be one of {', '.join(OBJECTIVES)}, got '{objective}'")
    if tokens is not None and not tokens > 0:
        raise PlannerInputError("tokens", f"must be > 0, got {tokens}")
    for name, v in (("deadline_days", deadline_days), ("budget_usd", budget_usd)):
        if v is not None and not v > 0:
            raise PlannerInputError(name, f"must be > 0, got {v}")
    cat = catalog()
    for i in instances:
        cat.instance(i, field="instances")  # unknown ids fail fast, with suggestions
    n_tokens = tokens if tokens is not None else CHINCHILLA_TOKENS_PER_PARAM * spec.num_params
    gm = goodput or GoodputModel()
    calib = calibration or DEFAULT
    # a framework is fixed, not compared: its choices fill what the search does not vary
    space = None if framework is None else SearchSpace(framework=framework_entry(framework).name)
    searcher = Searcher(
        estimator=AnalyticalEstimator(calib),
        pruner=TopKPruner(top_k=8, top_k_other=0, family_margin=0.04, max_total=16, margin=0.05, min_k=4),
        simulator=FullSimulator(workers=workers, calib=calib, progress=progress),
        calib=calib,
    )
    req = RowRequest(searcher, spec, n_tokens, gm, deadline_days, budget_usd, max_gpus, global_batch, objective, space)
    rows = []
    for i in instances:
        try:
            row = _row(req, i, gpus)
            rows.append(row)
        except PlannerInputError as e:  # this hardware cannot run it (e.g. no NIC figure): its row says why
            rows.append(CompareRow(**_base(i), gpus=gpus, fits=False, reason=str(e)))

    def key(r: CompareRow) -> tuple[float, float]:
        if r.run is None:
            return (float("inf"), float("inf"))
        cost = r.run.usd if r.run.usd is not None else float("inf")
        return (cost, r.run.wall_s) if objective == "cost" else (r.run.wall_s, cost)

    return CompareResult(
        model=spec.name,
        tokens=n_tokens,
        objective=objective,
        results=sorted(rows, key=key),
        deadline_days=deadline_days,
        budget_usd=budget_usd,
    )


def _base(instance: str) -> dict:
    """The fields of an instance's row that hold whether or not it runs: ids and price."""
    inst = catalog().instance(instance, field="instances")
    node = catalog().node_type(inst.node_type)
    return {
        "instance": instance,
        "provider": inst.provider,
        "accelerator": node.accelerator,
        "price_source": inst.price_source,
        "price_date": inst.price_date,
        "usd_per_gpu_hour": inst.usd_per_hour / node.gpus_per_node if inst.usd_per_hour is not None else None,
    }


def _row(req: RowRequest, instance: str, gpus: int | None) -> CompareRow:
    """One instance's row: its GPU count, best layout and run, and whether it meets the constraints."""
    base = _base(instance)
    searcher, spec, deadline_days, budget_usd = req.searcher, req.model, req.deadline_days, req.budget_usd
    n = gpus
    if n is None:
        n = choose_gpus(req, instance)
        if n is None:
            return CompareRow(**base, fits=False, reason=f"no layout fits on up to {req.max_gpus} GPUs")
    try:
        cluster = resolve_cluster(gpus=n, instance=instance)
    except PlannerInputError as e:
        return CompareRow(**base, gpus=n, fits=False, reason=str(e))
    gb = req.global_batch if req.global_batch is not None else default_global_batch(spec, n)
    try:
        res = searcher.run(spec, cluster, global_batch=gb, objective=req.objective, top=1, tokens=req.tokens,
                           goodput=req.goodput, alternatives=False, space=req.space)  # fmt: skip
    except NoLayoutFits as e:
        return CompareRow(**base, gpus=n, fits=False, reason=e.rule)
    best = res.results[0]
    run = res.run
    return CompareRow(
        **base,
        gpus=n,
        fits=True,
        layout=best.layout,
        step_time_s=best.step_time_s,
        uncertainty=best.uncertainty,
        mfu=best.mfu,
        usd_per_million_tokens=run.usd_per_million_tokens if run else None,
        run=run,
        evaluated=res.evaluated,
        meets_deadline=None if deadline_days is None or run is None else run.wall_days <= deadline_days,
        within_budget=None if budget_usd is None or run is None or run.usd is None else run.usd <= budget_usd,
    )
