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

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import networkx as nx

from planner.costs.collectives import CollectiveModel, CommCost, Group, sum_costs
from planner.costs.compute import ComputeModel
from planner.transformer.layer import HeadCosts, LayerCosts, Pass, Segment, head_costs, layer_costs
from planner.transformer.schedules import SCHEDULES, dualpipe_pairs, weight_grads_done
from planner.transformer.sharding import (
    chunk_stages,
    grad_reduce_bytes,
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
    dense: LayerCosts | None = None  # an MoE model's first_dense_layers (None: every layer is alike)

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
    """Build the step graph for a resolved strategy (see :func:`planner.transformer.strategy.check_layout`)."""
    lc = layer_costs(model, s, comp, coll)  # an MoE model's MoE layers, or every layer of a dense one
    hc = head_costs(model, s, comp, coll)
    b = _Builder(model, s, comp, coll)
    if model.is_moe and model.first_dense_layers:
        b.dense = layer_costs(model, s, comp, coll, moe=False)
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
        if not count:
            continue
        total += p.seconds * count
        for kind, sec in p.seconds_by_kind.items():
            kinds[kind] = kinds.get(kind, 0.0) + sec * count
    return {"duration": total, "kinds": kinds, "passes": [(p, c) for p, c in passes if c]}


def _build_pipeline(b: _Builder, lc: LayerCosts, hc: HeadCosts) -> None:
    s, model, coll = b.s, b.model, b.coll
    p, v = s.pp, s.vpp
    m = s.micro_batches
    V = pipeline_stages(s)
    dp_group = Group(s.data_parallel * s.cp, s.tp)
    pp_stride = s.tp * s.cp * s.data_parallel
    p2p_bytes = s.micro_batch * (model.seq_len // s.cp) * model.hidden_size * b.comp.elem_bytes / s.tp
    p2p = coll.cost("p2p", p2p_bytes, Group(max(p, 2), pp_stride))
    dualpipe = s.pipeline_schedule == "dualpipe"
    reduces = s.data_parallel * s.cp * (2 if dualpipe else 1) > 1  # gradients reduced across ranks
    # zero-bubble schedules and DualPipe run some weight gradients as separate W passes
    lcd = b.dense or lc
    kinds = stage_layer_kinds(model, V)  # (dense, MoE) layers per virtual stage; dense ones first

    def bwd_passes(x: LayerCosts, weight_apart: bool) -> list[Pass]:
        return [x.recompute, x.backward_input if weight_apart else x.backward]

    def stage_parts(vs: int, pick: Callable[[LayerCosts], Pass]) -> list[tuple[Pass, int]]:
        return [(pick(lcd), kinds[vs][0]), (pick(lc), kinds[vs][1])]

    params_dense = layer_params_local(model, s, moe=False)
    params_moe = layer_params_local(model, s)
    params_embed = model.embedding_params / s.tp
    params_head = model.lm_head_params / s.tp
    grad_bytes = grad_reduce_bytes(s)
    bucket_params = s.bucket_mb * 1e6
    last_ops: list[tuple] = []

    for r in range(p):
        ops = SCHEDULES[s.pipeline_schedule](p, m, r, v)
        stages = chunk_stages(s, r)
        w_apart = {(c, mb) for ph, c, mb in ops if ph == "W"}  # backwards whose W runs apart
        grads_done = weight_grads_done(ops)
        pairs = dualpipe_pairs(p, m, r) if dualpipe else frozenset()
        pending_sends: list[tuple] = []
        pair_f: tuple[tuple, list[tuple[Pass, int]]] = ((), [])  # the forward of the current DualPipe pair
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

        for i, (phase, c, mb) in enumerate(ops):
            vs = stages[c]
            final = i == grads_done[c]  # this pass completes the chunk's weight gradients
            if phase == "F":
                parts = stage_parts(vs, lambda x: x.forward)
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
                if i in pairs:  # a DualPipe F & B pair starts once the backward's gradient is in too
                    pair_f = (node, parts)
                    _, cb, mbb = ops[i + 1]
                    if stages[cb] < V - 1:
                        b.g.add_edge(("SB", stages[cb] + 1, mbb), node)
                if vs < V - 1:
                    snd = b.add_comm(("SF", vs, mb), r, "p2p", "pp_comm", f"send act {mb}", p2p)
                    b.g.add_edge(node, snd)
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
                    w_pieces[0] = (w_pieces[0][0], w_pieces[0][1] + params_head)
                if vs == 0:
                    w_pieces[-1] = (w_pieces[-1][0], w_pieces[-1][1] + params_embed)
                for j, (parts, prm) in enumerate(w_pieces):
                    last_piece = j == len(w_pieces) - 1
                    node = b.add(
                        ("W", vs, mb) if last_piece else ("W", vs, mb, j),
                        f"{r}/compute",
                        "compute",
                        f"W{mb} stage {vs}" + ("" if len(w_pieces) == 1 else f" part {j}"),
                        rank=r,
                        **_compute_attrs(parts),
                    )
                    chain(node)
                    if j == 0:
                        b.g.add_edge(("B", vs, mb), node)
                    if final:
                        ready_grads.append((node, prm))
                continue
            # backward: split per layer on the last micro-batch so gradient buckets can overlap
            split = s.dp_overlap and final and reduces
            apart = (c, mb) in w_apart
            pieces: list[tuple[list[tuple[Pass, int]], float]] = []
            if vs == V - 1:
                pieces.append(([(hc.head_backward, 1)], params_head))
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
                pieces.append(([(hc.embed_backward, 1)], params_embed))
            if not split:  # one task
                merged: list[tuple[Pass, int]] = [pp for parts, _ in pieces for pp in parts]
                if i - 1 in pairs:  # the backward of a DualPipe F & B pair
                    merged = _overlap_pair(b, *pair_f, merged)
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
            if final:
                ready_grads += list(zip(nodes, params_done, strict=True))
        assert prev is not None
        last_compute = prev
        # ---- data-parallel gradient reduction, in buckets (DualPipe: over both copies of each stage)
        red, mirror_done = _dualpipe_reduction(b, r, dp_group) if dualpipe else (dp_group, {})
        # Routed-expert gradients reduce over the ranks holding the same experts only (Megatron-Core's
        # expert-data-parallel group, dp*cp/ep ranks), the rest over the whole data-parallel group.
        expert_share = _expert_share(model, s, r)
        expert_red = expert_dp_group(red, s)
        dp_tasks: list[tuple] = []
        if red.size > 1:
            kind = "all_reduce" if s.zero_stage == 0 else "reduce_scatter"
            acc = 0.0
            start = 0  # the bucket's first entry
            for k, (task, prm) in enumerate(ready_grads):
                acc += prm
                last = k == len(ready_grads) - 1
                if acc >= bucket_params or (last and acc > 0):
                    c = sum_costs(
                        coll.cost(kind, acc * (1 - expert_share) * grad_bytes, red),
                        coll.cost(kind, acc * expert_share * grad_bytes, expert_red),
                    )
                    dep = task if s.dp_overlap else last_compute
                    t = b.add_comm(("DP", r, len(dp_tasks)), r, "dp", "dp_comm", f"grad {kind} {acc / 1e6:.0f}M", c)
                    b.g.add_edge(dep, t)
                    for done, _ in ready_grads[start : k + 1] if dualpipe else []:  # the other copy too
                        ph, vs, mb = mirror_done[done[1]]
                        same = s.dp_overlap and ph == done[0]  # the same pass (and pieces) on the mirror
                        b.g.add_edge((ph, vs, mb, *done[3:]) if same else (ph, vs, mb), t)
                    start = k + 1
                    dp_tasks.append(t)
                    acc = 0.0
        last_ops.append((r, last_compute, dp_tasks))
    if dualpipe:  # every edge to the mirror rank's passes names a task that exists
        assert all("stream" in a for _, a in b.g.nodes(data=True))

    _optimizer(b, last_ops, dp_group)


def _overlap_pair(
    b: _Builder, f_node: tuple, f_parts: list[tuple[Pass, int]], b_parts: list[tuple[Pass, int]]
) -> list[tuple[Pass, int]]:
    """DualPipe runs a forward and a backward chunk of the two directions as one pair, each one's
    expert-parallel all-to-all (dispatch, combine) under the other's computation (DeepSeek-V3 sec.
    3.2.1). The engine runs a rank's compute stream one task at a time, so the pair stays two tasks,
    one after the other, and each loses the part of its all-to-all time that the other's computation
    covers; the covered computation slows by ``comm_sm_slowdown`` for that long (the SMs the
    communication holds). Rewrites the forward's task in place; returns the backward's parts. Other
    in-line communication (tensor- and context-parallel) stays exposed; the pair's pipeline sends
    are on the p2p stream already."""
    share = b.comp.calib.comm_sm_slowdown
    f_kinds = _compute_attrs(f_parts)["kinds"]
    b_kinds = _compute_attrs(b_parts)["kinds"]
    assert isinstance(f_kinds, dict) and isinstance(b_kinds, dict)
    hide_f = min(f_kinds.get("ep_comm", 0.0), b_kinds.get("compute", 0.0))
    hide_b = min(b_kinds.get("ep_comm", 0.0), f_kinds.get("compute", 0.0))
    if hide_f <= 0 and hide_b <= 0:
        return b_parts
    b.g.nodes[f_node].update(_compute_attrs(_hide_all_to_all(f_parts, hide_f, share * hide_b)))
    return _hide_all_to_all(b_parts, hide_b, share * hide_f)


def _hide_all_to_all(parts: list[tuple[Pass, int]], hidden: float, slowdown: float) -> list[tuple[Pass, int]]:
    """``parts`` with their all-to-all segments shortened by ``hidden`` seconds in all, plus
    ``slowdown`` seconds of compute lost to the paired chunk's communication."""
    total = sum(p.seconds_of("ep_comm") * n for p, n in parts)
    keep = 1.0 - hidden / total if total > 0 else 1.0
    out = [
        (
            Pass(
                tuple(
                    replace(x, label=x.label + " (rest under the paired chunk)", seconds=x.seconds * keep)
                    if x.kind == "ep_comm"
                    else x
                    for x in p.segments
                )
            ),
            n,
        )
        for p, n in parts
    ]
    if slowdown > 0:
        out.append((Pass((Segment("SMs shared with the paired chunk's all-to-all", "compute", slowdown),)), 1))
    return out


def _dualpipe_reduction(b: _Builder, r: int, dp: Group) -> tuple[Group, dict[int, tuple]]:
    """DualPipe keeps two copies of the parameters: stage ``vs`` is chunk 0 of rank ``vs`` and chunk
    1 of rank ``p - 1 - vs``, and a stage's gradient is the sum over both copies' data-parallel
    replicas (the reference implementation's example adds each chunk's gradient to its mirror's).
    Rank ``r`` reduces each of its chunks over those ``2 dp cp`` ranks, once the mirror rank
    ``p - 1 - r`` has finished the same stage. Returns that group (its ranks per scale-up island:
    the data-parallel group's, doubled when the mirror shares the island) and, per stage, the
    mirror's pass that completes that stage's gradients (a bucket waits for the same per-layer
    piece of it as of this rank's), or with ``dp_overlap`` off the mirror's last pass."""
    s, coll = b.s, b.coll
    mirror = s.pp - 1 - r
    mops = SCHEDULES[s.pipeline_schedule](s.pp, s.micro_batches, mirror, s.vpp)
    mstages = chunk_stages(s, mirror)
    done = weight_grads_done(mops)
    waits: dict[int, tuple] = {}
    for c, vs in enumerate(mstages):
        ph, mc, mb = mops[done[c] if s.dp_overlap else -1]
        waits[vs] = (ph, mstages[mc], mb)
    pp_stride = s.tp * s.cp * s.data_parallel
    same_island = r * pp_stride // coll.island == mirror * pp_stride // coll.island
    k = coll.members_per_island(dp) * (2 if same_island else 1)
    return Group(2 * dp.size, max(1, coll.island // k)), waits


def _expert_share(model: TransformerSpec, s: Strategy, rank: int) -> float:
    """Fraction of pipeline rank ``rank``'s parameters that are routed-expert weights."""
    dense, experts = rank_params_split(model, s)[rank]
    return experts / (dense + experts) if dense + experts > 0 else 0.0


def expert_dp_group(dp: Group, s: Strategy) -> Group:
    """The ranks of data-parallel group ``dp`` that hold the same routed experts (Megatron-Core's
    expert-data-parallel group): ``dp.size / ep`` of them, ``ep`` times as far apart."""
    return Group(max(1, dp.size // s.ep), dp.stride * s.ep)


def optimizer_step(
    comp: ComputeModel, coll: CollectiveModel, s: Strategy, dense: float, experts: float, dp: Group
) -> tuple[float, CommCost]:
    """One rank's Adam step and ZeRO-1/2 parameter all-gather, for ``dense`` parameters replicated
    over the data-parallel group ``dp`` and ``experts`` (routed-expert) parameters replicated over
    its expert-data-parallel ranks (``dp * cp / ep``): ZeRO shards and gathers each part over its
    own group, as Megatron-Core's distributed optimizer does. Shared by the graph and the search's
    estimate."""
    expert_dp = expert_dp_group(dp, s)
    params = dense / dp.size + experts / expert_dp.size if s.zero_stage >= 1 else dense + experts
    step_s = comp.memory_s(params * ADAM_BYTES_PER_PARAM, 4)
    gather = CommCost(0.0, 0.0, "up")
    if s.zero_stage in (1, 2) and dp.size > 1:
        gather = sum_costs(coll.cost("all_gather", dense * 2, dp), coll.cost("all_gather", experts * 2, expert_dp))
    return step_s, gather


def _optimizer(b: _Builder, last_ops: list[tuple[int, tuple, list[tuple]]], dp: Group) -> None:
    """Global gradient-norm sync, then each rank's optimizer step (and ZeRO parameter gather)."""
    s, coll = b.s, b.coll
    world = Group(b.s.tp * b.s.cp * b.s.data_parallel * b.s.pp, 1)
    sync_cost = coll.cost("all_reduce", 8, world)
    sync = b.add(("SYNC",), "global", "optimizer", "grad-norm all-reduce", duration=sync_cost.total_s, rank=-1)
    for _r, last_compute, dp_tasks in last_ops:
        b.g.add_edge(last_compute, sync)
        for t in dp_tasks:
            b.g.add_edge(t, sync)
    split = rank_params_split(b.model, s)
    for r, _, _ in last_ops:
        dur, gather = optimizer_step(b.comp, coll, s, *split[r], dp)
        opt = b.add(("OPT", r), f"{r}/compute", "optimizer", "optimizer step", duration=dur, rank=r)
        b.g.add_edge(sync, opt)
        if s.zero_stage in (1, 2) and dp.size > 1:
            ag = b.add_comm(("AGP", r), r, "dp", "dp_comm", "param all-gather (ZeRO)", gather)
            b.g.add_edge(opt, ag)


def _build_fsdp(b: _Builder, lc: LayerCosts, hc: HeadCosts) -> None:
    """ZeRO-3 / FSDP: per-layer parameter all-gathers before forward and backward, gradient
    reduce-scatter after each layer's backward, one layer of prefetch (pp == 1 here)."""
    s, model, coll = b.s, b.model, b.coll
    m = s.micro_batches
    L = model.num_layers
    r = 0
    dp = Group(s.data_parallel * s.cp, s.tp)
    root_prm = (model.embedding_params + model.lm_head_params) / s.tp
    ag_root = coll.cost("all_gather", root_prm * 2, dp)
    rs_root = coll.cost("reduce_scatter", root_prm * grad_reduce_bytes(s), dp)
    prev: tuple | None = None

    def chain(node: tuple) -> None:
        nonlocal prev
        if prev is not None:
            b.g.add_edge(prev, node)
        prev = node

    # per layer kind (an MoE model's first dense layers, its MoE layers): the layer's passes, its
    # parameters, gather and reduce-scatter, and the slowdown of the compute they run under
    kind = {moe: _FsdpLayer.of(b, (lc if moe else b.dense or lc), moe, dp) for moe in (False, True)}
    last_rs: list[tuple] = []
    for mb in range(m):
        root = b.add_comm(("AGR", mb), r, "ag", "dp_comm", "all-gather embedding/head", ag_root)
        if prev is not None:
            b.g.add_edge(prev, root)  # gathered again after the previous micro-batch freed it
        ag_prev = root
        fwd_nodes = []
        for i in range(L):
            k = kind[model.layer_is_moe(i)]
            ag = b.add_comm(("AGF", i, mb), r, "ag", "dp_comm", f"all-gather layer {i}", k.ag)
            b.g.add_edge(ag_prev, ag)
            if i >= 2:
                b.g.add_edge(fwd_nodes[i - 2], ag)  # prefetch depth one layer
            parts = [(k.lc.forward, 1), (k.contention_f, 1 if dp.size > 1 else 0)]
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
            k = kind[model.layer_is_moe(i)]
            ag = b.add_comm(("AGB", i, mb), r, "ag", "dp_comm", f"all-gather layer {i} (bwd)", k.ag)
            b.g.add_edge(ag_prev, ag)
            if j >= 2:
                b.g.add_edge(bwd_nodes[j - 2], ag)
            elif j == 0:
                b.g.add_edge(fwd_nodes[-1], ag)
            parts = [(k.lc.recompute, 1), (k.lc.backward, 1), (k.contention_b, 1 if dp.size > 1 else 0)]
            if i == L - 1:
                parts.insert(0, (hc.head_backward, 1))
            if i == 0:
                parts.append((hc.embed_backward, 1))
            bn = b.add(("B", i, mb), f"{r}/compute", "compute", f"B{mb} layer {i}", rank=r, **_compute_attrs(parts))
            chain(bn)
            b.g.add_edge(ag, bn)
            rs = b.add_comm(("RS", i, mb), r, "rs", "dp_comm", f"reduce-scatter layer {i}", k.rs)
            b.g.add_edge(bn, rs)
            bwd_nodes.append(bn)
            ag_prev = ag
            last_rs.append(rs)
        rsr = b.add_comm(("RSR", mb), r, "rs", "dp_comm", "reduce-scatter embedding/head", rs_root)
        b.g.add_edge(bwd_nodes[-1], rsr)
        last_rs.append(rsr)
    assert prev is not None
    _optimizer(b, [(r, prev, last_rs)], dp)


@dataclass(frozen=True)
class _FsdpLayer:
    """One layer kind under ZeRO-3 / FSDP: its passes, gather and reduce-scatter, and the compute
    slowdown while NCCL kernels run under it (they hold SMs)."""

    lc: LayerCosts
    ag: CommCost
    rs: CommCost
    contention_f: Pass
    contention_b: Pass

    @staticmethod
    def of(b: _Builder, lc: LayerCosts, moe: bool, dp: Group) -> _FsdpLayer:
        prm = layer_params_local(b.model, b.s, moe=moe)
        ag = b.coll.cost("all_gather", prm * 2, dp)
        rs = b.coll.cost("reduce_scatter", prm * grad_reduce_bytes(b.s), dp)
        share = b.comp.calib.comm_sm_slowdown
        fwd_s = lc.forward.seconds
        bwd_s = lc.recompute.seconds + lc.backward.seconds
        label = "SMs shared with overlapped NCCL"
        cf = Pass((Segment(label, "compute", share * min(ag.total_s, fwd_s)),))
        cb = Pass((Segment(label, "compute", share * min(ag.total_s + rs.total_s, bwd_s)),))
        return _FsdpLayer(lc, ag, rs, cf, cb)
