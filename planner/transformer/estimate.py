"""Stage 2: a fast, closed-form step time and the memory check, without building a graph.

The estimate uses the simulator's own cost model, so that pruning on it keeps the layouts the full
simulation would rank first:

* per-layer forward, backward and recomputation times and the in-line tensor-parallel collectives
  come from :func:`planner.transformer.layer.layer_costs` and :func:`~planner.transformer.layer.head_costs`
  (cached per micro-batch shape, so a grid of thousands of layouts costs a few dozen templates);
* pipeline: the busiest rank's time per micro-batch ``t`` (its layers, its head or embedding, its
  blocking sends) times the ``m`` micro-batches, plus the fill-and-drain bubble of
  ``(p - 1) / v`` mean stage times (1F1B: ``(p-1)/(m+p-1)`` of the step; interleaved divides it by
  ``v``, Narayanan et al. SC'21 sec. 2.2);
* data parallelism: the bucketed gradient reduction (:class:`~planner.costs.collectives.CollectiveModel`)
  overlaps the last micro-batch's backward on each rank; what is left after the rank's last
  backward is exposed (rank ``r`` ends its backward ``r`` stage-backwards before rank 0);
* then the gradient-norm all-reduce, Adam (30 bytes per owned parameter) and, for ZeRO-1/2, the
  parameter all-gather, as the graph has them;
* ZeRO-3/FSDP: per layer, the compute or the gathers and reduce-scatters (which share the link),
  whichever is longer, plus the SM contention of overlapped NCCL kernels;
* memory: :func:`planner.transformer.memory.memory`, the same check the simulator reports.
"""

from __future__ import annotations

import math
from typing import Any

from planner.calibration import DEFAULT, Calibration
from planner.costs.collectives import CollectiveModel, Group, sum_costs
from planner.costs.compute import ComputeModel
from planner.family import Estimate
from planner.hardware import Cluster
from planner.transformer.graph import expert_dp_group, optimizer_step
from planner.transformer.layer import HeadCosts, LayerCosts, head_costs, layer_costs
from planner.transformer.memory import memory
from planner.transformer.sharding import grad_reduce_bytes, layer_params_local, rank_params_split, stage_layer_kinds
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy


