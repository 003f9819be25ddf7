"""What one accelerator holds under a layout: parameters per pipeline rank, gradient precision.

Shared by the graph builder (how much to reduce, how much to update) and the memory model.
"""

from __future__ import annotations

import functools

from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy


def moe_load_factor(s: Strategy) -> float:
    """Tokens the busiest expert-parallel rank's experts process, over the mean.

    With a capacity factor, every expert is padded (and excess tokens dropped) to ``cf`` times the
    mean (GShard; Megatron-Core ``--moe-expert-capacity-factor`` with ``--moe-pad-expert-input-to-capacity``);
    dropless routing with ``ep > 1`` gives the busiest rank ``moe_imbalance`` times the mean, and the
    step waits for it. With ``ep == 1`` one rank runs every expert, so imbalance costs nothing."""
    if s.moe_capacity_factor is not None:
        return s.moe_capacity_factor
    return s.moe_imbalance if s.ep > 1 else 1.0


def expert_params_local(model: TransformerSpec, s: Strategy) -> float:
    """Routed-expert weights of one MoE layer held by one rank: ``experts / ep`` experts, each split
    ``tp`` ways (Megatron-Core's default expert tensor parallelism equals tp). Zero for a dense model."""
    return model.routed_expert_params / (s.tp * s.ep)


def layer_params_local(model: TransformerSpec, s: Strategy, moe: bool | None = None) -> float:
    """Parameters of one layer held by one rank (tensor- and expert-parallel shards).

    ``moe`` picks the layer kind: None = the model's MoE layer when it has experts, else its dense
    layer. Routed experts are split over ``tp * ep``; shared experts over ``tp`` only (every
    expert-parallel rank runs them on its own tokens); the router is replicated."""
    is_moe = model.is_moe if moe is None else (moe and model.is_moe)
    attn = model.attn_params / s.tp
    if is_moe:
        shared = model.shared_experts * model.expert_params / s.tp
        mlp = expert_params_local(model, s) + shared + model.router_params
    else:
        mlp = model.dense_mlp_params / s.tp
    return attn + mlp + model.small_params_per_layer


