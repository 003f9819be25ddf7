"""The step graph of a recommendation model (DLRM / DCNv2), for the engine.

One representative rank: the slowest one of the sharding plan (most lookup seconds). Dense layers
are data-parallel, so every rank runs the same MLPs on its local batch; the all-to-all is sized by
the most any rank sends or receives, so it finishes when the most loaded rank does.

Streams of the rank: ``compute`` (lookups, MLPs, interaction, optimizers, in issue order), ``a2a``
(input distribution, pooled-embedding all-to-all forward and backward, row-wise reduce-scatter and
all-gather) and ``dp`` (dense gradient all-reduce in two buckets: top MLP and interaction as soon as
their backward ends, bottom MLP and data-parallel tables after theirs). The bottom MLP's forward runs
while the embeddings are exchanged, its backward while the gradients are, as TorchRec and XLA
schedule them.

Memory-bound passes of the dense part (each counted from the kernels frameworks run, not fitted):
an MLP layer reads and writes its output once forward for bias and activation (2 passes) and four
times backward (activation gradient: read gradient and activation, write; bias gradient: read);
a DCNv2 cross layer's element-wise part reads ``x0``, the projection and ``x_l`` and writes
``x_{l+1}`` forward (4 passes of its width) and 6 backward; the pooled embeddings are cast to the
dense precision on arrival and back for their gradients; the dot interaction as the framework's
kernel runs it (fused custom op or the framework's own ops: planner.recsys.interaction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx

from planner.costs.collectives import CollectiveModel, CommCost, Group
from planner.costs.compute import ComputeModel
from planner.recsys.estimate import GRAD_BYTES, comm_bytes_per_element, shard_traffic
from planner.recsys.frameworks import StepChoices
from planner.recsys.interaction import DotShape, InteractionKernel, dot_interaction_s
from planner.recsys.planner import a2a_bytes
from planner.recsys.spec import DENSE_STATE_BYTES_PER_PARAM, RecsysSpec
from planner.recsys.types import Plan, Topology

DENSE_OPT_BYTES_PER_PARAM = {"sgd": 12.0, "adagrad": 20.0, "adam": 28.0}
"""Dense optimizer step traffic per parameter (fp32): read weight and gradient, write weight (12 B),
plus read and write of each fp32 state (Adagrad one, Adam two)."""

ID_BYTES = 4
"""Bytes per sparse id in the input distribution (int32, as the Criteo datasets store them)."""


@dataclass
class DenseCosts:
    """Durations of the dense part on one rank for its local batch."""

    bottom_fwd_s: float = 0.0
    bottom_bwd_s: float = 0.0
    interaction_fwd_s: float = 0.0
    interaction_bwd_s: float = 0.0
    top_fwd_s: float = 0.0
    top_bwd_s: float = 0.0
    top_wgrad_s: float = 0.0  # the weight-gradient GEMMs inside top_bwd_s
    interaction_wgrad_s: float = 0.0  # the cross layers' weight-gradient GEMMs inside interaction_bwd_s
    cast_fwd_s: float = 0.0
    cast_bwd_s: float = 0.0
    optimizer_s: float = 0.0
    kinds: dict[str, float] = field(default_factory=dict)


def wgrad_s(comp: ComputeModel, m: int, n: int, k: int) -> float:
    """A weight-gradient GEMM ``[m, k] x [k, n]`` with the batch as ``k``: when its ``m x n`` output
    is too few tiles to fill the GPU, cuBLAS splits ``k`` (split-K) into ``s`` partial products run
    side by side, then sums the ``s`` fp32 partials; modelled as that batched GEMM plus the sum."""
    cu = comp.acc.compute_units or 1
    tiles = min(-(-m // 128) * -(-n // 256), -(-m // 256) * -(-n // 128))
    s = max(1, min(cu // max(tiles, 1), k // 256))
    if s == 1:
        return comp.gemm_s(m, n, k)
    return comp.gemm_s(m, n, -(-k // s), batch=s) + comp.memory_s(s * m * n * 4.0)


def _mlp(
    comp: ComputeModel, b: int, layers: list[tuple[int, int]], first_needs_dgrad: bool
) -> tuple[float, float, float]:
    """(forward, backward, the backward's weight-gradient GEMMs) of an MLP on ``b`` samples."""
    e = comp.elem_bytes
    fwd = bwd = wgrad = 0.0
    for j, (i, o) in enumerate(layers):
        fwd += comp.gemm_s(b, o, i) + comp.memory_s(2.0 * b * o * e)
        w = wgrad_s(comp, i, o, b)
        wgrad += w
        bwd += w + comp.memory_s(4.0 * b * o * e)  # weight gradient, elementwise
        if j > 0 or first_needs_dgrad:
            bwd += comp.gemm_s(b, i, o)  # input gradient
    return fwd, bwd, wgrad


def dense_costs(spec: RecsysSpec, comp: ComputeModel, local_batch: int, comm_bytes: int,
                interaction_kernel: InteractionKernel = "custom", mask_gather: bool = False) -> DenseCosts:  # fmt: skip
    """Forward and backward time of the bottom MLP, interaction, top MLP and dense optimizer; a dot
    interaction as ``interaction_kernel`` runs it (planner.recsys.interaction)."""
    b, e = local_batch, comp.elem_bytes
    c = DenseCosts()
    c.bottom_fwd_s, c.bottom_bwd_s, _ = _mlp(comp, b, spec.bottom_layers(), first_needs_dgrad=False)
    c.top_fwd_s, c.top_bwd_s, c.top_wgrad_s = _mlp(comp, b, spec.top_layers(), first_needs_dgrad=True)
    emb_elems = b * (spec.interaction_in_dim - spec.bottom_mlp[-1])
    c.cast_fwd_s = comp.memory_s(emb_elems * (comm_bytes + e))
    c.cast_bwd_s = comp.memory_s(emb_elems * (e + GRAD_BYTES))
    if spec.interaction == "dot":
        x = DotShape(b, spec.num_features, spec.bottom_mlp[-1], spec.interaction_out_dim, e, comm_bytes)
        c.interaction_fwd_s, c.interaction_bwd_s = dot_interaction_s(comp, x, interaction_kernel, mask_gather)
    else:
        d, r = spec.interaction_in_dim, spec.cross_rank
        for _ in range(spec.cross_layers):
            c.interaction_fwd_s += comp.gemm_s(b, r, d) + comp.gemm_s(b, d, r) + comp.memory_s(4.0 * b * d * e)
            w = wgrad_s(comp, d, r, b) + wgrad_s(comp, r, d, b)
            c.interaction_wgrad_s += w
            c.interaction_bwd_s += (comp.gemm_s(b, d, r) + w + comp.gemm_s(b, r, d)) + comp.memory_s(6.0 * b * d * e)
    c.optimizer_s = comp.memory_s(spec.dense_params * DENSE_OPT_BYTES_PER_PARAM[spec.dense_optimizer])
    return c


def dense_memory_bytes(spec: RecsysSpec, local_batch: int, act_bytes: int) -> tuple[float, float]:
    """(dense weights + gradients + optimizer state, activations) bytes on every rank."""
    p = spec.dense_params
    params = p * (4 + GRAD_BYTES + DENSE_STATE_BYTES_PER_PARAM[spec.dense_optimizer] + (2 if act_bytes == 2 else 0))
    per_sample = sum(o for _, o in spec.bottom_layers() + spec.top_layers())
    per_sample += spec.interaction_in_dim * 2 + spec.interaction_out_dim
    if spec.interaction == "dcnv2":
        per_sample += spec.cross_layers * (2 * spec.interaction_in_dim + spec.cross_rank)
    return params, 2.0 * local_batch * per_sample * act_bytes


def fused_lookup_s(plan: Plan, rank: int, comp: ComputeModel, unpooled_rw_batch: int | None = None,
                   optimizer: str = "sgd") -> tuple[float, float]:  # fmt: skip
    """(forward, backward) seconds of ``rank``'s lookups as fused kernels: the HBM bytes of all its
    shards in one launch each way (FBGEMM TBE / HugeCTR embedding collection), host shards as estimated.
    With ``unpooled_rw_batch`` (SOK: the global batch), a row-wise shard looks up its share of the
    batch's ids, writes each looked-up vector once and reads its gradient once (no partial sums for
    the whole global batch)."""
    shards = [(o, s) for o in plan.options for s in o.shards if s.rank == rank]
    hbm = [(o, s) for o, s in shards if o.location == "hbm"]
    host_f = sum(s.fwd_s for o, s in shards if o.location != "hbm")
    host_b = sum(s.bwd_s for o, s in shards if o.location != "hbm")
    if not hbm:
        return host_f, host_b
    fwd_b = bwd_b = 0.0
    for o, s in hbm:
        if unpooled_rw_batch is not None and o.sharding_type == "row_wise":
            ids = unpooled_rw_batch * o.table.pooling_factor / len(o.shards)
            f, b = shard_traffic(ids, s.rows, s.cols, math.ceil(ids), o.table.elem_bytes, optimizer)
        else:
            f, b = s.fwd_bytes, s.bwd_bytes
        fwd_b, bwd_b = fwd_b + f, bwd_b + b
    return comp.memory_s(fwd_b, kernels=1) + host_f, comp.memory_s(bwd_b, kernels=1) + host_b


@dataclass
class RecsysGraph:
    graph: nx.DiGraph
    dense: DenseCosts
    a2a: CommCost
    rank: int


def build(spec: RecsysSpec, plan: Plan, topo: Topology, comp: ComputeModel, coll: CollectiveModel,
          choices: StepChoices | None = None) -> RecsysGraph:  # fmt: skip
    """The step graph of the plan's slowest rank (see the module docstring), as the framework's
    ``choices`` run it (default: the generic model). ``input_dist``: the id all-to-all is absent
    ("none"), gates the lookup ("blocking") or, issued for the next batch, only shares the link
    ("pipelined"); ``fused``: the rank's lookups are one kernel and its backward and optimizer
    another; ``async_wgrad``: top-MLP and interaction weight gradients run after the embedding
    gradients are sent; ``unpooled_rw``: row-wise shards return each looked-up vector to its sample's
    rank by all-to-all (SOK) instead of reduce-scattering pooled partial sums (TorchRec)."""
    c = choices or StepChoices(comp.calib.recsys_step_host_s)
    input_dist, fused, async_wgrad, dp_overlap = c.input_dist, c.fused, c.async_wgrad, c.dp_overlap
    g = nx.DiGraph()
    order: dict[str, int] = {}
    n = topo.world_size
    world = Group(n)
    cb = comm_bytes_per_element(spec)
    slow = plan.slowest_rank()
    dc = dense_costs(spec, comp, topo.local_batch, cb, c.interaction_kernel, c.mask_gather)

    def add(key: str, stream: str, kind: str, label: str, **attrs: object) -> str:
        k = order.get(stream, 0)
        order[stream] = k + 1
        g.add_node(key, stream=f"0/{stream}", kind=kind, label=label, order=k, rank=0, **attrs)
        return key

    def comm(key: str, stream: str, kind: str, label: str, c: CommCost) -> str:
        return add(key, stream, kind, label, latency=c.latency_s, transfer=c.transfer_s, link=f"0/{c.link}")

    none = CommCost(0.0, 0.0, "up")
    a2a_b = a2a_bytes(plan, spec, topo)
    rw_bytes = max(r.rw_bytes for r in plan.ranks)
    if c.unpooled_rw:
        rw_tables = [o.table for o in plan.options if o.sharding_type == "row_wise"]
        a2a_b += topo.local_batch * sum(t.pooling_factor * t.dim for t in rw_tables) * cb
        rw_bytes = 0.0
    a2a = coll.cost("all_to_all", a2a_b, world) if n > 1 and a2a_b > 0 else none
    rs = coll.cost("reduce_scatter", rw_bytes, world) if n > 1 and rw_bytes > 0 else None
    ag = coll.cost("all_gather", rw_bytes, world) if n > 1 and rw_bytes > 0 else None

    # ---- forward
    host = add("HOST", "compute", "host", "step overhead (host)", duration=c.step_host_s)
    prev_a2a: str | None = None
    if input_dist != "none" and n > 1:
        ids = topo.local_batch * sum(t.pooling_factor for t in spec.tables) * ID_BYTES
        prev_a2a = comm("IN", "a2a", "a2a_comm", "input distribution (ids)", coll.cost("all_to_all", ids, world))
    unpooled = topo.global_batch if c.unpooled_rw else None
    emb_f_s, emb_b_s = (fused_lookup_s(plan, slow.rank, comp, unpooled, spec.sparse_optimizer) if fused
                        else (slow.fwd_s, slow.bwd_s))  # fmt: skip
    ef = add("EMB_F", "compute", "embedding", f"embedding lookup ({len(slow.tables)} shards)", duration=emb_f_s)
    if prev_a2a and input_dist == "blocking":
        g.add_edge(prev_a2a, ef)
    af = comm("A2A_F", "a2a", "a2a_comm", "pooled embeddings all-to-all", a2a)
    g.add_edge(ef, af)
    last_f = af
    if rs is not None:
        last_f = comm("RS_F", "a2a", "a2a_comm", "row-wise reduce-scatter", rs)
        g.add_edge(ef, last_f)
    bf = add("BOT_F", "compute", "dense", "bottom MLP forward", duration=dc.bottom_fwd_s)
    cf = add("CAST_F", "compute", "dense", "embeddings to dense precision", duration=dc.cast_fwd_s)
    g.add_edge(af, cf)
    g.add_edge(last_f, cf)
    g.add_edge(bf, cf)
    f_int = add("INT_F", "compute", "dense", f"{spec.interaction} interaction forward", duration=dc.interaction_fwd_s)
    tf = add("TOP_F", "compute", "dense", "top MLP forward", duration=dc.top_fwd_s)
    # ---- backward
    wg_s = dc.top_wgrad_s + dc.interaction_wgrad_s if async_wgrad else 0.0
    tb = add("TOP_B", "compute", "dense", "top MLP backward",
             duration=dc.top_bwd_s - (dc.top_wgrad_s if async_wgrad else 0.0))  # fmt: skip
    ib = add("INT_B", "compute", "dense", f"{spec.interaction} interaction backward",
             duration=dc.interaction_bwd_s - (dc.interaction_wgrad_s if async_wgrad else 0.0))  # fmt: skip
    cbk = add("CAST_B", "compute", "dense", "embedding gradients", duration=dc.cast_bwd_s)
    last_dense = cbk
    if async_wgrad:
        last_dense = add("WGRAD", "compute", "dense", "top MLP + interaction weight gradients", duration=wg_s)
        g.add_edge(cbk, last_dense)
    ab = comm("A2A_B", "a2a", "a2a_comm", "embedding gradients all-to-all", a2a)
    g.add_edge(cbk, ab)
    last_b = ab
    if ag is not None:
        last_b = comm("AG_B", "a2a", "a2a_comm", "row-wise gradient all-gather", ag)
        g.add_edge(cbk, last_b)
    bb = add("BOT_B", "compute", "dense", "bottom MLP backward", duration=dc.bottom_bwd_s)
    eb = add("EMB_B", "compute", "embedding", "embedding backward + sparse optimizer", duration=emb_b_s)
    g.add_edge(ab, eb)
    g.add_edge(last_b, eb)
    for a, b in (
        (host, ef),
        (ef, bf),
        (bf, cf),
        (cf, f_int),
        (f_int, tf),
        (tf, tb),
        (tb, ib),
        (ib, cbk),
        (last_dense, bb),
        (bb, eb),
    ):
        g.add_edge(a, b)
    # ---- dense gradient all-reduce and optimizer
    opt = add("OPT", "compute", "optimizer", f"dense optimizer ({spec.dense_optimizer})", duration=dc.optimizer_s)
    g.add_edge(eb, opt)
    if n > 1:
        top_params = spec.dense_params - sum(i * o + o for i, o in spec.bottom_layers())
        bot_params = spec.dense_params - top_params
        dp_tables = sum(o.table.num_rows * o.table.dim for o in plan.options if o.sharding_type == "data_parallel")
        ar1 = comm("AR_TOP", "dp", "dp_comm", "all-reduce top MLP + interaction grads",
                   coll.cost("all_reduce", top_params * c.grad_wire_bytes, world))  # fmt: skip
        ar2 = comm("AR_BOT", "dp", "dp_comm", "all-reduce bottom MLP grads",
                   coll.cost("all_reduce", bot_params * c.grad_wire_bytes, world))  # fmt: skip
        g.add_edge((last_dense if async_wgrad else ib) if dp_overlap else bb, ar1)
        g.add_edge(bb, ar2)
        g.add_edge(ar1, opt)
        g.add_edge(ar2, opt)
        if dp_tables:
            ar3 = comm("AR_DPT", "dp", "dp_comm", "all-reduce data-parallel tables",
                       coll.cost("all_reduce", dp_tables * c.grad_wire_bytes, world))  # fmt: skip
            g.add_edge(eb, ar3)
            g.add_edge(ar3, opt)
    dc.kinds = {}
    return RecsysGraph(graph=g, dense=dc, a2a=a2a, rank=slow.rank)
