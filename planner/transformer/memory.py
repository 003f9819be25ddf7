"""Memory per accelerator: weights, gradients, optimizer states and activations.

Activations follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
Transformer Models" (arXiv:2205.05198), sec. 4, generalised to GQA and SwiGLU: per layer and
micro-batch, with ``s`` tokens, ``b`` sequences, ``h`` hidden, ``a`` heads, tensor-parallel ``t``::

    no recomputation, no SP : s*b*h*(10 + 24/t) + 5*a*s^2*b/t      (GPT shape, 16-bit)
    sequence parallel       : s*b*h*34/t + 5*a*s^2*b/t
    selective recomputation : the 5*a*s^2*b/t attention-score term is dropped
    full recomputation      : 2*s*b*h (/t with SP) per layer, plus one layer's working set

FlashAttention never stores the scores, so its ``s^2`` term is zero. Under FP8 training the linear
layers' saved inputs (QKV, attention output, fc1, fc2) are Transformer Engine's 1-byte casts, and
the weights carry their FP8 copy (3 bytes per parameter instead of 2). A pipeline rank holds the
activations of the micro-batches in flight: ``p - r`` under 1F1B, all ``m`` under GPipe,
Megatron's interleaved warm-up count with virtual stages, and ``p + 1`` chunks under DualPipe (its
Table 2; each rank also holds both copies' weights, gradients and optimizer states).
"""

from __future__ import annotations

from pydantic import BaseModel

from planner.hardware import GIB, RUNTIME_RESERVE_GIB, Cluster
from planner.transformer.sharding import (
    chunk_stages,
    expert_data_parallel,
    grad_reduce_bytes,
    moe_load_factor,
    pipeline_stages,
    rank_params_split,
    stage_layer_kinds,
)
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy


class Memory(BaseModel):
    """Peak memory of the most loaded accelerator, in GiB."""

    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    activations_gib: float
    reserved_gib: float
    peak_gib: float
    capacity_gib: float
    fits: bool
    pipeline_rank: int


