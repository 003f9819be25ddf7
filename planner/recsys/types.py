"""Contracts between the stages of the embedding sharding planner (TorchRec's shape).

Enumerator -> list of :class:`ShardingOption` per table (every sharding type and location that
could hold it); Estimator -> fills each option's per-shard perf (seconds) and storage (bytes);
Proposer -> a choice of one option per table; Partitioner -> places the shards of a proposal onto
ranks under each rank's memory, or raises :class:`PartitionError`; the planner keeps the best
:class:`Plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from planner.costs.collectives import CollectiveModel
from planner.costs.compute import ComputeModel
from planner.recsys.spec import EmbeddingTable, RecsysSpec

ShardingType = Literal["table_wise", "row_wise", "column_wise", "data_parallel"]
Location = Literal["hbm", "host"]

SHARDING_CHOICES: dict[str, ShardingType | None] = {
    "table": "table_wise",
    "row": "row_wise",
    "column": "column_wise",
    "data": "data_parallel",
    "auto": None,
}
"""The ``--sharding`` values: force one sharding type on every table, or let the planner choose."""

GIB = 2**30


@dataclass(frozen=True)
class Topology:
    """What the planner needs to know about the devices and the step."""

    world_size: int
    gpus_per_node: int
    hbm_budget_bytes: float  # per device, for embedding shards (dense model and activations taken out)
    hbm_capacity_bytes: float  # per device, whole
    host_bytes_per_node: float  # 0 when host memory is unknown or not to be used
    host_link_bytes_s: float  # per device, one direction; 0 when unknown
    global_batch: int
    comp: ComputeModel
    coll: CollectiveModel
    cache_load_factor: float  # fraction of a host table's rows cached in HBM

    @property
    def local_batch(self) -> int:
        return max(1, self.global_batch // self.world_size)

    @property
    def num_nodes(self) -> int:
        return max(1, self.world_size // self.gpus_per_node)


@dataclass
class Shard:
    """One piece of a table: a block of rows and columns, with its cost and where it went."""

    rows: int
    cols: int
    hbm_bytes: float = 0.0  # weights + optimizer state (or the cache, for a host shard) in HBM
    host_bytes: float = 0.0  # weights + state kept in host memory
    fwd_s: float = 0.0  # lookup (and pooling) time on its device
    bwd_s: float = 0.0  # gradient and fused optimizer update
    rank: int | None = None
    fwd_bytes: float = 0.0  # HBM bytes of the lookup (what a fused kernel moves for this shard)
    bwd_bytes: float = 0.0  # HBM bytes of the gradient and optimizer update

    @property
    def perf_s(self) -> float:
        return self.fwd_s + self.bwd_s


@dataclass
class ShardingOption:
    """One way to shard one table: a sharding type, a location and its shards."""

    table_index: int
    table: EmbeddingTable
    sharding_type: ShardingType
    location: Location
    shards: list[Shard] = field(default_factory=list)
    comm_s: float = 0.0  # the option's own share of the step's embedding communication

    @property
    def perf_s(self) -> float:
        """Device-seconds of all shards plus the option's communication (what it costs the step)."""
        return sum(s.perf_s for s in self.shards) + self.comm_s

    @property
    def hbm_bytes(self) -> float:
        return sum(s.hbm_bytes for s in self.shards)

    @property
    def max_shard_hbm_bytes(self) -> float:
        return max((s.hbm_bytes for s in self.shards), default=0.0)

    def label(self) -> str:
        short = {"table_wise": "TW", "row_wise": "RW", "column_wise": "CW", "data_parallel": "DP"}[self.sharding_type]
        return f"{self.table.name}:{short}{'@host' if self.location == 'host' else ''}"


@dataclass
class RankLoad:
    """What one rank holds and does in a plan."""

    rank: int
    hbm_bytes: float = 0.0
    host_bytes: float = 0.0
    fwd_s: float = 0.0
    bwd_s: float = 0.0
    a2a_send_bytes: float = 0.0  # pooled embeddings this rank's table-/column-wise shards send, forward
    rw_bytes: float = 0.0  # partial pooled embeddings of its row-wise shards (reduce-scatter buffer)
    tables: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """A placed proposal: every shard has a rank; per-rank loads summarised."""

    options: list[ShardingOption]
    ranks: list[RankLoad]
    proposals_tried: int = 0

    @property
    def max_lookup_s(self) -> float:
        return max(r.fwd_s + r.bwd_s for r in self.ranks)

    def slowest_rank(self) -> RankLoad:
        return max(self.ranks, key=lambda r: (r.fwd_s + r.bwd_s, r.a2a_send_bytes))

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.options:
            key = o.sharding_type + ("@host" if o.location == "host" else "")
            out[key] = out.get(key, 0) + 1
        return out


class PartitionError(Exception):
    """A proposal's shards do not fit the ranks' memory (the planner tries another proposal)."""


class Enumerator(Protocol):
    def enumerate(self, spec: RecsysSpec, topo: Topology) -> list[list[ShardingOption]]:
        """Every candidate option per table (index = table index)."""
        ...


class Estimator(Protocol):
    def estimate(self, options: list[ShardingOption], spec: RecsysSpec, topo: Topology) -> None:
        """Fill each option's shards with storage and perf, in place."""
        ...


class Proposer(Protocol):
    def load(self, search_space: list[list[ShardingOption]]) -> None: ...

    def propose(self) -> list[ShardingOption] | None:
        """The next proposal (one option per table), or None when out of ideas."""
        ...

    def feedback(self, plan: Plan | None) -> None:
        """The partitioned plan of the last proposal, or None when it did not fit."""
        ...


class Partitioner(Protocol):
    def partition(self, proposal: list[ShardingOption], topo: Topology) -> Plan:
        """Assign every shard a rank under each rank's memory; raise PartitionError if impossible."""
        ...
