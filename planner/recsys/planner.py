"""The sharding planner: enumerate -> estimate -> propose -> partition, keep the fastest plan.

``placement="torchrec"`` searches like TorchRec's EmbeddingShardingPlanner (greedy proposals, greedy
perf partitioner). ``placement="memory_balanced"`` reproduces NVIDIA distributed-embeddings, the
library of the DeepLearningExamples TF2 DLRM/DCNv2: table-wise, a table above
:data:`DMP_COLUMN_SLICE_ELEMENTS` elements sliced column-wise into the smallest power of two of
slices under it (at most one per rank), dealt by size in a snake.
"""

from __future__ import annotations

from planner.errors import PlannerInputError
from planner.recsys.enumerate import EmbeddingEnumerator, _blocks_dmp, too_large
from planner.recsys.estimate import EmbeddingPerfEstimator, comm_bytes_per_element
from planner.recsys.partition import GreedyPerfPartitioner, MemoryBalancedPartitioner
from planner.recsys.propose import GreedyProposer
from planner.recsys.spec import RecsysSpec
from planner.recsys.types import GIB, SHARDING_CHOICES, PartitionError, Plan, ShardingOption, Topology

DMP_COLUMN_SLICE_ELEMENTS = 10_000_000_000
"""DeepLearningExamples TF2 ``--column_slice_threshold`` default (main.py): 10e9 elements."""


def plan_cost_s(plan: Plan, spec: RecsysSpec, topo: Topology) -> float:
    """What a plan costs the step: the slowest rank's lookups plus its embedding communication."""
    return plan.max_lookup_s + embedding_comm_s(plan, spec, topo)


def a2a_bytes(plan: Plan, spec: RecsysSpec, topo: Topology) -> float:
    """The all-to-all buffer that sets its time: the most any rank sends (its shards' pooled output
    for the global batch) or receives (every table-/column-wise shard for its local batch), forward."""
    cb = comm_bytes_per_element(spec)
    recv = (
        topo.local_batch
        * cb
        * sum(s.cols for o in plan.options if o.sharding_type in ("table_wise", "column_wise") for s in o.shards)
    )
    send = max(r.a2a_send_bytes for r in plan.ranks)
    return max(send, recv) if topo.world_size > 1 else 0.0


def embedding_comm_s(plan: Plan, spec: RecsysSpec, topo: Topology) -> float:
    """Forward + backward embedding communication of a plan, seconds (no overlap assumed)."""
    from planner.costs.collectives import Group

    n = topo.world_size
    if n == 1:
        return 0.0
    g = Group(n)
    t = 2 * topo.coll.cost("all_to_all", a2a_bytes(plan, spec, topo), g).total_s
    rw = max(r.rw_bytes for r in plan.ranks)
    if rw > 0:
        t += 2 * topo.coll.cost("reduce_scatter", rw, g).total_s
    t += sum(o.comm_s for o in plan.options if o.sharding_type == "data_parallel")
    return t


def plan_sharding(spec: RecsysSpec, topo: Topology, sharding: str = "auto", placement: str = "torchrec") -> Plan:
    """The best plan found for ``spec`` on ``topo``; a table that fits nowhere is a user error."""
    if sharding not in SHARDING_CHOICES:
        raise PlannerInputError("sharding", f"must be one of {', '.join(SHARDING_CHOICES)}, got '{sharding}'")
    forced = SHARDING_CHOICES[sharding]
    est = EmbeddingPerfEstimator()
    cb = comm_bytes_per_element(spec)
    if placement == "memory_balanced":
        proposal = [
            ShardingOption(i, t, kind, "hbm", shards)
            for i, t in enumerate(spec.tables)
            for kind, shards in [_blocks_dmp(t, topo, spec.sparse_optimizer, DMP_COLUMN_SLICE_ELEMENTS, forced)]
        ]
        est.estimate(proposal, spec, topo)
        try:
            plan = MemoryBalancedPartitioner(cb, lambda o: est.estimate([o], spec, topo)).partition(proposal, topo)
        except PartitionError:
            raise _no_fit(spec, topo, [[o] for o in proposal]) from None
        plan.proposals_tried = 1
        return plan
    if placement != "torchrec":
        raise PlannerInputError("placement", f"must be torchrec or memory_balanced, got '{placement}'")
    space = EmbeddingEnumerator(forced).enumerate(spec, topo)
    for opts in space:
        est.estimate(opts, spec, topo)
    proposer = GreedyProposer()
    proposer.load(space)
    part = GreedyPerfPartitioner(cb)
    best: Plan | None = None
    best_cost = float("inf")
    tried = 0
    while (proposal := proposer.propose()) is not None:
        tried += 1
        try:
            plan = part.partition(proposal, topo)
        except PartitionError:
            proposer.feedback(None)
            continue
        cost = plan_cost_s(plan, spec, topo)
        if cost < best_cost:
            best, best_cost = plan, cost
        proposer.feedback(plan)
    if best is None:
        raise _no_fit(spec, topo, space)
    best.proposals_tried = tried
    return best


def _no_fit(spec: RecsysSpec, topo: Topology, space: list[list[ShardingOption]]) -> PlannerInputError:
    """Name the table that cannot be placed, or say the tables do not fit together."""
    for opts in space:
        smallest = min(opts, key=lambda o: o.max_shard_hbm_bytes)
        host_ok = topo.host_bytes_per_node > 0 and topo.host_link_bytes_s > 0
        if smallest.max_shard_hbm_bytes > topo.hbm_budget_bytes and not (
            host_ok and max(s.host_bytes for s in smallest.shards) <= topo.host_bytes_per_node
        ):
            return too_large(smallest.table, spec, topo)
    total = sum(t.weight_bytes + t.state_bytes(spec.sparse_optimizer) for t in spec.tables)
    host = topo.host_bytes_per_node * topo.num_nodes
    return PlannerInputError(
        "gpus",
        f"the embedding tables need {total / GIB:,.1f} GiB with {spec.sparse_optimizer} state; "
        f"{topo.world_size} device(s) have {topo.hbm_budget_bytes * topo.world_size / GIB:,.1f} GiB of HBM free "
        f"for them and {host / GIB:,.1f} GiB of usable host memory: use more accelerators",
    )