def layer_activation_bytes(
    model: TransformerSpec, s: Strategy, elem_bytes: int, moe: bool | None = None
) -> tuple[float, float]:
    """(stored bytes per layer per micro-batch, bytes of one layer's full working set).

    ``moe`` picks the layer kind as in :func:`planner.transformer.layer.layer_costs`. An MoE layer
    stores, per routed (token, expert) copy on the busiest rank (``top_k`` per token times
    :func:`~planner.transformer.sharding.moe_load_factor`), the permuted expert input (``h``, whole on every
    tensor-parallel rank) and the expert's intermediate activations (``f_e``, split by ``tp``),
    and per token those of the shared experts."""
    is_moe = model.is_moe if moe is None else (moe and model.is_moe)
    t = s.tp
    sb = (model.seq_len // s.cp) * s.micro_batch
    h, hkv, f, q = model.hidden_size, model.kv_hidden, model.ffn, model.q_hidden
    e = elem_bytes
    mats = 3 if model.mlp == "swiglu" else 2  # intermediate tensors kept per MLP: fc1 out(s), activation
    unsplit = (4 * e + 2) * sb * h  # two norm inputs, QKV and fc1 inputs, two dropout masks
    split = e * sb * (2 * q + 2 * hkv)  # q, k, v and the attention output
    routed = 0.0  # not split by tp: the permuted token copies each expert-parallel rank receives
    if is_moe:
        pairs = sb * model.top_k * moe_load_factor(s)
        routed = e * pairs * h
        fc2_in = pairs * model.expert_ffn + sb * model.expert_ffn * model.shared_experts
    else:
        fc2_in = sb * f
    split += e * fc2_in * mats
    if s.precision == "fp8":
        # Transformer Engine saves each linear layer's input for the backward pass in FP8 (1 byte),
        # the cast it made for the forward GEMM: QKV and fc1 inputs, the attention output, fc2 input.
        unsplit -= (e - 1) * 2 * sb * h
        split -= (e - 1) * (sb * q + fc2_in)
    scores = 0.0
    if s.attention == "unfused":
        scores = 5.0 * model.num_heads * (model.seq_len // s.cp) * model.seq_len * s.micro_batch / t * (e / 2)
    full = (unsplit + split) / t + scores if s.sequence_parallel else unsplit + split / t + scores
    full += routed
    if s.recompute == "full":
        stored = e * sb * h / (t if s.sequence_parallel else 1)
    elif s.recompute == "selective":
        stored = full - scores
    else:
        stored = full
    return stored, full


def in_flight(s: Strategy, rank: int) -> int:
    """Micro-batches (virtual, with interleaving) whose activations rank ``rank`` holds at peak."""
    p, v, m = s.pp, s.vpp, s.micro_batches
    sched = s.pipeline_schedule
    if sched == "gpipe":
        return m * v
    if sched == "interleaved":
        return min((p - rank - 1) * 2 + (v - 1) * p + 1, m * v)
    if sched == "zero-bubble":  # 1F1B's in-flight forwards plus up to p deferred weight gradients
        return min(p - rank, m) + min(p, m)
    if sched == "dualpipe":  # p + 1 chunks at peak on every rank (DualPipe's Table 2, and its order)
        return min(p + 1, m)
    return min(p - rank, m)


def memory(model: TransformerSpec, s: Strategy, cluster: Cluster, elem_bytes: int) -> Memory:
    """Peak memory over the pipeline ranks of a resolved strategy."""
    dp = s.data_parallel * s.cp
    w_bytes = 4 if s.precision in ("fp32", "tf32") else 2
    if s.precision == "fp8":
        w_bytes = 3  # 16-bit weights plus their FP8 copy
    g_bytes = grad_reduce_bytes(s)
    o_bytes = 8 if s.precision in ("fp32", "tf32") else 12  # fp32 master copy, Adam m and v
    stored_d, full_d = layer_activation_bytes(model, s, elem_bytes, moe=False)
    stored_m, full_m = layer_activation_bytes(model, s, elem_bytes, moe=True)
    kinds = stage_layer_kinds(model, pipeline_stages(s))
    edp = expert_data_parallel(s)  # routed experts are replicated on dp*cp/ep ranks only: ZeRO shards them there

    def zero(rest: float, experts: float, stage: int) -> float:
        """Bytes per element times the parameters, each part sharded from ZeRO ``stage`` on."""
        return rest / (dp if s.zero_stage >= stage else 1) + experts / (edp if s.zero_stage >= stage else 1)

    best: Memory | None = None
    for r, (rest, experts) in enumerate(rank_params_split(model, s)):
        params = rest + experts
        weights = zero(rest, experts, 3) * w_bytes
        grads = zero(rest, experts, 2) * g_bytes
        opt = zero(rest, experts, 1) * o_bytes
        if s.zero_stage >= 3:
            weights += 2 * (params / model.num_layers) * w_bytes  # two gathered layers at a time
        held = chunk_stages(s, r)
        chunk_bytes = sum(kinds[vs][0] * stored_d + kinds[vs][1] * stored_m for vs in held)
        acts = chunk_bytes / len(held) * in_flight(s, r)
        if s.recompute == "full":
            acts += max(full_d, full_m)  # the layer being recomputed and back-propagated
        if pipeline_stages(s) - 1 in held:  # the last stage (under DualPipe, on ranks 0 and p - 1)
            tokens = (model.seq_len // s.cp) * s.micro_batch
            acts += tokens * (model.vocab_size / s.tp) * 4  # fp32 logits for the loss
        total = weights + grads + opt + acts + RUNTIME_RESERVE_GIB * GIB
        mem = Memory(
            weights_gib=weights / GIB,
            gradients_gib=grads / GIB,
            optimizer_gib=opt / GIB,
            activations_gib=acts / GIB,
            reserved_gib=RUNTIME_RESERVE_GIB,
            peak_gib=total / GIB,
            capacity_gib=cluster.accelerator.memory_gib,
            fits=total / GIB <= cluster.accelerator.memory_gib,
            pipeline_rank=r,
        )
        if best is None or mem.peak_gib > best.peak_gib:
            best = mem
    assert best is not None
    return best
