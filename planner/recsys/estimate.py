"""Estimate: time and memory of each shard and of the embedding communication.

Lookups are memory-bound (Naumov et al. 2019; TorchRec's EmbeddingPerfEstimator prices them by
bytes over bandwidth too):

* forward, per shard: gather ``ids x cols x dtype`` bytes (``ids = batch x pooling``, the global
  batch for table-, column- and row-wise shards, a row-wise shard seeing ``1/shards`` of the ids;
  the local batch for a data-parallel replica) and write the pooled ``batch x cols`` result;
* backward: read the pooled gradient, expand it per id (the gather's bytes again), then the fused
  optimizer update reads and writes weight and state of every touched row (``min(ids, rows)``,
  an upper bound: all ids distinct);
* bytes move at the calibration's ``hbm_efficiency`` of HBM bandwidth (rows of >= 128 B are whole
  cache-line bursts, so a gather streams like a copy); a host shard serves ``cache_load_factor`` of
  its traffic from its HBM cache and the rest over the host link.

Communication (per step, forward and backward): table- and column-wise shards send their pooled
output for the whole global batch to the ranks that own the samples (all-to-all); row-wise shards
reduce-scatter partial sums (forward) and all-gather gradients (backward); data-parallel replicas
all-reduce the table's dense gradient.
"""

from __future__ import annotations

import copy

from planner.costs.collectives import Group
from planner.recsys.spec import DTYPE_BYTES, SPARSE_STATE_BYTES_PER_ELEMENT, SPARSE_STATE_BYTES_PER_ROW, RecsysSpec
from planner.recsys.types import ShardingOption, Topology

GRAD_BYTES = 4
"""Embedding gradients are accumulated in fp32."""


def comm_bytes_per_element(spec: RecsysSpec) -> int:
    """Bytes per element of pooled embeddings on the wire."""
    if spec.embedding_comm_dtype is not None:
        return DTYPE_BYTES[spec.embedding_comm_dtype]
    return max(t.elem_bytes for t in spec.tables)


def shard_traffic(
    ids: float, rows: int, cols: int, out_rows: int, elem_bytes: int, optimizer: str
) -> tuple[float, float]:
    """(forward bytes, backward bytes) of one shard's lookups and fused update, from HBM's view."""
    gather = ids * cols * elem_bytes
    pooled = out_rows * cols * elem_bytes
    touched = min(ids, rows)
    state_e = SPARSE_STATE_BYTES_PER_ELEMENT[optimizer]
    state_r = SPARSE_STATE_BYTES_PER_ROW[optimizer]
    update = touched * (cols * (2 * elem_bytes + 2 * state_e) + 2 * state_r)
    fwd = gather + pooled
    bwd = out_rows * cols * GRAD_BYTES + ids * cols * GRAD_BYTES + update
    return fwd, bwd


class EmbeddingPerfEstimator:
    """Fills every shard's ``fwd_s``/``bwd_s`` and every option's ``comm_s``."""

    def estimate(self, options: list[ShardingOption], spec: RecsysSpec, topo: Topology) -> None:
        comp, coll = topo.comp, topo.coll
        n = topo.world_size
        world = Group(n)
        cb = comm_bytes_per_element(spec)
        for o in options:
            t = o.table
            k = len(o.shards)
            cache: dict[tuple[int, int], tuple[float, float, float, float]] = {}
            for s in o.shards:
                key = (s.rows, s.cols)
                if key in cache:
                    s.fwd_s, s.bwd_s, s.fwd_bytes, s.bwd_bytes = cache[key]
                    continue
                if o.sharding_type == "data_parallel":
                    ids, out_rows = topo.local_batch * t.pooling_factor, topo.local_batch
                elif o.sharding_type == "row_wise":
                    ids, out_rows = topo.global_batch * t.pooling_factor / k, topo.global_batch
                else:
                    ids, out_rows = topo.global_batch * t.pooling_factor, topo.global_batch
                fwd_b, bwd_b = shard_traffic(ids, s.rows, s.cols, out_rows, t.elem_bytes, spec.sparse_optimizer)
                if o.location == "hbm":
                    f, b = comp.memory_s(fwd_b), comp.memory_s(bwd_b)
                else:
                    hit = topo.cache_load_factor
                    f = comp.memory_s(fwd_b * hit) + fwd_b * (1 - hit) / topo.host_link_bytes_s
                    b = comp.memory_s(bwd_b * hit) + bwd_b * (1 - hit) / topo.host_link_bytes_s
                s.fwd_s, s.bwd_s, s.fwd_bytes, s.bwd_bytes = f, b, fwd_b, bwd_b
                cache[key] = (f, b, fwd_b, bwd_b)
            if n == 1:
                o.comm_s = 0.0
            elif o.sharding_type == "data_parallel":
                o.comm_s = coll.cost("all_reduce", t.num_rows * t.dim * GRAD_BYTES, world).total_s
            elif o.sharding_type == "row_wise":
                buf = topo.global_batch * t.dim * cb
                o.comm_s = coll.cost("reduce_scatter", buf, world).transfer_s * 2
            else:
                buf = topo.global_batch * t.dim * cb
                o.comm_s = coll.cost("all_to_all", buf, world).transfer_s * 2


def clone(o: ShardingOption) -> ShardingOption:
    """A deep copy of an option (its shards get ranks when partitioned)."""
    return copy.deepcopy(o)
