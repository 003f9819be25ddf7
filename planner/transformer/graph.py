"""The step graph of a transformer: one representative rank per pipeline stage.

Data-, tensor- and context-parallel peers of a rank do the same work at the same time, so the
graph holds one rank per pipeline stage and its cost does not grow with the number of replicas.
Each rank has a compute stream (layer passes with their in-line tensor-parallel collectives), a
point-to-point stream (pipeline sends) and data-parallel streams (gradient reduction, ZeRO
gathers). Tasks are per (virtual stage, micro-batch, phase); the last backward of each virtual stage
is split per layer so that bucketed gradient reduction can start while it runs, and ZeRO-3 / FSDP
without pipeline stages gets per-layer tasks throughout, since its gathers interleave with every
layer (with ``pp > 1`` a stage is gathered once a step, as ZeRO-1:
:func:`~planner.transformer.sharding.gathers_per_layer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import networkx as nx

from planner.costs.collectives import CommCost
from planner.transformer.keys import Kind, Node, Phase
from planner.transformer.layer import LayerCosts, Pass, Segment
from planner.transformer.plan import StepPlan
from planner.transformer.schedules import overlapped_pair, weight_grads_done
from planner.transformer.sharding import dp_reduce_kind, gathers_after_step, gathers_for_backward, gathers_per_layer

F, B, W = Phase.FORWARD, Phase.BACKWARD, Phase.WEIGHT_GRAD
SF, SB = Phase.SEND_FORWARD, Phase.SEND_BACKWARD


@dataclass
class StepGraph:
    """The graph and what the report needs to read it back."""

    graph: nx.DiGraph
    ranks: int
    passes: dict[str, Pass] = field(default_factory=dict)


@dataclass
class _Builder:
    plan: StepPlan
    g: nx.DiGraph = field(default_factory=nx.DiGraph)
    order: dict[str, int] = field(default_factory=dict)
    retime: bool = False  # the graph holds the tasks and edges already: update their times only

    def add(self, key: Node, stream: str, kind: Kind, label: str, **attrs: object) -> Node:
        if self.retime:
            self.g.nodes[key].update(attrs)
            return key
        n = self.order.get(stream, 0)
        self.order[stream] = n + 1
        self.g.add_node(key, stream=stream, kind=kind, label=label, order=n, **attrs)
        return key

    def edge(self, before: Node, after: Node) -> None:
        if not self.retime:
            self.g.add_edge(before, after)

    def add_comm(self, key: Node, rank: int, stream: str, kind: Kind, label: str, c: CommCost) -> Node:
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

    def compute(self, key: Node, rank: int, label: str, parts: list[tuple[Pass, int]]) -> Node:
        return self.add(key, f"{rank}/compute", Kind.COMPUTE, label, rank=rank, **_compute_attrs(parts))


def build(plan: StepPlan, tasks: StepGraph | None = None) -> StepGraph:
    """Build the step graph of a planned step (see :func:`planner.transformer.plan.make_plan`).

    With ``tasks`` (the graph of the same layout under another calibration: the tasks, edges and
    stream orders do not depend on the constants) only the tasks' times are worked out again, in
    place: what calibration does for each trial constant."""
    b = _Builder(plan) if tasks is None else _Builder(plan, tasks.graph, retime=True)
    if gathers_per_layer(plan.strategy):
        _build_fsdp(b)
    else:
        _build_pipeline(b)
    lc = plan.layer
    passes = {"forward": lc.forward, "backward": lc.backward, "recompute": lc.recompute}
    return StepGraph(b.g, plan.strategy.pp, passes)


def _compute_attrs(passes: list[tuple[Pass, int]]) -> dict[str, object]:
    """Duration and per-kind seconds of a compute task made of ``count`` repeats of passes."""
    total = 0.0
    kinds: dict[str, float] = {}
    for p, count in passes:
        if not count:
            continue
        total += p.seconds * count
        for kind, sec in p.seconds_by_kind.items():
            kinds[kind] = kinds.get(kind, 0.0) + sec * count
    return {"duration": total, "kinds": kinds, "passes": [(p, c) for p, c in passes if c]}


def _build_pipeline(b: _Builder) -> None:
    plan = b.plan
    s = plan.strategy
    V = plan.stages
    dualpipe = plan.dualpipe
    reduces = s.data_parallel * s.cp * (2 if dualpipe else 1) > 1  # gradients reduced across ranks
    lc, lcd, hc, kinds = plan.layer, plan.dense, plan.head, plan.stage_kinds  # kinds: (dense, MoE) per stage
    params_dense, params_moe = plan.params_dense, plan.params_moe

    def bwd_passes(x: LayerCosts, weight_apart: bool) -> list[Pass]:
        return [x.recompute, x.backward_input if weight_apart else x.backward]

    def stage_parts(vs: int, pick: Callable[[LayerCosts], Pass]) -> list[tuple[Pass, int]]:
        return [(pick(lcd), kinds[vs][0]), (pick(lc), kinds[vs][1])]

    last_ops: list[tuple[int, Node, list[Node]]] = []

    for r in range(s.pp):
        ops = plan.ops[r]
        stages = plan.chunk_stages(r)
        w_apart = {(c, mb) for ph, c, mb in ops if ph == "W"}  # backwards whose W runs apart
        grads_done = weight_grads_done(ops)
        pairs = plan.pairs[r]
        pending_sends: list[Node] = []
        pair_f: tuple[Node, list[tuple[Pass, int]]] = (Node(F), [])  # the forward of the current DualPipe pair
        ready_grads: list[tuple[Node, float]] = []  # (task, params whose grads it finished)
        prev: Node | None = None

        def chain(node: Node) -> None:
            nonlocal prev, pending_sends
            if prev is not None:
                b.edge(prev, node)
            for snd in pending_sends:  # Megatron waits for its sends before the next pass
                b.edge(snd, node)
            pending_sends = []
            prev = node

        for i, (phase, c, mb) in enumerate(ops):
            vs = stages[c]
            final = i == grads_done[c]  # this pass completes the chunk's weight gradients
            if phase == "F":
                parts = stage_parts(vs, lambda x: x.forward)
                if vs == 0:
                    parts.insert(0, (hc.embed_forward, 1))
                if vs == V - 1:
                    parts.append((hc.head_forward, 1))
                node = b.compute(Node(F, vs, mb), r, f"F{mb} stage {vs}", parts)
                chain(node)
                if vs > 0:
                    b.edge(Node(SF, vs - 1, mb), node)
                if i in pairs:  # a DualPipe F & B pair starts once the backward's gradient is in too
                    pair_f = (node, parts)
                    _, cb, mbb = ops[i + 1]
                    if stages[cb] < V - 1:
                        b.edge(Node(SB, stages[cb] + 1, mbb), node)
                if vs < V - 1:
                    snd = b.add_comm(Node(SF, vs, mb), r, "p2p", Kind.PP_COMM, f"send act {mb}", plan.p2p)
                    b.edge(node, snd)
                    pending_sends.append(snd)
                continue
            if phase == "W":
                n_dense, n_moe = kinds[vs]
                # split per layer on the chunk's last W, as the last backward below
                if s.dp_overlap and final and reduces:  # later (MoE) layers first
                    w_pieces = [([(lc.backward_weight, 1)], params_moe)] * n_moe
                    w_pieces += [([(lcd.backward_weight, 1)], params_dense)] * n_dense
                else:
                    w_prm = n_dense * params_dense + n_moe * params_moe
                    w_pieces = [(stage_parts(vs, lambda x: x.backward_weight), w_prm)]
                if vs == V - 1:  # the LM head's weight gradient came with B; reduced from here
                    w_pieces[0] = (w_pieces[0][0], w_pieces[0][1] + plan.params_head)
                if vs == 0:
                    w_pieces[-1] = (w_pieces[-1][0], w_pieces[-1][1] + plan.params_embed)
                for j, (parts, prm) in enumerate(w_pieces):
                    whole = len(w_pieces) == 1
                    key = Node(W, vs, mb, -1 if j == len(w_pieces) - 1 else j)
                    node = b.compute(key, r, f"W{mb} stage {vs}" + ("" if whole else f" part {j}"), parts)
                    chain(node)
                    if j == 0:
                        b.edge(Node(B, vs, mb), node)
                    if final:
                        ready_grads.append((node, prm))
                continue
            # backward: split per layer on the last micro-batch so gradient buckets can overlap
            split = s.dp_overlap and final and reduces
            apart = (c, mb) in w_apart
            pieces: list[tuple[list[tuple[Pass, int]], float]] = []
            if vs == V - 1:
                pieces.append(([(hc.head_backward, 1)], plan.params_head))
            n_dense, n_moe = kinds[vs]
            if split:  # backward runs the later (MoE) layers first
                for _ in range(n_moe):
                    pieces.append(([(x, 1) for x in bwd_passes(lc, apart)], params_moe))
                for _ in range(n_dense):
                    pieces.append(([(x, 1) for x in bwd_passes(lcd, apart)], params_dense))
            else:
                parts_b = [(x, n_moe) for x in bwd_passes(lc, apart)] + [(x, n_dense) for x in bwd_passes(lcd, apart)]
                pieces.append((parts_b, n_moe * params_moe + n_dense * params_dense))
            if vs == 0:
                pieces.append(([(hc.embed_backward, 1)], plan.params_embed))
            if not split:  # one task
                merged: list[tuple[Pass, int]] = [pp for parts, _ in pieces for pp in parts]
                if i - 1 in pairs:  # the backward of a DualPipe F & B pair
                    merged = _overlap_pair(b, *pair_f, merged)
                nodes = [b.compute(Node(B, vs, mb), r, f"B{mb} stage {vs}", merged)]
                params_done = [sum(x for _, x in pieces)]
            else:
                nodes = []
                params_done = []
                for j, (parts, prm) in enumerate(pieces):
                    key = Node(B, vs, mb, -1 if j == len(pieces) - 1 else j)
                    nodes.append(b.compute(key, r, f"B{mb} stage {vs} part {j}", parts))
                    params_done.append(prm)
            for nd in nodes:
                chain(nd)
            b.edge(Node(F, vs, mb), nodes[0])
            if vs < V - 1:
                b.edge(Node(SB, vs + 1, mb), nodes[0])
            if vs > 0:
                snd = b.add_comm(Node(SB, vs, mb), r, "p2p", Kind.PP_COMM, f"send grad {mb}", plan.p2p)
                b.edge(nodes[-1], snd)
                pending_sends.append(snd)
            if final:
                ready_grads += list(zip(nodes, params_done, strict=True))
        assert prev is not None
        last_compute = prev
        dp_tasks = _grad_reduction(b, r, ready_grads, last_compute)
        last_ops.append((r, last_compute, dp_tasks))
    if dualpipe:  # every edge to the mirror rank's passes names a task that exists
        assert all("stream" in a for _, a in b.g.nodes(data=True))

    _optimizer(b, last_ops)


def _grad_reduction(b: _Builder, r: int, ready_grads: list[tuple[Node, float]], last_compute: Node) -> list[Node]:
    """Rank ``r``'s data-parallel gradient reduction, in buckets of ``bucket_mb`` as the passes that
    finish the gradients end (DualPipe: over both copies of each stage, once the mirror rank's
    copy is done too). Routed-expert gradients reduce over their expert-data-parallel ranks only."""
    plan, s = b.plan, b.plan.strategy
    red, mirror_done = (
        (plan.dualpipe_reduce_group(r), _dualpipe_waits(plan, r)) if plan.dualpipe else (plan.groups.dp, {})
    )
    dp_tasks: list[Node] = []
    if red.size <= 1:
        return dp_tasks
    kind = dp_reduce_kind(s)
    acc = 0.0
    start = 0  # the bucket's first entry
    for k, (task, prm) in enumerate(ready_grads):
        acc += prm
        last = k == len(ready_grads) - 1
        if acc >= plan.bucket_params or (last and acc > 0):
            c = plan.grad_reduce(acc, r, red)
            t = b.add_comm(
                Node(Phase.GRAD_REDUCE, r, len(dp_tasks)), r, "dp", Kind.DP_COMM, f"grad {kind} {acc / 1e6:.0f}M", c
            )
            b.edge(task if s.dp_overlap else last_compute, t)
            for done, _ in ready_grads[start : k + 1] if plan.dualpipe else []:  # the other copy too
                ph, vs, mb = mirror_done[done.index]
                same = s.dp_overlap and ph == done.phase  # the same pass (and pieces) on the mirror
                b.edge(Node(ph, vs, mb, done.part) if same else Node(ph, vs, mb), t)
            start = k + 1
            dp_tasks.append(t)
            acc = 0.0
    return dp_tasks


def _overlap_pair(
    b: _Builder, f_node: Node, f_parts: list[tuple[Pass, int]], b_parts: list[tuple[Pass, int]]
) -> list[tuple[Pass, int]]:
    """DualPipe runs a forward and a backward chunk of the two directions as one pair, each one's
    expert-parallel all-to-all (dispatch, combine) under the other's computation, which runs on the
    SMs the all-to-all kernels leave (DeepSeek-V3 sec. 3.2.1-3.2.2, Figure 4): the pair takes
    :func:`~planner.transformer.schedules.overlapped_pair`'s ``max(computation at the reduced SM
    share, all-to-all)``. The engine runs a rank's compute stream one task at a time, so the pair
    stays two tasks, one after the other, each with its share of the exposed all-to-all and of the
    slowdown. Rewrites the forward's task in place; returns the backward's parts. Other in-line
    communication (tensor- and context-parallel) stays exposed; the pair's pipeline sends are on the
    p2p stream already."""
    f_kinds = _compute_attrs(f_parts)["kinds"]
    b_kinds = _compute_attrs(b_parts)["kinds"]
    assert isinstance(f_kinds, dict) and isinstance(b_kinds, dict)
    compute = f_kinds.get(Kind.COMPUTE, 0.0) + b_kinds.get(Kind.COMPUTE, 0.0)
    a2a = f_kinds.get(Kind.EP_COMM, 0.0) + b_kinds.get(Kind.EP_COMM, 0.0)
    keep, slow = overlapped_pair(compute, a2a, b.plan.pair_compute_share)
    if keep >= 1.0:
        return b_parts
    b.g.nodes[f_node].update(_compute_attrs(_hide_all_to_all(f_parts, keep, slow * f_kinds.get(Kind.COMPUTE, 0.0))))
    return _hide_all_to_all(b_parts, keep, slow * b_kinds.get(Kind.COMPUTE, 0.0))


def _hide_all_to_all(parts: list[tuple[Pass, int]], keep: float, slowdown: float) -> list[tuple[Pass, int]]:
    """``parts`` with their all-to-all segments cut to the fraction ``keep`` left exposed, plus
    ``slowdown`` seconds of compute lost to the SMs the pair's all-to-all holds."""
    out = [
        (
            Pass(
                tuple(
                    replace(x, label=x.label + " (rest under the paired chunk)", seconds=x.seconds * keep)
                    if x.kind == Kind.EP_COMM
                    else x
                    for x in p.segments
                ),
                p.phase,
            ),
            n,
        )
        for p, n in parts
    ]
    if slowdown > 0:
        label = "SMs given to the paired chunk's all-to-all"
        out.append((Pass((Segment(label, Kind.COMPUTE, slowdown),)), 1))
    return out


