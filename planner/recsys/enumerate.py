"""Enumerate: every way each table could be sharded (TorchRec's EmbeddingEnumerator, simplified).

Per table: table-wise (one shard), row-wise (one block of rows per rank), column-wise (blocks of at
least :data:`MIN_COLUMN_SHARD` columns), data-parallel (a replica on every rank). An option whose
largest shard does not fit a device's HBM budget also comes as a host option: the shard lives in
host memory with a cache of ``cache_load_factor`` of it in HBM (TorchRec's UVM caching), paying the
host link for misses. A table with no option that fits anywhere is a user error naming the table.
"""

from __future__ import annotations

from planner.errors import PlannerInputError
from planner.recsys.spec import EmbeddingTable, RecsysSpec
from planner.recsys.types import GIB, Location, Shard, ShardingOption, ShardingType, Topology

MIN_COLUMN_SHARD = 32
"""Smallest column block of a column-wise shard (TorchRec's default ``min_partition`` is 32)."""

DATA_PARALLEL_MAX_BYTES = 64 * 2**20
"""Tables above this (weights) are not offered data-parallel: their dense gradient all-reduce
would dwarf the lookups (TorchRec's planner prices it out the same way)."""


def _storage(table: EmbeddingTable, rows: int, cols: int, optimizer: str) -> float:
    """Bytes of a block of ``rows`` x ``cols``: weights plus sparse optimizer state."""
    part = EmbeddingTable(name=table.name, num_rows=rows, dim=cols, dtype=table.dtype)
    return part.weight_bytes + part.state_bytes(optimizer)


def _split(total: int, parts: int) -> list[int]:
    base, rem = divmod(total, parts)
    return [base + (1 if i < rem else 0) for i in range(parts)]


class EmbeddingEnumerator:
    """Builds the search space; ``forced`` restricts every table to one sharding type."""

    def __init__(self, forced: ShardingType | None = None) -> None:
        self.forced = forced

    def _types(self, table: EmbeddingTable, topo: Topology) -> list[ShardingType]:
        n = topo.world_size
        ok: list[ShardingType] = ["table_wise"]
        if n > 1 and table.num_rows >= n:
            ok.append("row_wise")
        if table.dim >= 2 * MIN_COLUMN_SHARD and n > 1:
            ok.append("column_wise")
        if n > 1 and table.weight_bytes <= DATA_PARALLEL_MAX_BYTES:
            ok.append("data_parallel")
        if self.forced is not None:
            if self.forced == "data_parallel" and n > 1 and table.weight_bytes > DATA_PARALLEL_MAX_BYTES:
                return [self.forced]  # forced: offered anyway, memory decides
            return [self.forced] if self.forced in ok or n == 1 else ["table_wise"]
        return ok

    def _blocks(
        self, table: EmbeddingTable, kind: ShardingType, topo: Topology, optimizer: str
    ) -> list[tuple[int, int]]:
        n = topo.world_size
        if kind == "table_wise":
            return [(table.num_rows, table.dim)]
        if kind == "row_wise":
            return [(r, table.dim) for r in _split(table.num_rows, n)]
        if kind == "data_parallel":
            return [(table.num_rows, table.dim)] * n
        # column-wise: the fewest power-of-two column blocks whose shards fit, at least two
        full = _storage(table, table.num_rows, table.dim, optimizer)
        k = 2
        max_k = max(1, min(n, table.dim // MIN_COLUMN_SHARD))  # one block when it cannot split
        while k < max_k and full / k > topo.hbm_budget_bytes:
            k *= 2
        k = min(k, max_k)
        return [(table.num_rows, c) for c in _split(table.dim, k)]

    def enumerate(self, spec: RecsysSpec, topo: Topology) -> list[list[ShardingOption]]:
        space: list[list[ShardingOption]] = []
        host_ok = topo.host_bytes_per_node > 0 and topo.host_link_bytes_s > 0
        for i, table in enumerate(spec.tables):
            opts: list[ShardingOption] = []
            for kind in self._types(table, topo):
                blocks = self._blocks(table, kind, topo, spec.sparse_optimizer)
                sizes = [_storage(table, r, c, spec.sparse_optimizer) for r, c in blocks]
                locations: list[Location] = []
                if max(sizes) <= topo.hbm_budget_bytes:
                    locations.append("hbm")
                elif host_ok and kind != "data_parallel" and max(sizes) <= topo.host_bytes_per_node:
                    locations.append("host")
                for loc in locations:
                    shards = [
                        Shard(rows=r, cols=c, hbm_bytes=b if loc == "hbm" else b * topo.cache_load_factor,
                              host_bytes=0.0 if loc == "hbm" else b)
                        for (r, c), b in zip(blocks, sizes, strict=True)
                    ]  # fmt: skip
                    opts.append(ShardingOption(i, table, kind, loc, shards))
            if not opts:
                raise too_large(table, spec, topo)
            space.append(opts)
        return space


def too_large(table: EmbeddingTable, spec: RecsysSpec, topo: Topology) -> PlannerInputError:
    """The error for a table that fits in no device's HBM and not in host memory either."""
    need = table.weight_bytes + table.state_bytes(spec.sparse_optimizer)
    host = topo.host_bytes_per_node * topo.num_nodes
    host_txt = f"{host / GIB:,.1f} GiB of host memory" if host > 0 else "no usable host memory (size unknown)"
    return PlannerInputError(
        f"model.tables.{table.name}",
        f"table '{table.name}' needs {need / GIB:,.1f} GiB ({table.num_rows:,} rows x {table.dim} x "
        f"{table.elem_bytes} B plus {spec.sparse_optimizer} state); it fits neither the "
        f"{topo.hbm_budget_bytes / GIB:,.1f} GiB of HBM free for embeddings on each of {topo.world_size} "
        f"device(s) under any sharding, nor {host_txt}",
    )


def _blocks_dmp(
    table: EmbeddingTable, topo: Topology, optimizer: str, threshold: int, forced: ShardingType | None
) -> tuple[ShardingType, list[Shard]]:
    """NVIDIA distributed-embeddings' slicing: table-wise, or the smallest power of two of column
    slices with at most ``threshold`` elements each (capped at the ranks and the columns)."""
    n = topo.world_size
    k, size = 1, table.num_rows * table.dim
    while size > threshold:
        k *= 2
        size /= 2
    k = min(k, n, table.dim)
    if forced == "column_wise" and n > 1:
        k = max(k, min(n, table.dim // MIN_COLUMN_SHARD))
    cols = _split(table.dim, k)
    shards = [Shard(rows=table.num_rows, cols=c, hbm_bytes=_storage(table, table.num_rows, c, optimizer)) for c in cols]
    return ("column_wise" if k > 1 else "table_wise"), shards