def expert_data_parallel(s: Strategy) -> int:
    """Ranks that hold the same routed experts (and reduce their gradients): ``dp * cp / ep``."""
    return max(1, s.data_parallel * s.cp // s.ep)


def stage_layer_kinds(model: TransformerSpec, stages: int) -> list[tuple[int, int]]:
    """(dense layers, MoE layers) of each virtual pipeline stage, layers assigned as in
    :func:`stage_layers` (by count, as Megatron does); an MoE model's dense layers come first."""
    first_moe = model.first_dense_layers if model.is_moe else model.num_layers  # layers before it are dense
    return list(_stage_layer_kinds(model.num_layers, first_moe, stages))


@functools.lru_cache(maxsize=4096)
def _stage_layer_kinds(num_layers: int, first_moe: int, stages: int) -> tuple[tuple[int, int], ...]:
    out = []
    start = 0
    for n in stage_layers(num_layers, stages):
        moe = max(0, start + n - max(start, first_moe))  # layers of [start, start + n) at or past first_moe
        out.append((n - moe, moe))
        start += n
    return tuple(out)


def stage_layers(num_layers: int, stages: int) -> list[int]:
    """Layers of each virtual pipeline stage, as even as possible.

    When the layers do not divide evenly, the first and last stages (which also hold the embedding
    and the LM head with the loss) get the fewer layers, as in Megatron-DeepSpeed's
    ``type:transformer|embedding`` partition (BLOOM) and Megatron-Core's uneven first/last stages.
    """
    base, extra = divmod(num_layers, stages)
    counts = [base] * stages
    order = list(range(1, stages - 1)) + ([stages - 1, 0] if stages > 1 else [0])
    for i in order[:extra]:
        counts[i] += 1
    return counts


def pipeline_stages(s: Strategy) -> int:
    """Stages the layers are split over: ``pp * vpp``; under DualPipe ``pp``, each of the model's
    two copies split over all ``pp`` ranks (one flowing each way)."""
    return s.pp if s.pipeline_schedule == "dualpipe" else s.pp * s.vpp


def chunk_stages(s: Strategy, rank: int) -> list[int]:
    """The stage (of :func:`pipeline_stages`) held by each model chunk of pipeline rank ``rank``:
    ``c * pp + rank`` for chunk ``c`` (interleaved), or under DualPipe ``[rank, pp - 1 - rank]``."""
    if s.pipeline_schedule == "dualpipe":
        return [rank, s.pp - 1 - rank]
    return [c * s.pp + rank for c in range(s.vpp)]


def rank_params(model: TransformerSpec, s: Strategy) -> list[float]:
    """Parameters held by one accelerator of each pipeline rank (before ZeRO sharding)."""
    return [a + b for a, b in rank_params_split(model, s)]


_SPLIT_CACHE: dict[tuple, list[tuple[float, float]]] = {}


def rank_params_split(model: TransformerSpec, s: Strategy) -> list[tuple[float, float]]:
    """Per pipeline rank, (parameters replicated over the dp*cp ranks, routed-expert parameters
    replicated over only the dp*cp/ep ranks of :func:`expert_data_parallel`) of one accelerator.
    ZeRO shards each part over its own group, as Megatron-Core's distributed optimizer does.

    Cached on what it depends on (the model, tp, ep, pp, vpp and schedule): the search asks it
    for thousands of layouts that share those."""
    key = (model, s.tp, s.ep, s.pp, s.vpp, s.pipeline_schedule)
    hit = _SPLIT_CACHE.get(key)
    if hit is None:
        if len(_SPLIT_CACHE) > 4096:
            _SPLIT_CACHE.clear()
        hit = _SPLIT_CACHE[key] = _rank_params_split(model, s)
    return list(hit)


def _rank_params_split(model: TransformerSpec, s: Strategy) -> list[tuple[float, float]]:
    p = s.pp
    stages = pipeline_stages(s)
    kinds = stage_layer_kinds(model, stages)
    dense_layer = layer_params_local(model, s, moe=False)
    experts = expert_params_local(model, s)
    moe_rest = layer_params_local(model, s, moe=True) - experts
    out = []
    for r in range(p):
        n = 0.0
        ex = 0.0
        held = chunk_stages(s, r)
        for vs in held:
            nd, nm = kinds[vs]
            n += nd * dense_layer + nm * moe_rest
            ex += nm * experts
            if vs == 0:
                n += model.embedding_params / s.tp
            if vs == stages - 1:
                n += model.lm_head_params / s.tp
        if model.tied_embeddings and stages - 1 in held and 0 not in held:
            # the last stage's copy of the embedding (under DualPipe, ranks 0 and p - 1 hold the
            # first stage of one copy and the last of the other: one tied matrix serves both)
            n += model.vocab_size * model.hidden_size / s.tp
        out.append((n, ex))
    return out


def gathers_per_layer(s: Strategy) -> bool:
    """Whether ZeRO-3 / FSDP gathers and reduce-scatters every layer for every micro-batch.

    Only without pipeline stages. With ``pp > 1`` a stage's parameters are gathered once a step and
    kept unsharded until its last backward, its gradients accumulated unsharded over the
    micro-batches and reduce-scattered once: torchtitan's ``apply_fsdp`` passes
    ``reshard_after_forward=False`` when pipeline parallelism is on ("to avoid per-microbatch
    all-gathers", torchtitan/parallelisms/parallelize_llama.py at 9dec370), and
    ``torch.distributed.pipelining``'s ``backward_maybe_with_nosync`` sets
    ``reshard_after_backward(False)`` and ``requires_gradient_sync(False)`` until the last
    micro-batch's backward (PyTorch PR #124319 calls this pairing "ZeRO-1"); Llama 3 (arXiv:2407.21783,
    sec. 3.3.2) likewise does not reshard after forward. So ZeRO-2/3 with ``pp > 1`` costs, in time,
    what ZeRO-1 does: one reduce-scatter of the accumulated gradients and one parameter all-gather
    a step (:func:`planner.transformer.plan.optimizer_step`)."""
    return s.zero_stage == 3 and s.pp == 1


def gathers_after_step(s: Strategy) -> bool:
    """Whether ZeRO all-gathers the updated parameter shards once after the optimizer step: ZeRO-1/2,
    and ZeRO-3 with pipeline stages (:func:`gathers_per_layer`); per-layer FSDP gathers in its
    layers instead. One rule for the plan's price of the gather and the graph's task of it."""
    return s.zero_stage >= 1 and not gathers_per_layer(s)


def dp_reduce_kind(s: Strategy) -> str:
    """The collective that reduces gradients over the data-parallel ranks: an all-reduce without
    ZeRO and under DeepSpeed's BF16_Optimizer (:attr:`Strategy.grad_all_reduce`: its pipeline engine's
    ``_bf16_reduce_grads`` all-reduces the fp32 gradients, ``buffered_allreduce_fallback``, and the
    optimizer all-gathers the updated bf16 shards, ``update_lp_params``), else a reduce-scatter."""
    return "all_reduce" if s.zero_stage == 0 or s.grad_all_reduce else "reduce_scatter"


def gathers_for_backward(s: Strategy) -> bool:
    """Whether per-layer FSDP (:func:`gathers_per_layer`) gathers each layer's parameters a second
    time for its backward: FSDP's default ``reshard_after_forward=True`` frees them after the
    forward. Without it (:attr:`Strategy.fsdp_reshard_after_forward` False: fairscale's and
    metaseq's ``--no-reshard-after-forward``, whose OPT launcher names it "zero2") a layer stays
    gathered from its forward to its backward, as with pipeline stages above: one gather in the
    forward, prefetched under the previous layer, one reduce-scatter in the backward, and the whole
    16-bit weights of the rank held at the start of the backward (planner.transformer.memory)."""
    return gathers_per_layer(s) and s.fsdp_reshard_after_forward


def accumulated_grad_bytes(s: Strategy) -> int:
    """Bytes per element of the unsharded gradients a pipeline stage accumulates over its
    micro-batches under ZeRO-2/3 with ``pp > 1`` (:func:`gathers_per_layer`): FSDP2 accumulates them
    in its reduce dtype (``FSDPParam.to_accumulated_grad_if_needed``), fp32 in torchtitan's default
    ``mixed_precision_reduce``, and Llama 3 "accumulates gradients in FP32" (arXiv:2407.21783 sec.
    3.3.2), as Megatron's fp32 ``main_grad``; 16-bit under fp16. (The step's reduce-scatter is
    priced at :func:`dp_reduce_bytes`: the framework's reduce dtype, else 16-bit for ZeRO-3.)"""
    return 2 if s.precision == "fp16" else 4


def grad_reduce_bytes(s: Strategy) -> int:
    """Bytes per gradient element kept and reduced across data-parallel ranks.

    Megatron-LM accumulates and reduces in fp32 under bf16 (``accumulate_allreduce_grads_in_fp32``)
    and in fp16 under fp16; ZeRO-3 / FSDP mixed precision reduce-scatters in 16 bit. FP8 with the
    distributed optimizer is Megatron-LM's and NeMo's published FP8 recipe, which reduces in bf16
    (``--grad-reduce-in-bf16`` in examples/llama/train_llama3_8b_h100_fp8.sh; NeMo's performance
    scripts set ``grad_reduce_in_fp32 = False`` with ``bf16_with_fp8_mixed``).
    """
    if s.zero_stage == 3 or s.precision == "fp16" or (s.precision == "fp8" and s.zero_stage >= 1):
        return 2
    return 4


def dp_reduce_bytes(s: Strategy) -> int:
    """Bytes per gradient element the data-parallel reduction moves (all-reduce, or ZeRO's / FSDP's
    reduce-scatter): the strategy's ``grad_reduce_dtype`` (a framework's documented choice,
    planner.transformer.frameworks) where set, else :func:`grad_reduce_bytes`.

    ``fp32``: 4 bytes whatever the training precision (torchtitan's FSDP2 ``reduce_dtype``, Llama 3's
    "reduce-scatter gradients in FP32"); ``param``: the training dtype's (2 under bf16/fp16/fp8, whose
    weights are 16-bit; 4 under fp32/tf32), DeepSpeed's default ``communication_data_type`` and FSDP
    mixed precision ``PURE``. Only the wire: what the gradients occupy stays :func:`grad_reduce_bytes`
    (planner.transformer.memory)."""
    if s.grad_reduce_dtype == "fp32":
        return 4
    if s.grad_reduce_dtype == "param":
        return 4 if s.precision in ("fp32", "tf32") else 2
    return grad_reduce_bytes(s)
