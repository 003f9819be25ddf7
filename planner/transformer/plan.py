"""The plan of one transformer step: every group, cost template, message size and memory term,
worked out once.

A plan is made once per (model, checked strategy, cluster, calibration); the graph builder
(:mod:`planner.transformer.graph`) and the closed-form estimate (:mod:`planner.transformer.estimate`)
both read it, so neither works out a group, a message size or a pass again. Making a plan is cheap
enough for the search (thousands per second): the layer templates, which depend on the
micro-batch shape only, are shared through a :class:`PlanCache`; the schedule's op lists are
worked out when first read (the estimate does not need them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from planner.calibration import Calibration
from planner.costs.collectives import CollectiveModel, CommCost, Group, sum_costs
from planner.costs.compute import ComputeModel
from planner.hardware import Cluster
from planner.transformer.keys import Kind
from planner.transformer.layer import HeadCosts, LayerCosts, Pass, Segment, head_costs, layer_costs
from planner.transformer.memory import Memory, memory
from planner.transformer.schedules import SCHEDULES, Op, dualpipe_compute_share, dualpipe_pairs
from planner.transformer.sharding import (
    chunk_stages,
    dp_reduce_bytes,
    dp_reduce_kind,
    gathers_after_step,
    gathers_for_backward,
    layer_params_local,
    pipeline_stages,
    rank_params_split,
    stage_layer_kinds,
)
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy

ADAM_BYTES_PER_PARAM = 30.0
"""Mixed-precision Adam step traffic per parameter: read fp32 grad, master weight, m, v (16 B);
write master, m, v (12 B) and the 16-bit working copy (2 B)."""


@dataclass(frozen=True)
class Groups:
    """The communicators of one rank. ``dp``: its data-parallel replicas (``dp * cp`` ranks, ``tp``
    apart: context-parallel ranks reduce gradients together); ``expert_dp``: those of them holding
    the same routed experts; ``pp``: its pipeline neighbours; ``world``: every rank."""

    tp: int
    cp: int
    ep: int
    dp: Group
    expert_dp: Group
    pp: Group
    world: Group


def expert_dp_group(dp: Group, s: Strategy) -> Group:
    """The ranks of data-parallel group ``dp`` that hold the same routed experts (Megatron-Core's
    expert-data-parallel group): ``dp.size / ep`` of them, ``ep`` times as far apart."""
    return Group(max(1, dp.size // s.ep), dp.stride * s.ep)


def optimizer_step(
    comp: ComputeModel, coll: CollectiveModel, s: Strategy, dense: float, experts: float, dp: Group
) -> tuple[float, CommCost]:
    """One rank's Adam step and ZeRO parameter all-gather (ZeRO-1/2, and ZeRO-3 with pipeline stages,
    which gathers a stage once a step: :func:`~planner.transformer.sharding.gathers_after_step`), for
    ``dense`` parameters replicated over the data-parallel group ``dp`` and ``experts`` (routed-expert)
    parameters replicated over its expert-data-parallel ranks (``dp * cp / ep``): ZeRO shards and
    gathers each part over its own group, as Megatron-Core's distributed optimizer does."""
    expert_dp = expert_dp_group(dp, s)
    params = dense / dp.size + experts / expert_dp.size if s.zero_stage >= 1 else dense + experts
    step_s = comp.memory_s(params * ADAM_BYTES_PER_PARAM, 4)
    gather = CommCost(0.0, 0.0, "up")
    if gathers_after_step(s) and dp.size > 1:
        gather = sum_costs(coll.cost("all_gather", dense * 2, dp), coll.cost("all_gather", experts * 2, expert_dp))
    return step_s, gather


@dataclass(frozen=True)
class FsdpLayer:
    """One layer kind under ZeRO-3 / FSDP: its passes, gather and reduce-scatter, and the compute
    slowdown while NCCL kernels run under it (they hold SMs)."""

    lc: LayerCosts
    ag: CommCost
    rs: CommCost
    contention_f: Pass
    contention_b: Pass

    @staticmethod
    def of(plan: StepPlan, lc: LayerCosts, moe: bool) -> FsdpLayer:
        prm = layer_params_local(plan.model, plan.strategy, moe=moe)
        ag = plan.coll.cost("all_gather", prm * 2, plan.groups.dp)
        rs = plan.coll.cost("reduce_scatter", prm * plan.grad_bytes, plan.groups.dp)
        share = plan.calib.comm_sm_slowdown
        fwd_s = lc.forward.seconds
        bwd_s = lc.recompute.seconds + lc.backward.seconds
        label = "SMs shared with overlapped NCCL"
        cf = Pass((Segment(label, Kind.COMPUTE, share * min(ag.total_s, fwd_s)),))
        bwd_ag = ag.total_s if gathers_for_backward(plan.strategy) else 0.0
        cb = Pass((Segment(label, Kind.COMPUTE, share * min(bwd_ag + rs.total_s, bwd_s)),))
        return FsdpLayer(lc, ag, rs, cf, cb)


