"""The step graph of a transformer: one representative rank per pipeline stage.

Data-, tensor- and context-parallel peers of a rank do the same work at the same time, so the
graph holds one rank per pipeline stage and its cost does not grow with the number of replicas.
Each rank has a compute stream (layer passes with their in-line tensor-parallel collectives), a
point-to-point stream (pipeline sends) and data-parallel streams (gradient reduction, ZeRO
gathers). Tasks are per (virtual stage, micro-batch, phase); the last backward of each virtual stage
is split per layer so that bucketed gradient reduction can start while it runs, and ZeRO-3 / FSDP
gets per-layer tasks throughout, since its gathers interleave with every layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from planner.costs.collectives import CollectiveModel, CommCost, Group
from planner.costs.compute import ComputeModel
from planner.graph.layer import HeadCosts, LayerCosts, Pass, Segment, head_costs, layer_costs
from planner.graph.schedules import SCHEDULES
from planner.sharding import grad_reduce_bytes, layer_params_local, rank_params, stage_layers
from planner.strategy import Strategy
from planner.workloads.transformer import TransformerSpec

ADAM_BYTES_PER_PARAM = 30.0
"""Mixed-precision Adam step traffic per parameter: read fp32 grad, master weight, m, v (16 B);
write master, m, v (12 B) and the 16-bit working copy (2 B)."""


@dataclass
class StepGraph:
    """The graph and what the report needs to read it back."""

    graph: nx.DiGraph
    ranks: int
    passes: dict[str, Pass] = field(default_factory=dict)


@dataclass
class _Builder:
    model: TransformerSpec
    s: Strategy
    comp: ComputeModel
    coll: CollectiveModel
    g: nx.DiGraph = field(default_factory=nx.DiGraph)
    order: dict[str, int] = field(default_factory=dict)

    def add(self, key: tuple, stream: str, kind: str, label: str, **attrs: object) -> tuple:
        n = self.order.get(stream, 0)
        self.order[stream] = n + 1
        self.g.add_node(key, stream=stream, kind=kind, label=label, order=n, **attrs)
        return key

    def add_comm(self, key: tuple, rank: int, stream: str, kind: str, label: str, c: CommCost) -> tuple:
        return self.add(
            key,
            f"{rank}/{stream}",
            kind,
            label,
            latency=c.latency_s,
            transfer=c.transfer_s,
            link=f"{rank}/{c.link}",
            rank=rank,
        )


def build(model: TransformerSpec, s: Strategy, comp: ComputeModel, coll: CollectiveModel) -> StepGraph:
    """Build the step graph for a resolved strategy (see :func:`planner.strategy.check_layout`)."""
    lc = layer_costs(model, s, comp, coll)
    hc = head_costs(model, s, comp, coll)
    b = _Builder(model, s, comp, coll)
    if s.zero_stage == 3:
        _build_fsdp(b, lc, hc)
    else:
        _build_pipeline(b, lc, hc)
    passes = {"forward": lc.forward, "backward": lc.backward, "recompute": lc.recompute}
    return StepGraph(b.g, s.pp, passes)


def _compute_attrs(passes: list[tuple[Pass, int]]) -> dict[str, object]:
    """Duration and per-kind seconds of a compute task made of ``count`` repeats of passes."""
    total = 0.0
    kinds: dict[str, float] = {}
    for p, count in passes:
        for seg in p.segments:
            total += seg.seconds * count
            kinds[seg.kind] = kinds.get(seg.kind, 0.0) + seg.seconds * count
    return {"duration": total, "kinds": kinds, "passes": [(p, c) for p, c in passes if c]}


def _build_pipeline(b: _Builder, lc: LayerCosts, hc: HeadCosts) -> None:
    s, model, coll = b.s, b.model, b.coll
    p, v = s.pp, s.vpp
    m = s.micro_batches
    V = p * v
    layers = stage_layers(model.num_layers, V)
    dp_group = Group(s.data_parallel * s.cp, s.tp)
    pp_stride = s.tp * s.cp * s.data_parallel
    p2p_bytes = s.micro_batch * (model.seq_len // s.cp) * model.hidden_size * b.comp.elem_bytes / s.tp
    p2p = coll.cost("p2p", p2p_bytes, Group(max(p, 2), pp_stride))
    zero_bubble = s.pipeline_schedule == "zero-bubble"
    # zero-bubble schedules run the weight gradients as separate W passes
    bwd_passes = [lc.recompute, lc.backward_input if zero_bubble else lc.backward]
    params_layer = layer_params_local(model, s)
    params_embed = model.embedding_params / s.tp
    params_head = model.lm_head_params / s.tp
    grad_bytes = grad_reduce_bytes(s)
    bucket_params = s.bucket_mb * 1e6
    last_ops: list[tuple] = []

    for r in range(p):
        ops = SCHEDULES[s.pipeline_schedule](p, m, r, v)
        pending_sends: list[tuple] = []
        ready_grads: list[tuple[tuple, float]] = []  # (task, params whose grads it finished)
        prev: tuple | None = None

        def chain(node: tuple) -> None:
            nonlocal prev, pending_sends
            if prev is not None:
                b.g.add_edge(prev, node)
            for snd in pending_sends:  # Megatron waits for its sends before the next pass
                b.g.add_edge(snd, node)
            pending_sends = []
            prev = node

        for phase, c, mb in ops:
            vs = c * p + r
            if phase == "F":
                parts = [(lc.forward, layers[vs])]
                if vs == 0:
                    parts.insert(0, (hc.embed_forward, 1))
                if vs == V - 1:
                    parts.append((hc.head_forward, 1))
                node = b.add(
                    ("F", vs, mb),
                    f"{r}/compute",
                    "compute",
                    f"F{mb} stage {vs}",
                    rank=r,
                    **_compute_attrs(parts),
                )
                chain(node)
                if vs > 0:
                    b.g.add_edge(("SF", vs - 1, mb), node)
                if vs < V - 1:
                    snd = b.add_comm(("SF", vs, mb), r, "p2p", "pp_comm", f"send act {mb}", p2p)
                    b.g.add_edge(node, snd)
                    pending_sends.append(snd)
                continue
            if phase == "W":
                stage_params = layers[vs] * params_layer + (params_embed if vs == 0 else 0)
                stage_params += params_head if vs == V - 1 else 0
                node = b.add(
                    ("W", vs, mb),
                    f"{r}/compute",
                    "compute",
                    f"W{mb} stage {vs}",
                    rank=r,
                    **_compute_attrs([(lc.backward_weight, layers[vs])]),
                )
                chain(node)
                b.g.add_edge(("B", vs, mb), node)
                if mb == m - 1:
                    ready_grads.append((node, stage_params))
                continue
            # backward: split per layer on the last micro-batch so gradient buckets can overlap
            split = s.dp_overlap and mb == m - 1 and s.data_parallel * s.cp > 1 and not zero_bubble
            pieces: list[tuple[list[tuple[Pass, int]], float]] = []
            if vs == V - 1:
                pieces.append(([(hc.head_backward, 1)], params_head))
            if split:
                for _ in range(layers[vs]):
                    pieces.append(([(x, 1) for x in bwd_passes], params_layer))
            else:
                pieces.append(([(x, layers[vs]) for x in bwd_passes], layers[vs] * params_layer))
            if vs == 0:
                pieces.append(([(hc.embed_backward, 1)], params_embed))
            if not split:  # one task
                merged: list[tuple[Pass, int]] = [pp for parts, _ in pieces for pp in parts]
                nodes = [
                    b.add(
                        ("B", vs, mb),
                        f"{r}/compute",
                        "compute",
                        f"B{mb} stage {vs}",
                        rank=r,
                        **_compute_attrs(merged),
                    )
                ]
                params_done = [sum(x for _, x in pieces)]
            else:
                nodes = []
                params_done = []
                for j, (parts, prm) in enumerate(pieces):
                    key = ("B", vs, mb) if j == len(pieces) - 1 else ("B", vs, mb, j)
                    nodes.append(
                        b.add(
                            key,
                            f"{r}/compute",
                            "compute",
                            f"B{mb} stage {vs} part {j}",
                            rank=r,
                            **_compute_attrs(parts),
                        )
                    )
                    params_done.append(prm)
            for nd in nodes:
                chain(nd)
            b.g.add_edge(("F", vs, mb), nodes[0])
            if vs < V - 1:
                b.g.add_edge(("SB", vs + 1, mb), nodes[0])
            if vs > 0:
                snd = b.add_comm(("SB", vs, mb), r, "p2p", "pp_comm", f"send grad {mb}", p2p)
                b.g.add_edge(nodes[-1], snd)
                pending_sends.append(snd)
            if mb == m - 1 and not zero_bubble:
                ready_grads += list(zip(nodes, params_done, strict=True))
        assert prev is not None
        last_compute = prev
        # ---- data-parallel gradient reduction, in buckets
        dp_tasks: list[tuple] = []
        if dp_group.size > 1:
            kind = "all_reduce" if s.zero_stage == 0 else "reduce_scatter"
            acc = 0.0
            for k, (task, prm) in enumerate(ready_grads):
                acc += prm
                last = k == len(ready_grads) - 1
                if acc >= bucket_params or (last and acc > 0):
                    c = coll.cost(kind, acc * grad_bytes, dp_group)
                    dep = task if s.dp_overlap else last_compute
                    t = b.add_comm(("DP", r, len(dp_tasks)), r, "dp", "dp_comm", f"grad {kind} {acc / 1e6:.0f}M", c)
                    b.g.add_edge(dep, t)
                    dp_tasks.append(t)
                    acc = 0.0
        last_ops.append((r, last_compute, dp_tasks))

    _optimizer(b, last_ops, rank_params(model, s), dp_group)


def _optimizer(
    b: _Builder, last_ops: list[tuple[int, tuple, list[tuple]]], params_per_rank: list[float], dp: Group
) -> None:
    """Global gradient-norm sync, then each rank's optimizer step (and ZeRO parameter gather)."""
    s, coll = b.s, b.coll
    world = Group(b.s.tp * b.s.cp * b.s.data_parallel * b.s.pp, 1)
    sync_cost = coll.cost("all_reduce", 8, world)
    sync = b.add(("SYNC",), "global", "optimizer", "grad-norm all-reduce", duration=sync_cost.total_s, rank=-1)
    for _r, last_compute, dp_tasks in last_ops:
        b.g.add_edge(last_compute, sync)
        for t in dp_tasks:
            b.g.add_edge(t, sync)
    for r, _, _ in last_ops:
        shard = dp.size if s.zero_stage >= 1 else 1
        params = params_per_rank[r] / shard
        dur = b.comp.memory_s(params * ADAM_BYTES_PER_PARAM, 4)
        opt = b.add(("OPT", r), f"{r}/compute", "optimizer", "optimizer step", duration=dur, rank=r)
        b.g.add_edge(sync, opt)
        if s.zero_stage in (1, 2) and dp.size > 1:
            c = coll.cost("all_gather", params_per_rank[r] * 2, dp)
            ag = b.add_comm(("AGP", r), r, "dp", "dp_comm", "param all-gather (ZeRO)", c)
            b.g.add_edge(opt, ag)


