"""Stage 2: a fast, closed-form step time and the memory check, without building a graph.

It reads the same :class:`~planner.transformer.plan.StepPlan` as the graph builder (groups, layer
templates, message sizes, optimizer step, memory), so that pruning on it keeps the layouts the
full simulation would rank first; tests/test_estimate.py holds it within 2 % of the simulation for
every schedule:

* per-layer forward, backward and recomputation times and the in-line tensor-parallel collectives
  are the plan's templates (:func:`planner.transformer.layer.layer_costs`, shared per micro-batch
  shape through a :class:`~planner.transformer.plan.PlanCache`, so a grid of thousands of layouts
  costs a few dozen templates);
* pipeline: the busiest rank's time per micro-batch ``t`` (its layers, its head or embedding, its
  blocking sends) times the ``m`` micro-batches, plus the fill-and-drain bubble of
  ``(p - 1) / v`` mean stage times (1F1B: ``(p-1)/(m+p-1)`` of the step; interleaved divides it by
  ``v``, Narayanan et al. SC'21 sec. 2.2);
* data parallelism: the bucketed gradient reduction (:class:`~planner.costs.collectives.CollectiveModel`)
  overlaps the last micro-batch's backward on each rank; what is left after the rank's last
  backward is exposed (rank ``r`` ends its backward ``r`` stage-backwards before rank 0);
* then the gradient-norm all-reduce, Adam (30 bytes per owned parameter) and, for ZeRO-1/2, the
  parameter all-gather, as the graph has them;
* DualPipe: the schedule's own order of passes played as a longest path (its bubble depends on
  where the heavier first and last stages sit), long steps extrapolated from two short ones;
* ZeRO-3/FSDP: per layer, the compute or the gathers and reduce-scatters (which share the link),
  whichever is longer, plus the SM contention of overlapped NCCL kernels; with pipeline stages
  a stage is gathered once a step and its gradients reduce-scattered once (as ZeRO-1, through the
  pipeline's terms: :func:`~planner.transformer.sharding.gathers_per_layer`);
* memory: :func:`planner.transformer.memory.memory`, the same check the simulator reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from planner.calibration import DEFAULT, Calibration
from planner.family import Estimate
from planner.hardware import Cluster
from planner.transformer.keys import Kind
from planner.transformer.layer import LayerCosts, Pass
from planner.transformer.plan import PlanCache, StepPlan, make_plan
from planner.transformer.schedules import dualpipe, dualpipe_pairs, overlapped_pair, weight_grads_done
from planner.transformer.sharding import gathers_for_backward, gathers_per_layer
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy


class AnalyticalEstimator:
    """The search's estimator: plans each layout (sharing cost models and layer templates between
    layouts through one :class:`~planner.transformer.plan.PlanCache`) and estimates the plan.

    One instance serves any number of (model, cluster) pairs under its calibration."""

    def __init__(self, calib: Calibration = DEFAULT) -> None:
        self.calib = calib
        self.cache = PlanCache()

    def estimate(self, model: TransformerSpec, cluster: Cluster, strategy: Strategy) -> Estimate:
        """Estimate one resolved strategy (``dp``, batch and schedule set by ``check_layout``)."""
        return estimate(make_plan(model, strategy, cluster, self.calib, self.cache))


def estimate(plan: StepPlan) -> Estimate:
    """The closed-form step time and memory check of a planned step."""
    if gathers_per_layer(plan.strategy):
        step, compute, bubble, comm, opt = _fsdp(plan)
    elif plan.dualpipe:
        step, compute, bubble, comm, opt = _dualpipe(plan)
    else:
        step, compute, bubble, comm, opt = _pipeline(plan)
    return Estimate(
        step_time_s=step,
        compute_s=compute,
        bubble_s=bubble,
        exposed_comm_s=comm,
        optimizer_s=opt,
        peak_gib=plan.memory.peak_gib,
        fits=plan.memory.fits,
        overflow_term=None if plan.memory.fits else plan.memory.largest_term,
    )


def _tail(plan: StepPlan) -> tuple[float, float]:
    """(gradient-norm sync + the slowest rank's optimizer step and ZeRO gather, its comm part)."""
    sync = plan.sync.total_s
    worst, worst_comm = 0.0, 0.0
    for opt, gather in plan.optimizer:
        if opt + gather.total_s > worst:
            worst, worst_comm = opt + gather.total_s, gather.total_s
    return sync + worst, sync + worst_comm


def _fwd(plan: StepPlan, nd: int, nm: int) -> float:
    return nd * plan.dense.forward.seconds + nm * plan.layer.forward.seconds


def _bwd(plan: StepPlan, nd: int, nm: int) -> float:
    d, x = plan.dense, plan.layer
    return nd * (d.backward.seconds + d.recompute.seconds) + nm * (x.backward.seconds + x.recompute.seconds)


def _tp_comm(plan: StepPlan, nd: int, nm: int) -> float:
    per = [x.forward.seconds_of(Kind.TP_COMM) + x.backward.seconds_of(Kind.TP_COMM) for x in (plan.dense, plan.layer)]
    return nd * per[0] + nm * per[1]


def _dp_exposed(plan: StepPlan, pipe: float, hop: float, last_bwd: list[float]) -> tuple[float, float]:
    """(end of the last gradient reduction, its part after ``pipe``): the bucketed reduction of
    each rank overlaps its last micro-batch's backward (``last_bwd``); rank ``r`` ends its
    backward ``r`` hops before ``pipe``."""
    s = plan.strategy
    end, exposed = pipe, 0.0
    if plan.groups.dp.size <= 1:
        return end, exposed
    for r, (dense_prm, expert_prm) in enumerate(plan.rank_split):
        c = plan.grad_reduce(dense_prm + expert_prm, r, plan.groups.dp)
        t_dp = c.transfer_s + c.latency_s * max(1, math.ceil((dense_prm + expert_prm) / plan.bucket_params))
        finish = pipe - r * hop
        window = last_bwd[r] if s.dp_overlap else 0.0
        done = finish - window + t_dp if t_dp > window else finish
        if done > end:
            end, exposed = done, done - pipe
    return end, exposed


def _rank_times(plan: StepPlan, r: int, stages: list[int]) -> tuple[float, float, int]:
    """(rank ``r``'s time per micro-batch through ``stages``, sends included; its backward of one
    micro-batch; its sends per micro-batch)."""
    V, hc, kinds = plan.stages, plan.head, plan.stage_kinds
    nd = nm = n_send = 0
    for vs in stages:
        nd += kinds[vs][0]
        nm += kinds[vs][1]
        n_send += (vs < V - 1) + (vs > 0)
    b_rank = _bwd(plan, nd, nm)
    t = _fwd(plan, nd, nm) + b_rank
    if 0 in stages:
        t += hc.embed_forward.seconds + hc.embed_backward.seconds
        b_rank += hc.embed_backward.seconds
    if V - 1 in stages:
        t += hc.head_forward.seconds + hc.head_backward.seconds
        b_rank += hc.head_backward.seconds
    return t + n_send * _p2p_s(plan), b_rank, n_send


def _p2p_s(plan: StepPlan) -> float:
    return plan.p2p.total_s  # zero when pp == 1


def _pipeline(plan: StepPlan) -> tuple[float, float, float, float, float]:
    """GPipe, 1F1B, interleaved 1F1B and ZB-H1: the busiest rank's ``m`` micro-batches plus the
    fill-and-drain bubble, then the exposed gradient reduction and the optimizer."""
    s = plan.strategy
    p, v, m = s.pp, s.vpp, s.micro_batches
    V, kinds = plan.stages, plan.stage_kinds
    kinds_total = tuple(map(sum, zip(*kinds, strict=True)))  # (dense, MoE) layers in all
    f_layer = _fwd(plan, *kinds_total) / plan.model.num_layers  # mean per layer
    b_layer = _bwd(plan, *kinds_total) / plan.model.num_layers
    p2p = _p2p_s(plan)
    times = [_rank_times(plan, r, [c * p + r for c in range(v)]) for r in range(p)]
    per_mb = [t for t, _, _ in times]
    sends = max(n for _, _, n in times)
    t_max = max(per_mb)
    t_mean = sum(per_mb) / p
    bubble = (p - 1) / v * t_mean
    if s.pipeline_schedule == "zero-bubble":
        # ZB-H1 (Qi et al. 2024): deferred weight gradients fill the drain, (p - 1)(F + B - W)
        # against 1F1B's (p - 1)(F + B + W); W is the weight-gradient GEMMs' share of a stage.
        w_all = sum(kinds_total[i] * x.backward_weight.seconds for i, x in enumerate((plan.dense, plan.layer)))
        w_mean = w_all / V  # per stage and micro-batch
        bubble = (p - 1) * max(0.0, t_mean - 2 * w_mean)
    pipe = m * t_max + bubble
    hop = (t_max / v) * (b_layer / max(f_layer + b_layer, 1e-30)) + p2p
    end, exposed_dp = _dp_exposed(plan, pipe, hop, [b for _, b, _ in times])
    tail, tail_comm = _tail(plan)
    compute = m * (t_max - sends * p2p)
    first = [kinds[c * p] for c in range(v)]
    comm = m * (sends * p2p + sum(_tp_comm(plan, nd, nm) for nd, nm in first)) + exposed_dp + tail_comm
    return end + tail, compute, bubble, comm, tail - tail_comm


def _fsdp(plan: StepPlan) -> tuple[float, float, float, float, float]:
    """ZeRO-3 / FSDP: per layer, the compute or the gathers and reduce-scatters (which share the
    link), whichever is longer, plus the SM contention of overlapped NCCL kernels."""
    model, m = plan.model, plan.strategy.micro_batches
    ag_root, rs_root = (c.total_s for c in plan.fsdp_root)
    share = plan.calib.comm_sm_slowdown if plan.groups.dp.size > 1 else 0.0
    layers_time = layers_compute = 0.0
    ag = rs = 0.0
    for moe, n in ((False, model.dense_layers), (True, model.moe_layers)):
        if n == 0:
            continue
        k = plan.fsdp[moe]
        ag, rs = k.ag.total_s, k.rs.total_s
        f = k.lc.forward.seconds
        b = k.lc.backward.seconds + k.lc.recompute.seconds
        f_layer = max(f + share * min(ag, f), ag)
        bag = ag if gathers_for_backward(plan.strategy) else 0.0  # not resharded after forward: no gather
        b_layer = max(b + share * min(bag + rs, b), bag + rs)  # gathers and reduce-scatters share the link
        layers_time += n * (f_layer + b_layer)
        layers_compute += n * (f + b)
    hc = plan.head
    heads = hc.embed_forward.seconds + hc.embed_backward.seconds + hc.head_forward.seconds
    heads += hc.head_backward.seconds
    per_mb = ag_root + ag + layers_time + heads
    tail, tail_comm = _tail(plan)
    step = m * per_mb + rs + rs_root + tail
    compute = m * (layers_compute + heads)
    return step, compute, 0.0, max(0.0, step - compute - (tail - tail_comm)), tail - tail_comm


def _dualpipe(plan: StepPlan) -> tuple[float, float, float, float, float]:
    """DualPipe (DeepSeek-V3 sec. 3.2.1): its bubble depends on the order of the two directions'
    passes, not on a closed form of ``p`` alone once stages differ (the first and last hold the
    embedding and the head, and both sit on ranks 0 and p - 1). So the schedule's own order is
    played as a longest path over the compute streams (:func:`_dualpipe_end`), with the pipeline
    sends, the overlapped F & B pairs and the gradient reduction over both copies of each stage as
    the graph has them, but no link sharing. Steady-state pairs repeat, so a long step is played
    at ``2p + 2`` and ``2p + 4`` micro-batches and extrapolated linearly."""
    s = plan.strategy
    p, m = s.pp, s.micro_batches
    costs = _StageCosts.of(plan)
    m0 = 2 * p + 2
    if m <= m0 + 2:
        pipe, dp_end = _dualpipe_end(plan, costs, m)
    else:
        (a, da), (b, db) = _dualpipe_end(plan, costs, m0), _dualpipe_end(plan, costs, m0 + 2)
        pipe, dp_end = a + (m - m0) / 2 * (b - a), da + (m - m0) / 2 * (db - da)
    times = [_rank_times(plan, r, plan.chunk_stages(r)) for r in range(p)]
    tail, tail_comm = _tail(plan)
    p2p = _p2p_s(plan)
    sends = max(n for _, _, n in times)
    compute = m / 2 * (max(t for t, _, _ in times) - sends * p2p)
    comm = m / 2 * sends * p2p + (dp_end - pipe) + tail_comm
    return dp_end + tail, compute, max(0.0, pipe - compute - m / 2 * sends * p2p), comm, tail - tail_comm


@dataclass(frozen=True)
class _StageCosts:
    """Per stage, (seconds, expert-parallel all-to-all seconds, compute seconds) of one micro-batch's
    forward, full backward, input-gradient backward and weight-gradient pass, as the graph's tasks
    hold them (embedding and head included); and the parameters whose gradients each stage reduces."""

    forward: list[tuple[float, float, float]]
    backward: list[tuple[float, float, float]]
    backward_input: list[tuple[float, float, float]]
    weight: list[tuple[float, float, float]]
    params: list[float]

    @staticmethod
    def of(plan: StepPlan) -> _StageCosts:
        hc, last = plan.head, plan.stages - 1

        def parts(vs: int, pick: Callable[[LayerCosts], list[Pass]], first: list[Pass], end: list[Pass]) -> tuple:
            nd, nm = plan.stage_kinds[vs]
            ps = [(x, nd) for x in pick(plan.dense)] + [(x, nm) for x in pick(plan.layer)]
            ps += [(x, 1) for x in (first if vs == 0 else []) + (end if vs == last else [])]
            return tuple(sum(x.seconds_of(k) * n if k else x.seconds * n for x, n in ps) for k in (None, EP, CO))

        rng = range(plan.stages)
        return _StageCosts(
            [parts(vs, lambda x: [x.forward], [hc.embed_forward], [hc.head_forward]) for vs in rng],
            [parts(vs, lambda x: [x.recompute, x.backward], [hc.embed_backward], [hc.head_backward]) for vs in rng],
            [parts(vs, lambda x: [x.recompute, x.backward_input], [hc.embed_backward], [hc.head_backward]) for vs in rng],
            [parts(vs, lambda x: [x.backward_weight], [], []) for vs in rng],
            [
                nd * plan.params_dense + nm * plan.params_moe + (plan.params_embed if vs == 0 else 0.0)
                + (plan.params_head if vs == last else 0.0)
                for vs, (nd, nm) in enumerate(plan.stage_kinds)
            ],
        )  # fmt: skip


EP, CO = Kind.EP_COMM, Kind.COMPUTE


def _dualpipe_end(plan: StepPlan, costs: _StageCosts, m: int) -> tuple[float, float]:
    """(when the last rank's last pass ends, when the last gradient reduction ends) of DualPipe with
    ``m`` micro-batches, played as a longest path over each rank's order of passes."""
    p, last = plan.strategy.pp, plan.stages - 1
    p2p = _p2p_s(plan)
    share = plan.pair_compute_share
    # per rank, per pass: (its key, the key of the pass whose send it waits for, its costs, whether it sends)
    passes: list[list[tuple[tuple, tuple | None, tuple[float, float, float], bool]]] = []
    done_pos: list[dict[int, int]] = []
    for r in range(p):
        order, held = dualpipe(p, m, r), plan.chunk_stages(r)
        apart = {(c, mb) for ph, c, mb in order if ph == "W"}
        done_pos.append(weight_grads_done(order))
        row = []
        for ph, c, mb in order:
            vs = held[c]
            if ph == "F":
                row.append(((ph, vs, mb), ("F", vs - 1, mb) if vs > 0 else None, costs.forward[vs], vs < last))
            elif ph == "W":
                row.append(((ph, vs, mb), None, costs.weight[vs], False))
            else:
                cb = (costs.backward_input if (c, mb) in apart else costs.backward)[vs]
                row.append(((ph, vs, mb), ("B", vs + 1, mb) if vs < last else None, cb, vs > 0))
        passes.append(row)
    pairs = [dualpipe_pairs(p, m, r) for r in range(p)]
    end: dict[tuple, float] = {}
    t_rank, pos = [0.0] * p, [0] * p
    ends: list[list[float]] = [[] for _ in range(p)]  # per rank, each pass's end and seconds
    secs: list[list[float]] = [[] for _ in range(p)]

    def ready(dep: tuple | None) -> float | None:
        if dep is None:
            return 0.0
        e = end.get(dep)
        return None if e is None else e + p2p

    def run(r: int, key: tuple, start: float, seconds: float, sends: bool) -> None:
        end[key] = start + seconds
        t_rank[r] = start + seconds + (p2p if sends else 0.0)
        ends[r].append(start + seconds)
        secs[r].append(seconds)

    progress = True
    while progress:
        progress = False
        for r in range(p):
            row = passes[r]
            while pos[r] < len(row):
                i = pos[r]
                key, dep_key, f, sends = row[i]
                dep = ready(dep_key)
                if i in pairs[r]:  # an overlapped F & B pair: started once both inputs are in
                    key_b, dep_b_key, b, sends_b = row[i + 1]
                    dep_b = ready(dep_b_key)
                    if dep is None or dep_b is None:
                        break
                    keep, slow = overlapped_pair(f[2] + b[2], f[1] + b[1], share)
                    run(r, key, max(t_rank[r], dep, dep_b), f[0] - (1 - keep) * f[1] + slow * f[2], sends)
                    run(r, key_b, t_rank[r], b[0] - (1 - keep) * b[1] + slow * b[2], sends_b)
                    pos[r] += 2
                elif dep is None:
                    break
                else:
                    run(r, key, max(t_rank[r], dep), f[0], sends)
                    pos[r] += 1
                progress = True
    done_at = [{c: (ends[r][i], secs[r][i]) for c, i in done_pos[r].items()} for r in range(p)]
    return max(t_rank), _dualpipe_reduction_end(plan, costs, done_at, t_rank)


def _dualpipe_reduction_end(
    plan: StepPlan, costs: _StageCosts, done_at: list[dict[int, tuple[float, float]]], t_rank: list[float]
) -> float:
    """When the last rank's gradient reductions end: each of its two stages reduces over both
    copies once the mirror rank's copy is done too, during the passes that finish them
    (``dp_overlap``) or after the rank's last pass."""
    s = plan.strategy
    out = max(t_rank)
    for r in range(s.pp):
        mirror = s.pp - 1 - r
        red = plan.dualpipe_reduce_group(r)
        starts = []
        for c, vs in enumerate(plan.chunk_stages(r)):
            mc = plan.chunk_stages(mirror).index(vs)
            (e, w), (me, mw) = done_at[r][c], done_at[mirror][mc]
            start = max(e - w, me - mw) if s.dp_overlap else max(t_rank[r], t_rank[mirror])
            cc = plan.grad_reduce(costs.params[vs], r, red)
            starts.append(
                (start, cc.transfer_s + cc.latency_s * max(1, math.ceil(costs.params[vs] / plan.bucket_params)))
            )
        t = 0.0
        for start, dur in sorted(starts):
            t = max(t, start) + dur
        out = max(out, t, t_rank[r])
    return out