def _dualpipe_waits(plan: StepPlan, r: int) -> dict[int, tuple[Phase, int, int]]:
    """Per stage of pipeline rank ``r``, the pass of the mirror rank ``p - 1 - r`` (which holds the
    other copy of that stage) that completes the stage's gradients, or with ``dp_overlap`` off the
    mirror's last pass: a gradient bucket waits for the same per-layer piece of it as of this rank's
    (see :meth:`~planner.transformer.plan.StepPlan.dualpipe_reduce_group`)."""
    s = plan.strategy
    mirror = s.pp - 1 - r
    mops = plan.ops[mirror]
    mstages = plan.chunk_stages(mirror)
    done = weight_grads_done(mops)
    waits: dict[int, tuple[Phase, int, int]] = {}
    for c, vs in enumerate(mstages):
        ph, mc, mb = mops[done[c] if s.dp_overlap else -1]
        waits[vs] = (Phase(ph), mstages[mc], mb)
    return waits


def _optimizer(b: _Builder, last_ops: list[tuple[int, Node, list[Node]]]) -> None:
    """Global gradient-norm sync, then each rank's optimizer step (and ZeRO parameter gather)."""
    plan = b.plan
    s = plan.strategy
    sync = b.add(
        Node(Phase.GRAD_NORM_SYNC),
        "global",
        Kind.OPTIMIZER,
        "grad-norm all-reduce",
        duration=plan.sync.total_s,
        rank=-1,
    )
    for _r, last_compute, dp_tasks in last_ops:
        b.edge(last_compute, sync)
        for t in dp_tasks:
            b.edge(t, sync)
    for r, _, _ in last_ops:
        dur, gather = plan.optimizer[r]
        opt = b.add(Node(Phase.OPTIMIZER, r), f"{r}/compute", Kind.OPTIMIZER, "optimizer step", duration=dur, rank=r)
        b.edge(sync, opt)
        if gathers_after_step(s) and plan.groups.dp.size > 1:
            ag = b.add_comm(Node(Phase.PARAM_GATHER, r), r, "dp", Kind.DP_COMM, "param all-gather (ZeRO)", gather)
            b.edge(opt, ag)