def _build_fsdp(b: _Builder, lc: LayerCosts, hc: HeadCosts) -> None:
    """ZeRO-3 / FSDP: per-layer parameter all-gathers before forward and backward, gradient
    reduce-scatter after each layer's backward, one layer of prefetch (pp == 1 here)."""
    s, model, coll = b.s, b.model, b.coll
    m = s.micro_batches
    L = model.num_layers
    r = 0
    dp = Group(s.data_parallel * s.cp, s.tp)
    prm = layer_params_local(model, s)
    ag_layer = coll.cost("all_gather", prm * 2, dp)
    rs_layer = coll.cost("reduce_scatter", prm * grad_reduce_bytes(s), dp)
    root_prm = (model.embedding_params + model.lm_head_params) / s.tp
    ag_root = coll.cost("all_gather", root_prm * 2, dp)
    rs_root = coll.cost("reduce_scatter", root_prm * grad_reduce_bytes(s), dp)
    prev: tuple | None = None

    def chain(node: tuple) -> None:
        nonlocal prev
        if prev is not None:
            b.g.add_edge(prev, node)
        prev = node

    bwd_passes = [lc.recompute, lc.backward]
    # NCCL kernels running under a layer's compute hold SMs: the layer slows by that share for
    # as long as the gathers (forward) or gathers and reduce-scatters (backward) overlap it.
    share = b.comp.calib.comm_sm_slowdown
    fwd_s = lc.forward.seconds
    bwd_s = lc.recompute.seconds + lc.backward.seconds
    contention_f = Pass((Segment("SMs shared with overlapped NCCL", "compute", share * min(ag_layer.total_s, fwd_s)),))
    contention_b = Pass(
        (
            Segment(
                "SMs shared with overlapped NCCL", "compute", share * min(ag_layer.total_s + rs_layer.total_s, bwd_s)
            ),
        )
    )
    last_rs: list[tuple] = []
    for mb in range(m):
        root = b.add_comm(("AGR", mb), r, "ag", "dp_comm", "all-gather embedding/head", ag_root)
        if prev is not None:
            b.g.add_edge(prev, root)  # gathered again after the previous micro-batch freed it
        ag_prev = root
        fwd_nodes = []
        for i in range(L):
            ag = b.add_comm(("AGF", i, mb), r, "ag", "dp_comm", f"all-gather layer {i}", ag_layer)
            b.g.add_edge(ag_prev, ag)
            if i >= 2:
                b.g.add_edge(fwd_nodes[i - 2], ag)  # prefetch depth one layer
            parts = [(lc.forward, 1), (contention_f, 1 if dp.size > 1 else 0)]
            if i == 0:
                parts.insert(0, (hc.embed_forward, 1))
            if i == L - 1:
                parts.append((hc.head_forward, 1))
            f = b.add(("F", i, mb), f"{r}/compute", "compute", f"F{mb} layer {i}", rank=r, **_compute_attrs(parts))
            chain(f)
            b.g.add_edge(ag, f)
            if i == 0:
                b.g.add_edge(root, f)
            fwd_nodes.append(f)
            ag_prev = ag
        bwd_nodes: list[tuple] = []
        for j, i in enumerate(range(L - 1, -1, -1)):
            ag = b.add_comm(("AGB", i, mb), r, "ag", "dp_comm", f"all-gather layer {i} (bwd)", ag_layer)
            b.g.add_edge(ag_prev, ag)
            if j >= 2:
                b.g.add_edge(bwd_nodes[j - 2], ag)
            elif j == 0:
                b.g.add_edge(fwd_nodes[-1], ag)
            parts = [(x, 1) for x in bwd_passes] + [(contention_b, 1 if dp.size > 1 else 0)]
            if i == L - 1:
                parts.insert(0, (hc.head_backward, 1))
            if i == 0:
                parts.append((hc.embed_backward, 1))
            bn = b.add(("B", i, mb), f"{r}/compute", "compute", f"B{mb} layer {i}", rank=r, **_compute_attrs(parts))
            chain(bn)
            b.g.add_edge(ag, bn)
            rs = b.add_comm(("RS", i, mb), r, "rs", "dp_comm", f"reduce-scatter layer {i}", rs_layer)
            b.g.add_edge(bn, rs)
            bwd_nodes.append(bn)
            ag_prev = ag
            last_rs.append(rs)
        rsr = b.add_comm(("RSR", mb), r, "rs", "dp_comm", "reduce-scatter embedding/head", rs_root)
        b.g.add_edge(bwd_nodes[-1], rsr)
        last_rs.append(rsr)
    assert prev is not None
    params = L * prm + root_prm
    _optimizer(b, [(r, prev, last_rs)], [params], dp)
