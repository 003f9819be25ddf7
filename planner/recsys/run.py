"""Recommendation model in, RecsysStepResult out: plan the sharding, build the graph, play it.

spec + cluster + RecsysStrategy -> Topology -> plan_sharding -> graph.recsys.build -> engine -> report
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from planner.calibration import Calibration
from planner.costs.collectives import CollectiveModel
from planner.costs.compute import ComputeModel
from planner.energy import estimate_energy
from planner.engine import Timeline, play
from planner.errors import PlannerInputError, pydantic_message
from planner.hardware import RUNTIME_RESERVE_GIB, Cluster
from planner.recsys.estimate import GRAD_BYTES, comm_bytes_per_element
from planner.recsys.frameworks import comm_dtype, recsys_framework, step_choices
from planner.recsys.graph import RecsysGraph, build, dense_memory_bytes
from planner.recsys.planner import plan_sharding
from planner.recsys.result import RecsysCost, RecsysMemory, RecsysStepResult, recsys_breakdown
from planner.recsys.spec import RecsysSpec
from planner.recsys.strategy import RECSYS_STRATEGY_FIELDS, RecsysStrategy
from planner.recsys.types import GIB, Plan, Topology
from planner.result import cluster_summary, step_price


def make_recsys_strategy(**fields: Any) -> RecsysStrategy:
    """A :class:`RecsysStrategy` from keywords; a transformer-only option is named as such."""
    unknown = [k for k in fields if k not in RECSYS_STRATEGY_FIELDS and fields[k] is not None]
    if unknown:
        raise PlannerInputError(
            unknown[0], f"not an option of a recommendation model (known: {', '.join(RECSYS_STRATEGY_FIELDS)})"
        )
    try:
        return RecsysStrategy.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        raise pydantic_message("strategy", e) from None


def topology(
    spec: RecsysSpec, cluster: Cluster, s: RecsysStrategy, comp: ComputeModel, coll: CollectiveModel
) -> Topology:
    """Devices, memory budgets and batch of a scenario, as the sharding planner sees them."""
    n = cluster.num_gpus
    gb = s.global_batch or spec.default_global_batch
    if gb < n:
        raise PlannerInputError("global_batch", f"{gb} samples cannot be split over {n} GPUs (at least one each)")
    cap = cluster.accelerator.memory_gib * GIB
    local = gb // n
    params, acts = dense_memory_bytes(spec, local, comp.elem_bytes)
    cb = comm_bytes_per_element(spec)
    # pooled-embedding buffers (forward output and gradient) of an even share of the tables
    pooled = 2.0 * gb * sum(t.dim for t in spec.tables) / n * (cb + GRAD_BYTES)
    budget = cap - RUNTIME_RESERVE_GIB * GIB - params - acts - pooled
    if budget <= 0:
        raise PlannerInputError(
            "global_batch",
            f"the dense model and activations of {local} samples per GPU need {(cap - budget) / GIB:,.1f} GiB,"
            f" more than the {cluster.accelerator.memory_gib:g} GiB of a {cluster.accelerator.id}",
        )
    host_gib = s.host_memory_gib if s.host_memory_gib is not None else cluster.node.host_memory_gib
    link = cluster.node.host_link_gb_s
    return Topology(
        world_size=n,
        gpus_per_node=min(cluster.node.gpus_per_node, n),
        hbm_budget_bytes=budget,
        hbm_capacity_bytes=cap,
        host_bytes_per_node=(host_gib or 0.0) * GIB,
        host_link_bytes_s=(link or 0.0) * 1e9,
        global_batch=gb,
        comp=comp,
        coll=coll,
        cache_load_factor=0.0 if s.placement == "memory_balanced" else s.cache_load_factor,
    )


def _memory(spec: RecsysSpec, plan: Plan, topo: Topology, cluster: Cluster, act_bytes: int) -> RecsysMemory:
    params, acts = dense_memory_bytes(spec, topo.local_batch, act_bytes)
    cb = comm_bytes_per_element(spec)
    per_rank = []
    worst = None
    node_host: dict[int, float] = {}
    cols_of: dict[int, int] = {}  # pooled columns each rank holds, in one pass (not ranks x shards)
    for o in plan.options:
        if o.sharding_type != "data_parallel":
            for s in o.shards:
                cols_of[s.rank] = cols_of.get(s.rank, 0) + s.cols
    for r in plan.ranks:
        pooled = 2.0 * topo.global_batch * cols_of.get(r.rank, 0) * (cb + GRAD_BYTES)
        total = r.hbm_bytes + params + acts + pooled + RUNTIME_RESERVE_GIB * GIB
        per_rank.append({"rank": r.rank, "hbm_gib": total / GIB, "embeddings_gib": r.hbm_bytes / GIB,
                         "host_gib": r.host_bytes / GIB, "tables": r.tables})  # fmt: skip
        node = r.rank // topo.gpus_per_node
        node_host[node] = node_host.get(node, 0.0) + r.host_bytes
        if worst is None or total > worst[0]:
            worst = (total, r, pooled)
    assert worst is not None
    total, r, pooled = worst
    cap = cluster.accelerator.memory_gib
    return RecsysMemory(
        embeddings_gib=r.hbm_bytes / GIB,
        dense_gib=params / GIB,
        activations_gib=(acts + pooled) / GIB,
        reserved_gib=RUNTIME_RESERVE_GIB,
        peak_gib=total / GIB,
        capacity_gib=cap,
        fits=total / GIB <= cap,
        rank=r.rank,
        host_gib_per_node=max(node_host.values(), default=0.0) / GIB,
        per_rank=per_rank,
    )


@dataclass(frozen=True)
class RecsysPlan:
    """One recommendation step, planned: the devices as the sharding planner sees them, and the
    sharding plan of the tables."""

    spec: RecsysSpec
    strategy: RecsysStrategy
    cluster: Cluster
    calib: Calibration
    comp: ComputeModel
    coll: CollectiveModel
    topo: Topology
    sharding: Plan


def framework_spec(spec: RecsysSpec, s: RecsysStrategy) -> RecsysSpec:
    """The model as the framework stores and exchanges it: tables in ``embedding_precision`` (fp16
    halves their bytes and memory), pooled embeddings on the wire in the framework's dtype."""
    update: dict[str, Any] = {}
    if s.embedding_precision is not None:
        update["tables"] = tuple(t.model_copy(update={"dtype": s.embedding_precision}) for t in spec.tables)
    wire = comm_dtype(recsys_framework(s.framework), s.precision)
    if wire is not None and spec.embedding_comm_dtype is None:
        update["embedding_comm_dtype"] = wire
    return spec.model_copy(update=update) if update else spec


