"""Partition: place the shards of a proposal on ranks, never over a rank's memory.

:class:`GreedyPerfPartitioner` is TorchRec's greedy perf partitioner: options in decreasing perf,
each shard on the least loaded rank (by lookup seconds) that has room for it in HBM (and, for a host
shard, its node's host memory); row-wise shard ``i`` goes to rank ``i`` and a data-parallel table
to every rank. :class:`MemoryBalancedPartitioner` is NVIDIA distributed-embeddings'
``memory_balanced`` strategy (what the DeepLearningExamples TF2 DLRM uses): shards sorted by size,
dealt in a snake (rank 0..n-1, then n-1..0), so memory and shard counts are even but lookups are not.
"""

from __future__ import annotations

from collections.abc import Callable

from planner.recsys.estimate import clone
from planner.recsys.types import PartitionError, Plan, RankLoad, ShardingOption, Topology


def _ranks(topo: Topology) -> list[RankLoad]:
    return [RankLoad(rank=r) for r in range(topo.world_size)]


def _fits(r: RankLoad, hbm: float, host: float, node_host: list[float], topo: Topology) -> bool:
    if r.hbm_bytes + hbm > topo.hbm_budget_bytes * (1 + 1e-12):
        return False
    if host > 0:
        node = r.rank // topo.gpus_per_node
        if node_host[node] + host > topo.host_bytes_per_node * (1 + 1e-12):
            return False
    return True


def _assign(o: ShardingOption, i: int, r: RankLoad, node_host: list[float], topo: Topology, global_batch: int,
            comm_bytes: int) -> None:  # fmt: skip
    s = o.shards[i]
    s.rank = r.rank
    r.hbm_bytes += s.hbm_bytes
    r.host_bytes += s.host_bytes
    node_host[r.rank // topo.gpus_per_node] += s.host_bytes
    r.fwd_s += s.fwd_s
    r.bwd_s += s.bwd_s
    if o.sharding_type in ("table_wise", "column_wise"):
        r.a2a_send_bytes += global_batch * s.cols * comm_bytes
    elif o.sharding_type == "row_wise":
        r.rw_bytes += global_batch * s.cols * comm_bytes
    tag = {"table_wise": "", "row_wise": "[rw]", "column_wise": "[cw]", "data_parallel": "[dp]"}[o.sharding_type]
    r.tables.append(o.table.name + tag + ("@host" if o.location == "host" else ""))


class GreedyPerfPartitioner:
    """TorchRec-style greedy placement by lookup load under memory."""

    def __init__(self, comm_bytes: int) -> None:
        self.comm_bytes = comm_bytes

    def partition(self, proposal: list[ShardingOption], topo: Topology) -> Plan:
        ranks = _ranks(topo)
        node_host = [0.0] * topo.num_nodes
        placed: list[ShardingOption] = []
        fixed = [o for o in proposal if o.sharding_type in ("row_wise", "data_parallel")]
        free = [o for o in proposal if o.sharding_type not in ("row_wise", "data_parallel")]
        for o in fixed:
            o = clone(o)
            for i, s in enumerate(o.shards):
                r = ranks[i]
                if not _fits(r, s.hbm_bytes, s.host_bytes, node_host, topo):
                    raise PartitionError(o.label())
                _assign(o, i, r, node_host, topo, topo.global_batch, self.comm_bytes)
            placed.append(o)
        for o in sorted(free, key=lambda o: -o.perf_s):
            o = clone(o)
            used: set[int] = set()
            for i, s in enumerate(o.shards):
                best: RankLoad | None = None
                for r in ranks:
                    if r.rank in used and len(o.shards) <= topo.world_size:
                        continue  # column shards of one table on distinct ranks
                    if not _fits(r, s.hbm_bytes, s.host_bytes, node_host, topo):
                        continue
                    if best is None or (r.fwd_s + r.bwd_s, r.hbm_bytes) < (best.fwd_s + best.bwd_s, best.hbm_bytes):
                        best = r
                if best is None:
                    raise PartitionError(o.label())
                used.add(best.rank)
                _assign(o, i, best, node_host, topo, topo.global_batch, self.comm_bytes)
            placed.append(o)
        placed.sort(key=lambda o: o.table_index)
        return Plan(options=placed, ranks=ranks)


class MemoryBalancedPartitioner:
    """NVIDIA distributed-embeddings ``memory_balanced``: shards by size, dealt in a snake.

    A rank left over its HBM budget moves its largest table-wise shards to host memory (uncached),
    as DeepLearningExamples' single-GPU CPU offloading does."""

    def __init__(self, comm_bytes: int, reestimate: Callable[[ShardingOption], None]) -> None:
        self.comm_bytes = comm_bytes
        self.reestimate = reestimate

    def partition(self, proposal: list[ShardingOption], topo: Topology) -> Plan:
        n = topo.world_size
        items = []  # (size, option index, shard index)
        opts = [clone(o) for o in proposal]
        for k, o in enumerate(opts):
            for i, s in enumerate(o.shards):
                items.append((s.hbm_bytes + s.host_bytes, k, i))
        items.sort(key=lambda x: -x[0])
        owner: dict[tuple[int, int], int] = {}
        for pos, (_, k, i) in enumerate(items):
            j = pos % (2 * n)
            owner[(k, i)] = j if j < n else 2 * n - 1 - j
        ranks = _ranks(topo)
        node_host = [0.0] * topo.num_nodes
        # a rank over budget offloads its largest shards to host
        load: dict[int, float] = {}
        for (k, i), r in owner.items():
            load[r] = load.get(r, 0.0) + opts[k].shards[i].hbm_bytes
        for r in range(n):
            mine = sorted(
                ((opts[k].shards[i].hbm_bytes, k, i) for (k, i), rr in owner.items() if rr == r), reverse=True
            )
            for size, k, i in mine:
                if load.get(r, 0.0) <= topo.hbm_budget_bytes:
                    break
                s = opts[k].shards[i]
                if topo.host_bytes_per_node <= 0 or topo.host_link_bytes_s <= 0:
                    raise PartitionError(opts[k].label())
                s.host_bytes, s.hbm_bytes = size, 0.0
                opts[k].location = "host"
                self.reestimate(opts[k])
                load[r] -= size
        for (k, i), r in owner.items():
            s = opts[k].shards[i]
            if not _fits(ranks[r], s.hbm_bytes, s.host_bytes, node_host, topo):
                raise PartitionError(opts[k].label())
            _assign(opts[k], i, ranks[r], node_host, topo, topo.global_batch, self.comm_bytes)
        return Plan(options=opts, ranks=ranks)
