"""Per-layer cost templates for a transformer on one accelerator of a parallel layout.

A layer pass (forward, backward, recompute) is a short list of :class:`Segment` s run in order on
the compute stream: GEMMs and memory-bound kernels, and the tensor-parallel (and context-parallel,
expert-parallel) collectives that Megatron-style layers issue in line with them. Every layer of a
model of one kind (dense, or MoE with experts) costs the same, so the graph builder multiplies a
template per kind rather than costing each layer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from planner.costs.collectives import CollectiveModel, Group
from planner.costs.compute import ComputeModel
from planner.transformer.keys import Kind, Phase
from planner.transformer.sharding import moe_load_factor
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy


@dataclass(frozen=True)
class Segment:
    """One step of a pass: a label, a report category and its duration."""

    label: str
    kind: Kind  # compute | tp_comm | cp_comm | ep_comm | overhead
    seconds: float
    nbytes: float = 0.0  # communication: bytes this rank sends over its link (0 for compute)


@dataclass(frozen=True)
class Pass:
    """Segments run in order on the compute stream; ``phase`` tags recomputed forward work
    (:attr:`Phase.RECOMPUTE`), which the report counts apart."""

    segments: tuple[Segment, ...]
    phase: Phase | None = None

    @functools.cached_property
    def seconds(self) -> float:
        """Sum of the segments (cached: the search reads it for every layout it estimates)."""
        return sum(s.seconds for s in self.segments)

    @functools.cached_property
    def seconds_by_kind(self) -> dict[Kind, float]:
        """Seconds per segment kind (cached: every task built from this pass reads it)."""
        out: dict[Kind, float] = {}
        for seg in self.segments:
            out[seg.kind] = out.get(seg.kind, 0.0) + seg.seconds
        return out

    def seconds_of(self, kind: Kind) -> float:
        return self.seconds_by_kind.get(kind, 0.0)


@dataclass(frozen=True)
class LayerCosts:
    forward: Pass
    backward: Pass  # without recomputation
    recompute: Pass  # the extra forward work before backward (empty when none)
    flops_forward: float  # FLOPs executed by one forward on this rank (hardware FLOPs)
    flops_recompute: float
    backward_input: Pass  # the input-gradient part of backward (B in zero-bubble schedules)
    backward_weight: Pass  # the weight-gradient GEMMs (W in zero-bubble schedules)


@dataclass(frozen=True)
class HeadCosts:
    """Embedding (first stage) and LM head with loss (last stage), per micro-batch."""

    embed_forward: Pass
    embed_backward: Pass
    head_forward: Pass
    head_backward: Pass


def _tp_comm(coll: CollectiveModel, kind: str, nbytes: float, tp: int, label: str) -> Segment:
    c = coll.cost(kind, nbytes, Group(tp, 1))  # type: ignore[arg-type]
    return Segment(label, Kind.TP_COMM, c.total_s)


def layer_costs(
    model: TransformerSpec, s: Strategy, comp: ComputeModel, coll: CollectiveModel, moe: bool | None = None
) -> LayerCosts:
    """Cost one transformer layer's forward, backward and recomputation on one rank.

    ``moe`` picks the layer kind of an MoE model (None: its MoE layers; False: its
    ``first_dense_layers``); a dense model's layers are dense whatever it says."""
    is_moe = model.is_moe if moe is None else (moe and model.is_moe)
    t, cp = s.tp, s.cp
    b = s.micro_batch
    seq = model.seq_len
    s_loc = seq // cp
    T = b * s_loc  # tokens per rank per micro-batch
    h, f, hkv = model.hidden_size, model.ffn, model.kv_hidden
    q = model.q_hidden  # query / attention-output width (== h unless head_dim is given)
    a_loc = model.num_heads // t
    d = model.head_size
    e = comp.elem_bytes
    T_sp = T // t if s.sequence_parallel else T  # tokens seen by norms/dropout with SP

    fwd: list[Segment] = []
    gemm_flops = 0.0

    def gemm(label: str, m: int, n: int, k: int, batch: int = 1) -> Segment:
        nonlocal gemm_flops
        gemm_flops += 2.0 * m * n * k * batch
        return Segment(label, Kind.COMPUTE, comp.gemm_s(m, n, k, batch))

    act_bytes = T * h * e  # one [tokens, hidden] activation, full sequence on this rank
    # --- attention block
    fwd.append(Segment("layernorm+bias-dropout-add", Kind.COMPUTE, comp.memory_s(T_sp * h * (2 * e + 3 * e + 1), 2)))
    if s.sequence_parallel:
        fwd.append(_tp_comm(coll, "all_gather", act_bytes, t, "all-gather (SP)"))
    if model.is_mla:  # MLA's latent down- and up-projections instead of one fused QKV GEMM
        fwd += [gemm(label, T, n, k) for label, n, k in model.mla_gemms(t)]
    else:
        qkv_out = (q + 2 * hkv) // t if t <= model.kv_heads else (q // t + 2 * d)
        fwd.append(gemm("qkv", T, qkv_out, h))
    kv_loc = hkv // min(t, model.kv_heads)  # K (or V) width on this rank
    ulysses = cp > 1 and s.cp_algorithm == "ulysses"
    if ulysses:
        # DeepSpeed-Ulysses (arXiv:2309.14509 sec. 3): all-to-alls turn this rank's s/cp tokens of
        # all its heads into the whole sequence of 1/cp of its heads, for q, k and v separately.
        ul_q = T * (q // t) * e
        ul_kv = T * kv_loc * e
        c_q, c_kv = coll.cost("all_to_all", ul_q, Group(cp, t)), coll.cost("all_to_all", ul_kv, Group(cp, t))
        sent = (ul_q + 2 * ul_kv) * (cp - 1) / cp
        fwd.append(Segment("Ulysses q/k/v all-to-all", Kind.CP_COMM, c_q.total_s + 2 * c_kv.total_s, sent))
    d_qk, d_v = model.qk_head_size, model.v_head_size  # both d but under MLA (192 and 128 in V3)
    attn_flops = 2.0 * b * s_loc * seq * a_loc * (d_qk + d_v)  # QK^T and AV on this rank's queries
    if s.fused_attention:
        # causal FlashAttention skips the masked half of the score tiles
        executed = 0.5 * attn_flops
        io = (T * a_loc * (d_qk + d_v) + T * 2 * kv_loc) * e
        fwd.append(Segment("flash-attention", Kind.COMPUTE, comp.attention_s(executed, io, s.attention)))
        gemm_flops += executed
    else:
        # Megatron's unfused path: q/k/v and context transposes, QK^T, fused scale-mask-softmax,
        # dropout (mask and apply), AV.
        fwd.append(Segment("q/k/v/context transposes", Kind.COMPUTE, comp.memory_s(4 * 2 * T * (q // t) * e, 4)))
        fwd.append(gemm("QK^T", s_loc, seq, d_qk, b * a_loc))
        score = b * a_loc * s_loc * seq
        fwd.append(Segment("softmax+dropout", Kind.COMPUTE, comp.memory_s(score * (4 * e + 1), 3)))
        fwd.append(gemm("AV", s_loc, d_v, seq, b * a_loc))
    if ulysses:  # and back: the attention output of 1/cp of the heads to this rank's tokens
        c_o = coll.cost("all_to_all", ul_q, Group(cp, t))
        fwd.append(Segment("Ulysses output all-to-all", Kind.CP_COMM, c_o.total_s, ul_q * (cp - 1) / cp))
    fwd.append(gemm("attn-proj", T, h, q // t))
    if cp > 1 and not ulysses:
        # ring attention: cp - 1 steps, each passing a K/V block to the next rank while the
        # current block's attention runs; only the exchange longer than the attention is exposed
        kv = 2 * T * kv_loc * e
        ring = coll.cost("p2p", kv, Group(cp, t))
        hidden = sum(x.seconds for x in fwd if x.label in ("flash-attention", "QK^T", "AV"))
        exposed = max(0.0, (cp - 1) * ring.total_s - hidden)
        fwd.append(Segment("ring-attention KV exchange (exposed)", Kind.CP_COMM, exposed, (cp - 1) * kv))
    if t > 1:
        if s.sequence_parallel:
            fwd.append(_tp_comm(coll, "reduce_scatter", act_bytes, t, "reduce-scatter (SP)"))
        else:
            fwd.append(_tp_comm(coll, "all_reduce", act_bytes, t, "all-reduce (TP)"))
    # --- MLP block
    fwd.append(Segment("layernorm+bias-dropout-add", Kind.COMPUTE, comp.memory_s(T_sp * h * (2 * e + 3 * e + 1), 2)))
    if s.sequence_parallel:
        fwd.append(_tp_comm(coll, "all_gather", act_bytes, t, "all-gather (SP)"))
    up = 2 if model.mlp == "swiglu" else 1
    if is_moe:
        fwd += _moe_block(model, s, comp, coll, T, gemm)
    else:
        fwd.append(gemm("fc1", T, up * f // t, h))
        fwd.append(Segment("activation", Kind.COMPUTE, comp.memory_s(T * f // t * (up + 1) * e)))
        fwd.append(gemm("fc2", T, h, f // t))
    if t > 1:
        if s.sequence_parallel:
            fwd.append(_tp_comm(coll, "reduce_scatter", act_bytes, t, "reduce-scatter (SP)"))
        else:
            fwd.append(_tp_comm(coll, "all_reduce", act_bytes, t, "all-reduce (TP)"))
    if s.tp_comm_overlap and t > 1:
        fwd = _overlap_tp_comm(fwd, comp.calib.comm_sm_slowdown)
    # The host issues a layer's kernels in ``layer_host_s``; when the GPU work is shorter, the
    # GPU idles for the difference (launch-bound small layers).
    host = comp.calib.layer_host_s
    gpu = sum(x.seconds for x in fwd)
    if host > gpu:
        fwd.append(Segment("host-bound: GPU waits for kernel launches", Kind.OVERHEAD, host - gpu))

    # --- backward: every GEMM twice (data and weight gradients), attention 2.5x (FlashAttention-2
    # backward recomputes the scores), memory-bound kernels twice, the same collectives.
    # Linear layers split into the input gradient (dgrad, on the critical path) and the weight
    # gradient (wgrad), which zero-bubble schedules defer to fill the pipeline's bubbles.
    bwd: list[Segment] = []
    wgrad: list[Segment] = []
    for x in reversed(fwd):
        if x.kind == Kind.COMPUTE:
            if x.label == "flash-attention":
                bwd.append(Segment("flash-attention bwd", Kind.COMPUTE, 2.5 * x.seconds))
            elif x.label in _WEIGHT_GEMMS:
                bwd.append(Segment(x.label + " dgrad", Kind.COMPUTE, x.seconds))
                wgrad.append(Segment(x.label + " wgrad", Kind.COMPUTE, x.seconds))
            else:
                bwd.append(Segment(x.label + " bwd", Kind.COMPUTE, 2 * x.seconds))
        elif x.kind == Kind.OVERHEAD:
            bwd.append(Segment(x.label, Kind.OVERHEAD, 2 * x.seconds))
        elif x.kind == Kind.TP_COMM:
            mirror = {"all_gather": "reduce-scatter (SP)", "reduce_scatter": "all-gather (SP)"}
            lbl = x.label
            if "all-gather" in lbl:
                lbl = mirror["all_gather"]
            elif "reduce-scatter" in lbl:
                lbl = mirror["reduce_scatter"]
            bwd.append(Segment(lbl + " bwd", Kind.TP_COMM, x.seconds))
        else:
            # ring attention's backward passes K/V and their gradients (twice the forward's bytes);
            # Ulysses' and the MoE all-to-alls move gradients of the same size as the forward
            twice = x.kind == Kind.CP_COMM and x.label.startswith("ring")
            k = 2 if twice else 1
            bwd.append(Segment(x.label + " bwd", x.kind, x.seconds * k, x.nbytes * k))

    flops_fwd = gemm_flops
    if s.recompute == "full":
        rec = tuple(Segment("recompute " + x.label, x.kind, x.seconds) for x in fwd)
        if s.distribute_saved_activations:  # the checkpoint was split over tp: gathered back first
            rec = (_tp_comm(coll, "all_gather", act_bytes, t, "all-gather checkpointed input"), *rec)
        flops_rec = flops_fwd
    elif s.recompute == "selective":
        keep = ("flash-attention", "QK^T", "softmax+dropout", "AV")
        rec = tuple(Segment("recompute " + x.label, x.kind, x.seconds) for x in fwd if x.label in keep)
        flops_rec = 0.5 * attn_flops if s.fused_attention else attn_flops
    else:
        rec = ()
        flops_rec = 0.0
    return LayerCosts(
        Pass(tuple(fwd)),
        Pass(tuple(bwd + wgrad)),
        Pass(rec, Phase.RECOMPUTE),
        flops_fwd,
        flops_rec,
        Pass(tuple(bwd)),
        Pass(tuple(wgrad)),
    )


def _moe_block(
    model: TransformerSpec,
    s: Strategy,
    comp: ComputeModel,
    coll: CollectiveModel,
    T: int,
    gemm: Callable[..., Segment],
) -> list[Segment]:
    """An MoE layer's MLP on one rank, Megatron-Core's all-to-all token dispatcher.

    The ``T * top_k`` (token, expert) pairs of this rank are sent to the ranks holding their
    experts (dispatch), run through ``experts / ep`` local experts as one batched GEMM per matrix,
    and sent back (combine). Each all-to-all buffer is ``T * top_k * hidden`` elements, of which the
    fraction ``(ep - 1) / ep`` leaves the rank; the busiest rank moves and computes
    :func:`moe_load_factor` times the mean. Shared experts run on the rank's own tokens, under the
    two all-to-alls when ``moe_shared_expert_overlap`` is set.
    """
    t, cp, ep = s.tp, s.cp, s.ep
    h, e, fe = model.hidden_size, comp.elem_bytes, model.expert_ffn
    up = 2 if model.mlp == "swiglu" else 1
    load = moe_load_factor(s)
    experts_loc = max(1, model.num_experts // ep)
    tok = T * model.top_k  # (token, expert) pairs routed from this rank
    a2a_buffer = tok * h * e * load
    if model.moe_max_nodes_per_token:  # node-limited routing (DeepSeek-V3 sec. 2.1.2 / 3.2.2)
        a2a, a2a_sent = coll.node_limited_all_to_all(
            h * e * load, T, model.top_k, model.moe_max_nodes_per_token, Group(ep, t * cp)
        )
    else:
        a2a = coll.cost("all_to_all", a2a_buffer, Group(ep, t * cp))
        a2a_sent = a2a_buffer * (ep - 1) / ep
    per_expert = max(1, round(tok * ep * load / model.num_experts))  # tokens each local expert runs
    routed = [
        gemm("expert fc1", per_expert, up * fe // t, h, experts_loc),
        Segment("expert activation", Kind.COMPUTE, comp.memory_s(per_expert * experts_loc * fe // t * (up + 1) * e)),
        gemm("expert fc2", per_expert, h, fe // t, experts_loc),
    ]
    shared: list[Segment] = []
    if model.shared_experts:
        fs = fe * model.shared_experts
        shared = [
            gemm("shared fc1", T, up * fs // t, h),
            Segment("shared activation", Kind.COMPUTE, comp.memory_s(T * fs // t * (up + 1) * e)),
            gemm("shared fc2", T, h, fs // t),
        ]
    if ep == 1:
        return routed + shared
    dispatch = Segment("MoE dispatch all-to-all", Kind.EP_COMM, a2a.total_s, a2a_sent)
    combine = Segment("MoE combine all-to-all", Kind.EP_COMM, a2a.total_s, a2a_sent)
    if not s.moe_shared_expert_overlap:
        return [dispatch, *routed, *shared, combine]
    # Megatron-Core --moe-shared-expert-overlap: the shared experts run on a side stream while the
    # dispatch and combine move tokens; what the shared experts do not cover stays exposed, and
    # the covered part slows them by the SMs the all-to-all kernels hold.
    covered = min(2 * a2a.total_s, sum(x.seconds for x in shared))
    left = a2a.total_s - covered / 2
    return [
        Segment("MoE dispatch all-to-all (not under shared experts)", Kind.EP_COMM, left, a2a_sent),
        *routed,
        *shared,
        Segment("shared experts slowed by overlapped all-to-all", Kind.COMPUTE, covered * comp.calib.comm_sm_slowdown),
        Segment("MoE combine all-to-all (not under shared experts)", Kind.EP_COMM, left, a2a_sent),
    ]


def _overlap_tp_comm(fwd: list[Segment], slowdown: float) -> list[Segment]:
    """Megatron-Core / Transformer Engine ``--tp-comm-overlap``: the tensor-parallel all-gathers and
    reduce-scatters are split into chunks that run under the neighbouring GEMMs. The GEMMs lose the
    SMs the communication kernels occupy (``slowdown``); only communication longer than the
    layer's GEMMs stays exposed."""
    gemm = sum(x.seconds for x in fwd if x.kind == Kind.COMPUTE and x.label in _TP_GEMMS)
    comm = sum(x.seconds for x in fwd if x.kind == Kind.TP_COMM)
    out = [x for x in fwd if x.kind != Kind.TP_COMM]
    out.append(Segment("GEMMs slowed by overlapped TP communication", Kind.COMPUTE, gemm * slowdown))
    exposed = max(0.0, comm - gemm * (1 + slowdown))
    if exposed > 0:
        out.append(Segment("TP communication not hidden by GEMMs", Kind.TP_COMM, exposed))
    return out


_MLA_GEMMS = ("q", "q-down", "q-up", "kv-down", "kv-up")  # TransformerSpec.mla_gemms
_WEIGHT_GEMMS = ("qkv", "attn-proj", "fc1", "fc2", "expert fc1", "expert fc2", "shared fc1", "shared fc2", *_MLA_GEMMS)

_TP_GEMMS = _WEIGHT_GEMMS


CE_FORWARD_BYTES_PER_LOGIT = 38
"""HBM bytes the fp32 cross-entropy moves per logit in its forward pass (see :func:`head_costs`)."""
CE_BACKWARD_BYTES_PER_LOGIT = 14
"""... and in its backward pass."""


def head_costs(model: TransformerSpec, s: Strategy, comp: ComputeModel, coll: CollectiveModel) -> HeadCosts:
    """Embedding lookup on the first stage; LM head and cross-entropy on the last."""
    t = s.tp
    T = s.micro_batch * model.seq_len // s.cp
    h, V = model.hidden_size, model.vocab_size
    e = comp.elem_bytes
    act = T * h * e
    ef = [Segment("embedding lookup", Kind.COMPUTE, comp.memory_s(2 * act))]
    if t > 1:
        kind = "reduce_scatter" if s.sequence_parallel else "all_reduce"
        ef.append(_tp_comm(coll, kind, act, t, "embedding " + kind.replace("_", "-")))
    eb = [Segment("embedding grad", Kind.COMPUTE, comp.memory_s(2 * act + V // t * h * 4))]
    hf: list[Segment] = []
    if s.sequence_parallel:
        hf.append(_tp_comm(coll, "all_gather", act, t, "all-gather (SP)"))
    hf.append(Segment("lm-head", Kind.COMPUTE, comp.gemm_s(T, V // t, h)))
    logits = T * (V // t)
    # The loss in fp32 over 16-bit logits, as Megatron-Core's vocab-parallel cross-entropy runs it
    # (megatron/core/tensor_parallel/cross_entropy.py): forward = cast to fp32 (read 2, write 4), max
    # (read 4), subtract (4 + 4), exp (4 + 4), sum (4), divide (4 + 4): 38 bytes per logit in 6
    # kernels; backward = multiply by the incoming gradient (4 + 4) and cast back (4 + 2): 14 bytes
    # in 2. PyTorch's cross_entropy under autocast (HF, llm-foundry, torchtitan) moves about as many.
    hf.append(Segment("cross-entropy", Kind.COMPUTE, comp.memory_s(logits * CE_FORWARD_BYTES_PER_LOGIT, 6)))
    if t > 1:
        hf.append(_tp_comm(coll, "all_reduce", T * 4 * 3, t, "vocab-parallel loss all-reduce"))
    hb = [
        Segment("cross-entropy bwd", Kind.COMPUTE, comp.memory_s(logits * CE_BACKWARD_BYTES_PER_LOGIT, 2)),
        Segment("lm-head bwd", Kind.COMPUTE, 2 * comp.gemm_s(T, V // t, h)),
    ]
    if t > 1:
        kind = "reduce_scatter" if s.sequence_parallel else "all_reduce"
        hb.append(_tp_comm(coll, kind, act, t, "lm-head grad " + kind.replace("_", "-")))
    return HeadCosts(Pass(tuple(ef)), Pass(tuple(eb)), Pass(tuple(hf)), Pass(tuple(hb)))