def plan_step(spec: RecsysSpec, cluster: Cluster, strategy: RecsysStrategy, calib: Calibration) -> RecsysPlan:
    """Plan the sharding of ``spec`` on ``cluster`` (as the strategy's framework stores it)."""
    spec = framework_spec(spec, strategy)
    comp = ComputeModel(cluster.accelerator, calib, strategy.precision)
    coll = CollectiveModel(cluster, calib)
    topo = topology(spec, cluster, strategy, comp, coll)
    plan = plan_sharding(spec, topo, strategy.sharding, strategy.placement)
    return RecsysPlan(spec, strategy, cluster, calib, comp, coll, topo, plan)


def build_graph(p: RecsysPlan) -> RecsysGraph:
    """The task graph of a planned step."""
    s = p.strategy
    choices = step_choices(recsys_framework(s.framework), s.placement, s.precision, s.dp_overlap,
                           p.calib.recsys_step_host_s, p.calib.kernel_floor_s, s.interaction_kernel)  # fmt: skip
    return build(p.spec, p.sharding, p.topo, p.comp, p.coll, choices)


def simulate_recsys(
    spec: RecsysSpec, cluster: Cluster, strategy: RecsysStrategy, calib: Calibration
) -> RecsysStepResult:
    """Plan the sharding of ``spec`` on ``cluster``, simulate one step, report it."""
    p = plan_step(spec, cluster, strategy, calib)
    rg = build_graph(p)
    return assemble(p, rg, play(rg.graph))


def assemble(p: RecsysPlan, rg: RecsysGraph, tl: Timeline) -> RecsysStepResult:
    """The :class:`RecsysStepResult` of a planned step from its played timeline (timeline attached)."""
    spec, cluster, s, calib, comp, topo, plan = p.spec, p.cluster, p.strategy, p.calib, p.comp, p.topo, p.sharding
    step = tl.makespan_s
    n = cluster.num_gpus
    gb = topo.global_batch
    flops = spec.dense_flops_per_sample() * gb
    peak = cluster.accelerator.peak_flops(s.precision)
    priced = step_price(cluster, step)
    usd_step = priced["usd_per_step"]
    cost = RecsysCost(**priced, usd_per_billion_samples=usd_step / gb * 1e9 if usd_step is not None else None)
    sharding = {
        "placement": s.placement,
        "forced": s.sharding,
        "counts": plan.summary(),
        "proposals_tried": plan.proposals_tried,
        "tables": {o.table.name: o.label().split(":", 1)[1] for o in plan.options},
    }
    scenario = {
        "model": {
            "name": spec.name, "kind": spec.kind, "tables": len(spec.tables),
            "embedding_gib": spec.embedding_bytes / GIB, "embedding_params": spec.embedding_params,
            "dense_params": spec.dense_params, "interaction": spec.interaction,
            "sparse_optimizer": spec.sparse_optimizer, "dense_optimizer": spec.dense_optimizer, "source": spec.source,
        },
        "cluster": cluster_summary(cluster),
        "strategy": {**s.model_dump(), "global_batch": gb, "local_batch": topo.local_batch},
        "embedding_hbm_budget_gib": topo.hbm_budget_bytes / GIB,
    }  # fmt: skip
    res = RecsysStepResult(
        step_time_s=step,
        samples_per_s=gb / step,
        mfu=flops / (step * n * peak),
        model_tflops_per_gpu=flops / step / n / 1e12,
        dense_flops_per_step=flops,
        breakdown=recsys_breakdown(rg.graph, tl, rg.rank),
        memory=_memory(spec, plan, topo, cluster, comp.elem_bytes),
        cost=cost,
        sharding=sharding,
        scenario=scenario,
        tasks=rg.graph.number_of_nodes(),
        calibration=calib.name,
    )
    res.energy = estimate_energy(res, cluster)
    res.attach(rg.graph, tl)
    return res