@dataclass
class PlanCache:
    """Cost models per (model, cluster, precision) and layer templates per micro-batch shape, shared
    by the plans of many layouts (the search makes thousands). Keys hold object ids; the cache keeps
    the objects alive, so the ids stay valid for its lifetime."""

    models: dict[tuple, tuple[Any, Any, Any, ComputeModel, CollectiveModel]] = field(default_factory=dict)
    layers: dict[tuple, tuple[LayerCosts, LayerCosts, HeadCosts]] = field(default_factory=dict)


@dataclass(frozen=True)
class StepPlan:
    """Everything one step of a transformer is made of, for a checked strategy."""

    model: TransformerSpec
    strategy: Strategy
    cluster: Cluster
    calib: Calibration
    comp: ComputeModel
    coll: CollectiveModel
    groups: Groups
    layer: LayerCosts
    """An MoE model's MoE layer, or every layer of a dense model."""
    dense: LayerCosts
    """An MoE model's ``first_dense_layers`` (``layer`` when there are none)."""
    head: HeadCosts
    stages: int
    """Stages the layers are split over (:func:`~planner.transformer.sharding.pipeline_stages`)."""
    stage_kinds: list[tuple[int, int]]
    """(dense layers, MoE layers) of each stage; dense ones first."""
    rank_split: list[tuple[float, float]]
    """Per pipeline rank, (parameters replicated over ``dp``, routed-expert ones over ``expert_dp``)."""
    params_embed: float
    params_head: float
    grad_bytes: int
    """Bytes per gradient element the data-parallel reduction moves
    (:func:`~planner.transformer.sharding.dp_reduce_bytes`)."""
    bucket_params: float
    """Gradient elements per data-parallel bucket."""
    p2p: CommCost
    """One pipeline send (activations or their gradient, one micro-batch)."""
    sync: CommCost
    """The gradient-norm all-reduce over the world."""
    optimizer: list[tuple[float, CommCost]]
    """Per pipeline rank: its Adam step seconds and ZeRO-1/2 parameter all-gather."""
    memory: Memory

    @functools.cached_property
    def params_dense(self) -> float:
        """Parameters of one dense layer on one rank."""
        return layer_params_local(self.model, self.strategy, moe=False)

    @functools.cached_property
    def params_moe(self) -> float:
        """Parameters of one MoE layer (of any layer of a dense model) on one rank."""
        return layer_params_local(self.model, self.strategy)

    @property
    def dualpipe(self) -> bool:
        return self.strategy.pipeline_schedule == "dualpipe"

    def passes(self, moe: bool) -> LayerCosts:
        """The layer templates of a layer of that kind."""
        return self.layer if moe else self.dense

    def expert_share(self, rank: int) -> float:
        """Fraction of pipeline rank ``rank``'s parameters that are routed-expert weights."""
        dense, experts = self.rank_split[rank]
        return experts / (dense + experts) if dense + experts > 0 else 0.0

    def grad_reduce(self, params: float, rank: int, dp: Group) -> CommCost:
        """One gradient reduction of ``params`` elements of rank ``rank`` over ``dp``: routed-expert
        gradients (their share of the rank's parameters) over its expert-data-parallel ranks only
        (Megatron-Core's expert-data-parallel group), the rest over all of ``dp``."""
        kind = dp_reduce_kind(self.strategy)
        share = self.expert_share(rank)
        expert_dp = self.groups.expert_dp if dp is self.groups.dp else expert_dp_group(dp, self.strategy)
        return sum_costs(
            self.coll.cost(kind, params * (1 - share) * self.grad_bytes, dp),
            self.coll.cost(kind, params * share * self.grad_bytes, expert_dp),
        )

    def dualpipe_reduce_group(self, rank: int) -> Group:
        """DualPipe keeps two copies of the parameters (stage ``vs`` is chunk 0 of rank ``vs`` and
        chunk 1 of rank ``p - 1 - vs``); a stage's gradient is the sum over both copies'
        data-parallel replicas, so rank ``rank`` reduces over those ``2 dp cp`` ranks: the
        data-parallel group's members per scale-up island, doubled when the mirror rank shares it."""
        s, coll, dp = self.strategy, self.coll, self.groups.dp
        mirror = s.pp - 1 - rank
        pp_stride = self.groups.pp.stride
        same_island = rank * pp_stride // coll.island == mirror * pp_stride // coll.island
        k = coll.members_per_island(dp) * (2 if same_island else 1)
        return Group(2 * dp.size, max(1, coll.island // k))

    def chunk_stages(self, rank: int) -> list[int]:
        """The stage of each model chunk of pipeline rank ``rank``."""
        return chunk_stages(self.strategy, rank)

    @functools.cached_property
    def ops(self) -> list[list[Op]]:
        """Per pipeline rank, the schedule's order of passes (worked out when first read)."""
        s = self.strategy
        return [SCHEDULES[s.pipeline_schedule](s.pp, s.micro_batches, r, s.vpp) for r in range(s.pp)]

    @functools.cached_property
    def pairs(self) -> list[frozenset[int]]:
        """Per pipeline rank, where DualPipe's overlapped F & B pairs start in :attr:`ops`."""
        s = self.strategy
        if not self.dualpipe:
            return [frozenset()] * s.pp
        return [dualpipe_pairs(s.pp, s.micro_batches, r) for r in range(s.pp)]

    @functools.cached_property
    def pair_compute_share(self) -> float:
        """DualPipe: the fraction of SMs an overlapped F & B pair computes on (the rest run its all-to-all)."""
        return dualpipe_compute_share(self.comp.acc.compute_units)

    @functools.cached_property
    def fsdp(self) -> dict[bool, FsdpLayer]:
        """ZeRO-3: per layer kind (MoE or not), its gathers, reduce-scatters and contention."""
        return {moe: FsdpLayer.of(self, self.passes(moe), moe) for moe in (False, True)}

    @functools.cached_property
    def fsdp_root(self) -> tuple[CommCost, CommCost]:
        """ZeRO-3: the embedding and LM head's all-gather and reduce-scatter."""
        prm = self.params_embed + self.params_head
        dp = self.groups.dp
        return self.coll.cost("all_gather", prm * 2, dp), self.coll.cost("reduce_scatter", prm * self.grad_bytes, dp)


def _templates(
    model: TransformerSpec, s: Strategy, comp: ComputeModel, coll: CollectiveModel, cache: PlanCache | None, ids: tuple
) -> tuple[LayerCosts, LayerCosts, HeadCosts]:
    """(the MoE layer or every layer, an MoE model's dense layers, the head), cached on what they
    depend on: the micro-batch shape and the in-layer options."""
    key = (
        *ids, s.tp, s.cp, s.ep, s.micro_batch, s.recompute, s.sequence_parallel, s.attention, s.tp_comm_overlap,
        s.precision, s.cp_algorithm, s.moe_capacity_factor, s.moe_imbalance, s.moe_shared_expert_overlap,
    )  # fmt: skip
    hit = cache.layers.get(key) if cache is not None else None
    if hit is None:
        lc = layer_costs(model, s, comp, coll)
        dense = layer_costs(model, s, comp, coll, moe=False) if model.first_dense_layers else lc
        hit = (lc, dense, head_costs(model, s, comp, coll))
        if cache is not None:
            cache.layers[key] = hit
    return hit


def make_plan(
    model: TransformerSpec,
    strategy: Strategy,
    cluster: Cluster,
    calib: Calibration,
    cache: PlanCache | None = None,
    memory_of: Memory | None = None,
) -> StepPlan:
    """The plan of ``strategy`` (already checked by :func:`~planner.transformer.strategy.check_layout`);
    ``cache`` shares cost models and layer templates between the plans of many layouts; ``memory_of``
    is this layout's memory when already worked out (no calibration constant changes it)."""
    s = strategy
    ids = (id(model), id(cluster), id(calib), s.precision)
    models = cache.models.get(ids) if cache is not None else None
    if models is None:
        comp = ComputeModel(cluster.accelerator, calib, s.precision)
        models = (model, cluster, calib, comp, CollectiveModel(cluster, calib))
        if cache is not None:
            cache.models[ids] = models
    comp, coll = models[3], models[4]
    lc, dense, hc = _templates(model, s, comp, coll, cache, ids)
    dp = Group(s.data_parallel * s.cp, s.tp)
    pp_stride = s.tp * s.cp * s.data_parallel
    groups = Groups(
        s.tp, s.cp, s.ep, dp, expert_dp_group(dp, s), Group(max(s.pp, 2), pp_stride), Group(pp_stride * s.pp, 1)
    )
    split = rank_params_split(model, s)
    stages = pipeline_stages(s)
    p2p_bytes = s.micro_batch * (model.seq_len // s.cp) * model.hidden_size * comp.elem_bytes / s.tp
    return StepPlan(
        model, s, cluster, calib, comp, coll, groups, lc, dense, hc, stages,
        stage_kinds=stage_layer_kinds(model, stages),
        rank_split=split,
        params_embed=model.embedding_params / s.tp,
        params_head=model.lm_head_params / s.tp,
        grad_bytes=dp_reduce_bytes(s),
        bucket_params=s.bucket_mb * 1e6,
        p2p=coll.cost("p2p", p2p_bytes, groups.pp) if s.pp > 1 else CommCost(0.0, 0.0, "up"),
        sync=coll.cost("all_reduce", 8, groups.world),
        optimizer=[optimizer_step(comp, coll, s, d, e, dp) for d, e in split],
        memory=memory_of if memory_of is not None else memory(model, s, cluster, comp.elem_bytes),
    )  # fmt: skip


def recost_plan(plan: StepPlan, calib: Calibration) -> StepPlan:
    """``plan``'s layout under another calibration: every cost again; the schedule's op lists and the
    memory (which no constant changes) carried over."""
    new = make_plan(plan.model, plan.strategy, plan.cluster, calib, memory_of=plan.memory)
    for name in ("ops", "pairs"):  # worked out already: seed the new plan's cached properties
        if name in plan.__dict__:
            new.__dict__[name] = plan.__dict__[name]
    return new