class AnalyticalEstimator:
    """Closed-form step time and memory; per-scenario cost models and layer templates are cached.

    One instance serves any number of (model, cluster) pairs; the caches hold the objects they
    were built from, so identity keys stay valid for the estimator's lifetime.
    """

    def __init__(self, calib: Calibration = DEFAULT) -> None:
        self.calib = calib
        self._models: dict[tuple[int, int, str], tuple[Any, Any, ComputeModel, CollectiveModel]] = {}
        self._layers: dict[tuple, tuple[LayerCosts, HeadCosts, LayerCosts]] = {}

    # -- caches -------------------------------------------------------------------------------
    def _cost_models(
        self, model: TransformerSpec, cluster: Cluster, precision: str
    ) -> tuple[ComputeModel, CollectiveModel]:
        key = (id(model), id(cluster), precision)
        hit = self._models.get(key)
        if hit is None:
            hit = (
                model,
                cluster,
                ComputeModel(cluster.accelerator, self.calib, precision),
                CollectiveModel(cluster, self.calib),
            )
            self._models[key] = hit
        return hit[2], hit[3]

    def _templates(
        self, model: TransformerSpec, cluster: Cluster, s: Strategy, comp: ComputeModel, coll: CollectiveModel
    ) -> tuple[LayerCosts, HeadCosts, LayerCosts]:
        """(the MoE layer, or every layer of a dense model; the head; an MoE model's dense layers)."""
        # layer and head costs depend on the micro-batch shape and the in-layer options only
        key = (
            id(model), id(cluster), s.tp, s.cp, s.ep, s.micro_batch, s.recompute, s.sequence_parallel,
            s.attention, s.tp_comm_overlap, s.precision, s.cp_algorithm, s.moe_capacity_factor,
            s.moe_imbalance, s.moe_shared_expert_overlap,
        )  # fmt: skip
        hit = self._layers.get(key)
        if hit is None:
            lc = layer_costs(model, s, comp, coll)
            dense = layer_costs(model, s, comp, coll, moe=False) if model.first_dense_layers else lc
            hit = (lc, head_costs(model, s, comp, coll), dense)
            self._layers[key] = hit
        return hit

    # -- the estimate -------------------------------------------------------------------------
    def estimate(self, model: TransformerSpec, cluster: Cluster, strategy: Strategy) -> Estimate:
        """Estimate one resolved strategy (``dp``, batch and schedule set by ``check_layout``)."""
        s = strategy
        comp, coll = self._cost_models(model, cluster, s.precision)
        lc, hc, dense = self._templates(model, cluster, s, comp, coll)
        mem = memory(model, s, cluster, comp.elem_bytes)
        if s.zero_stage == 3:
            parts = self._fsdp(model, s, comp, coll, lc, hc, dense)
        else:
            parts = self._pipeline(model, s, comp, coll, lc, hc, dense)
        step, compute, bubble, comm, opt = parts
        return Estimate(
            step_time_s=step,
            compute_s=compute,
            bubble_s=bubble,
            exposed_comm_s=comm,
            optimizer_s=opt,
            peak_gib=mem.peak_gib,
            fits=mem.fits,
        )

    def _tail(
        self, model: TransformerSpec, s: Strategy, comp: ComputeModel, coll: CollectiveModel
    ) -> tuple[float, float]:
        """(gradient-norm sync + the slowest rank's optimizer step and ZeRO gather, its comm part),
        costed by the graph's own :func:`~planner.transformer.graph.optimizer_step`."""
        dp = Group(s.data_parallel * s.cp, s.tp)
        world = Group(s.tp * s.cp * s.data_parallel * s.pp, 1)
        sync = coll.cost("all_reduce", 8, world).total_s
        worst, worst_comm = 0.0, 0.0
        for dense, experts in rank_params_split(model, s):
            opt, gather = optimizer_step(comp, coll, s, dense, experts, dp)
            if opt + gather.total_s > worst:
                worst, worst_comm = opt + gather.total_s, gather.total_s
        return sync + worst, sync + worst_comm

    def _pipeline(
        self,
        model: TransformerSpec,
        s: Strategy,
        comp: ComputeModel,
        coll: CollectiveModel,
        lc: LayerCosts,
        hc: HeadCosts,
        dense: LayerCosts,
    ) -> tuple[float, float, float, float, float]:
        p, v, m = s.pp, s.vpp, s.micro_batches
        V = p * v
        kinds = stage_layer_kinds(model, V)  # (dense, MoE) layers per virtual stage

        def fwd(nd: int, nm: int) -> float:
            return nd * dense.forward.seconds + nm * lc.forward.seconds

        def bwd(nd: int, nm: int) -> float:
            return nd * (dense.backward.seconds + dense.recompute.seconds) + nm * (
                lc.backward.seconds + lc.recompute.seconds
            )

        def tp_comm(nd: int, nm: int) -> float:
            per = [x.forward.seconds_of("tp_comm") + x.backward.seconds_of("tp_comm") for x in (dense, lc)]
            return nd * per[0] + nm * per[1]

        kinds_total = tuple(map(sum, zip(*kinds, strict=True)))  # (dense, MoE) layers in all
        f_layer = fwd(*kinds_total) / model.num_layers  # mean per layer
        b_layer = bwd(*kinds_total) / model.num_layers
        p2p = 0.0
        if p > 1:
            stride = s.tp * s.cp * s.data_parallel
            nbytes = s.micro_batch * (model.seq_len // s.cp) * model.hidden_size * comp.elem_bytes / s.tp
            p2p = coll.cost("p2p", nbytes, Group(p, stride)).total_s
        per_mb: list[float] = []  # each rank's time per micro-batch, sends included
        last_bwd: list[float] = []  # each rank's backward of one micro-batch (the overlap window)
        sends = 0
        for r in range(p):
            nd = sum(kinds[c * p + r][0] for c in range(v))
            nm = sum(kinds[c * p + r][1] for c in range(v))
            t = fwd(nd, nm) + bwd(nd, nm)
            b_rank = bwd(nd, nm)
            n_send = 0
            for c in range(v):
                vs = c * p + r
                n_send += (vs < V - 1) + (vs > 0)
            if r == 0:
                t += hc.embed_forward.seconds + hc.embed_backward.seconds
                b_rank += hc.embed_backward.seconds
            if r == p - 1:
                t += hc.head_forward.seconds + hc.head_backward.seconds
                b_rank += hc.head_backward.seconds
            t += n_send * p2p
            sends = max(sends, n_send)
            per_mb.append(t)
            last_bwd.append(b_rank)
        t_max = max(per_mb)
        t_mean = sum(per_mb) / p
        bubble = (p - 1) / v * t_mean
        if s.pipeline_schedule == "zero-bubble":
            # ZB-H1 (Qi et al. 2024): deferred weight gradients fill the drain, (p - 1)(F + B - W)
            # against 1F1B's (p - 1)(F + B + W); W is the weight-gradient GEMMs' share of a stage.
            w_all = sum(kinds_total[i] * x.backward_weight.seconds for i, x in enumerate((dense, lc)))
            w_mean = w_all / V  # per stage and micro-batch
            bubble = (p - 1) * max(0.0, t_mean - 2 * w_mean)
        pipe = m * t_max + bubble
        # data-parallel reduction, in buckets, overlapped with the last micro-batch's backward
        dp_size = s.data_parallel * s.cp
        split = rank_params_split(model, s)
        exposed_dp = 0.0
        end = pipe
        if dp_size > 1:
            grp = Group(dp_size, s.tp)
            kind = "all_reduce" if s.zero_stage == 0 else "reduce_scatter"
            gbytes = grad_reduce_bytes(s)
            bucket = s.bucket_mb * 1e6
            hop = (t_max / v) * (b_layer / max(f_layer + b_layer, 1e-30)) + p2p
            for r, (dense_prm, expert_prm) in enumerate(split):
                # as the graph: routed-expert gradients over their expert-data-parallel ranks only
                c = sum_costs(
                    coll.cost(kind, dense_prm * gbytes, grp),
                    coll.cost(kind, expert_prm * gbytes, expert_dp_group(grp, s)),
                )
                t_dp = c.transfer_s + c.latency_s * max(1, math.ceil((dense_prm + expert_prm) / bucket))
                finish = pipe - r * hop
                window = last_bwd[r] if s.dp_overlap else 0.0
                done = finish - window + t_dp if t_dp > window else finish
                if done > end:
                    end, exposed_dp = done, done - pipe
        tail, tail_comm = self._tail(model, s, comp, coll)
        compute = m * (t_max - sends * p2p)
        first = [kinds[c * p] for c in range(v)]
        comm = m * (sends * p2p + sum(tp_comm(nd, nm) for nd, nm in first)) + exposed_dp + tail_comm
        return end + tail, compute, bubble, comm, tail - tail_comm

    def _fsdp(
        self,
        model: TransformerSpec,
        s: Strategy,
        comp: ComputeModel,
        coll: CollectiveModel,
        lc: LayerCosts,
        hc: HeadCosts,
        dense: LayerCosts,
    ) -> tuple[float, float, float, float, float]:
        m = s.micro_batches
        dp = Group(s.data_parallel * s.cp, s.tp)
        gbytes = grad_reduce_bytes(s)
        root = (model.embedding_params + model.lm_head_params) / s.tp
        ag_root = coll.cost("all_gather", root * 2, dp).total_s
        rs_root = coll.cost("reduce_scatter", root * gbytes, dp).total_s
        share = comp.calib.comm_sm_slowdown if dp.size > 1 else 0.0
        layers_time = layers_compute = 0.0
        ag = rs = 0.0
        for moe, x, n in ((False, dense, model.dense_layers), (True, lc, model.moe_layers)):
            if n == 0:
                continue
            prm = layer_params_local(model, s, moe=moe)
            ag = coll.cost("all_gather", prm * 2, dp).total_s
            rs = coll.cost("reduce_scatter", prm * gbytes, dp).total_s
            f = x.forward.seconds
            b = x.backward.seconds + x.recompute.seconds
            f_layer = max(f + share * min(ag, f), ag)
            b_layer = max(b + share * min(ag + rs, b), ag + rs)  # gathers and reduce-scatters share the link
            layers_time += n * (f_layer + b_layer)
            layers_compute += n * (f + b)
        heads = hc.embed_forward.seconds + hc.embed_backward.seconds + hc.head_forward.seconds
        heads += hc.head_backward.seconds
        per_mb = ag_root + ag + layers_time + heads
        tail, tail_comm = self._tail(model, s, comp, coll)
        step = m * per_mb + rs + rs_root + tail
        compute = m * (layers_compute + heads)
        return step, compute, 0.0, max(0.0, step - compute - (tail - tail_comm)), tail - tail_comm