def _build_fsdp(b: _Builder) -> None:
    """ZeRO-3 / FSDP: per-layer parameter all-gathers before forward and backward (before the
    forward only when layers are not resharded after it: sharding.gathers_for_backward), gradient
    reduce-scatter after each layer's backward, one layer of prefetch (pp == 1 here)."""
    plan = b.plan
    model, hc = plan.model, plan.head
    m = plan.strategy.micro_batches
    L = model.num_layers
    r = 0
    ag_root, rs_root = plan.fsdp_root
    many = 1 if plan.groups.dp.size > 1 else 0  # the gathers' contention applies when there are gathers
    regather = gathers_for_backward(plan.strategy)
    prev: Node | None = None

    def chain(node: Node) -> None:
        nonlocal prev
        if prev is not None:
            b.edge(prev, node)
        prev = node

    # per layer kind (an MoE model's first dense layers, its MoE layers): the layer's passes, its
    # parameters, gather and reduce-scatter, and the slowdown of the compute they run under
    kind = plan.fsdp
    last_rs: list[Node] = []
    for mb in range(m):
        root = b.add_comm(Node(Phase.ROOT_GATHER, 0, mb), r, "ag", Kind.DP_COMM, "all-gather embedding/head", ag_root)
        if prev is not None:
            b.edge(prev, root)  # gathered again after the previous micro-batch freed it
        ag_prev = root
        fwd_nodes = []
        for i in range(L):
            k = kind[model.layer_is_moe(i)]
            ag = b.add_comm(
                Node(Phase.LAYER_GATHER_FORWARD, i, mb), r, "ag", Kind.DP_COMM, f"all-gather layer {i}", k.ag
            )
            b.edge(ag_prev, ag)
            if i >= 2:
                b.edge(fwd_nodes[i - 2], ag)  # prefetch depth one layer
            parts = [(k.lc.forward, 1), (k.contention_f, many)]
            if i == 0:
                parts.insert(0, (hc.embed_forward, 1))
            if i == L - 1:
                parts.append((hc.head_forward, 1))
            f = b.compute(Node(F, i, mb), r, f"F{mb} layer {i}", parts)
            chain(f)
            b.edge(ag, f)
            if i == 0:
                b.edge(root, f)
            fwd_nodes.append(f)
            ag_prev = ag
        bwd_nodes: list[Node] = []
        for j, i in enumerate(range(L - 1, -1, -1)):
            k = kind[model.layer_is_moe(i)]
            if regather:  # else the layer is still gathered from its forward (sharding.gathers_for_backward)
                ag = b.add_comm(
                    Node(Phase.LAYER_GATHER_BACKWARD, i, mb), r, "ag", Kind.DP_COMM, f"all-gather layer {i} (bwd)", k.ag
                )
                b.edge(ag_prev, ag)
                if j >= 2:
                    b.edge(bwd_nodes[j - 2], ag)
                elif j == 0:
                    b.edge(fwd_nodes[-1], ag)
            parts = [(k.lc.recompute, 1), (k.lc.backward, 1), (k.contention_b, many)]
            if i == L - 1:
                parts.insert(0, (hc.head_backward, 1))
            if i == 0:
                parts.append((hc.embed_backward, 1))
            bn = b.compute(Node(B, i, mb), r, f"B{mb} layer {i}", parts)
            chain(bn)
            if regather:
                b.edge(ag, bn)
            rs = b.add_comm(
                Node(Phase.LAYER_REDUCE_SCATTER, i, mb), r, "rs", Kind.DP_COMM, f"reduce-scatter layer {i}", k.rs
            )
            b.edge(bn, rs)
            bwd_nodes.append(bn)
            if regather:
                ag_prev = ag
            last_rs.append(rs)
        rsr = b.add_comm(
            Node(Phase.ROOT_REDUCE_SCATTER, 0, mb), r, "rs", Kind.DP_COMM, "reduce-scatter embedding/head", rs_root
        )
        b.edge(bwd_nodes[-1], rsr)
        last_rs.append(rsr)
    assert prev is not None
    _optimizer(b, [(r, prev, last_rs)])
