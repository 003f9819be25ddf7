"""Memory per accelerator: weights, gradients, optimizer states and activations.

Each term against the frameworks' own accounting (Megatron-Core's ``report_theoretical_memory``,
megatron/training/theoretical_memory_usage.py; DeepSpeed's ``estimate_zero{2,3}_model_states_mem_needs``;
torchtitan's and PyTorch's memory tracking):

* **Weights, gradients, optimizer** (bytes per parameter of the most loaded rank): 16-bit weights
  (2; fp32/tf32 4), gradients kept and reduced in fp32 under bf16 (4, Megatron's main_grad buffer;
  2 under fp16 and ZeRO-3, :func:`~planner.transformer.sharding.grad_reduce_bytes`), Adam's fp32
  master copy, m and v (12). That is Megatron's ``18`` bytes, and with the distributed optimizer
  (ZeRO-1 over dp*cp, :attr:`zero_stage` 1) its ``6 + 12/dp``; ZeRO-2 also shards the gradients and
  ZeRO-3 the weights (DeepSpeed's estimators), the latter plus two gathered layers (FSDP's current
  block and the prefetched next one). Routed experts are sharded over their own ``dp*cp/ep`` ranks.
* **FSDP with pipeline stages** (ZeRO-3 and ``pp > 1``, :func:`~planner.transformer.sharding.gathers_per_layer`):
  torchtitan does not reshard a stage after forward and ``torch.distributed.pipelining`` keeps it
  gathered, and its gradients unsynchronised, until the last micro-batch's backward (Llama 3,
  arXiv:2407.21783 sec. 3.3.2, does not reshard after forward either): the stage's whole 16-bit
  weights, its gradients accumulated unsharded in fp32 (FSDP2's reduce dtype:
  :func:`~planner.transformer.sharding.accumulated_grad_bytes`), and only Adam's master, m and v
  sharded: ZeRO-1's bytes (PyTorch PR #124319). Without pipeline stages, FSDP that does not reshard
  after forward (metaseq's ``--no-reshard-after-forward``,
  :func:`~planner.transformer.sharding.gathers_for_backward`) holds every layer gathered when the
  backward starts: the rank's whole 16-bit weights, its gradients reduce-scattered layer by layer.
* **FP8 weights**: Transformer Engine keeps an FP8 cast of each weight across micro-batches
  (1 byte more per parameter: 3). With the distributed optimizer, Megatron-LM's and NeMo's FP8
  recipes gather the parameters in FP8 (``--fp8-param-gather``: Megatron-LM
  examples/llama/train_llama3_8b_h100_fp8.sh; NeMo's performance-tuning guide): the model's
  weights are FP8 (1 byte, plus the transpose Hopper's GEMMs need: 2) and the fp32 master copy is
  the optimizer's.
* **Where the embedding and LM head sit**: the first and last pipeline stages (Megatron puts the
  embedding on the first, the output layer on the last; a tied matrix is held by both), and the
  uneven stages of :func:`~planner.transformer.sharding.stage_layers` give them one layer fewer
  when the layers do not divide (as Llama 3 did); every pipeline rank is evaluated and the peak
  one reported (:attr:`Memory.pipeline_rank`).
* **Activations per layer and micro-batch**: Korthikanti et al. 2022 (arXiv:2205.05198) Table 2,
  the formula Megatron's report uses, generalised to GQA and SwiGLU, with ``s`` tokens, ``b``
  sequences, ``h`` hidden, ``a`` heads, tensor-parallel ``t``::

    no recomputation, no SP : s*b*h*(10 + 24/t) + 5*a*s^2*b/t      (GPT shape, 16-bit)
    sequence parallel       : s*b*h*34/t + 5*a*s^2*b/t
    selective recomputation : the 5*a*s^2*b/t attention-score term is dropped
    full recomputation      : 2*s*b*h (/t with SP or distributed checkpoints) per layer, plus
                              one layer's working set

  FlashAttention never stores the scores, so its ``s^2`` term is zero; the two dropout masks
  (``2*s*b*h`` of the 34) are kept only by models trained with dropout (:func:`dropout_masks`). Context parallelism splits
  ``s`` by ``cp``. Under FP8 the linear layers' saved inputs (QKV, attention output, fc1, fc2 and
  the experts' permuted inputs) are Transformer Engine's 1-byte casts (DeepSeek-V3 Sec. 3.3.2
  caches and dispatches them in FP8 too). An MoE layer stores its routed token copies on the
  busiest expert-parallel rank (top-k times the load factor): the dispatch buffers. Multi-head
  Latent Attention (DeepSeek-V2/V3) stores its latents and its up-projected q, k (``qk_head_size``
  wide) and v; selective recomputation of an MLA model is DeepSeek-V3's (sec. 3.2.3: RMSNorm and
  the MLA up-projections recomputed in the backward pass, so neither their outputs are stored).
* **In-flight micro-batches** (:func:`in_flight`): ``p - r`` on rank ``r`` under 1F1B (Megatron's
  report: ``p`` on the first stage), all ``m`` under GPipe, Megatron's interleaved warm-up count
  (its layers times one micro-batch are the report's ``1 + (p-1)/(p*v)`` penalty), 1F1B's plus up
  to ``p`` deferred weight-gradient inputs under zero-bubble, and ``p + 1`` chunks under DualPipe
  (its Table 2; each rank also holds both copies' weights, gradients and optimizer states).
* **Loss**: the last stage's fp32 logits of one micro-batch (vocabulary split by ``t``).
* **Runtime reserve** (:data:`~planner.hardware.RUNTIME_RESERVE_GIB`): the CUDA context, NCCL's
  and userbuffers' communication buffers, one flat figure outside PyTorch's allocator; the other
  terms are live tensors, what PyTorch's ``max_memory_allocated`` reports
  (:attr:`Memory.allocated_gib`).
* **The caching allocator's reserve** (:data:`ALLOCATOR_FRAGMENTATION`): ``max_memory_reserved``
  also counts the blocks the allocator holds free; predicted for a measurement of that figure
  (:meth:`Memory.measured_as`), not counted in :attr:`Memory.peak_gib`, which is what the fit is
  judged on.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from planner.errors import PlannerInputError
from planner.hardware import GIB, RUNTIME_RESERVE_GIB, Cluster
from planner.transformer.frameworks import canonical
from planner.transformer.sharding import (
    accumulated_grad_bytes,
    chunk_stages,
    expert_data_parallel,
    gathers_for_backward,
    gathers_per_layer,
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
    in_flight: int = Field(
        default=0, description="micro-batches (per model chunk) whose activations the peak rank holds"
    )
    layers: int = Field(default=0, description="transformer layers the peak rank holds, all its chunks")
    chunk_layers: float = Field(default=0.0, description="layers per model chunk (the unit of in_flight)")

    def terms(self) -> list[tuple[str, float]]:
        """(what, GiB) of each term, largest first: what a rejection names as the overflow."""
        acts = f"activations of {self.in_flight} in-flight micro-batches x {self.chunk_layers:g} layers"
        named = [
            (acts, self.activations_gib),
            ("optimizer states", self.optimizer_gib),
            ("gradients", self.gradients_gib),
            ("weights", self.weights_gib),
            ("runtime reserve", self.reserved_gib),
        ]
        return sorted(named, key=lambda kv: -kv[1])

    @property
    def allocated_gib(self) -> float:
        """The live tensors at the peak, what ``torch.cuda.max_memory_allocated`` reports: the peak
        less the runtime reserve (the CUDA context and NCCL's buffers are not the allocator's)."""
        return self.peak_gib - self.reserved_gib

    @property
    def allocator_reserved_gib(self) -> float:
        """What ``torch.cuda.max_memory_reserved`` reports: the allocated peak plus the blocks the
        caching allocator holds free at that moment (:data:`ALLOCATOR_FRAGMENTATION` of it)."""
        return self.allocated_gib / (1.0 - ALLOCATOR_FRAGMENTATION)

    def measured_as(self, quantity: str) -> float:
        """The predicted figure a measurement of ``quantity`` reads (validation/memory.csv's column):
        ``max_reserved_gib``, ``max_allocated_gib``, ``activations_gib``; blank: :attr:`peak_gib`."""
        by = {"max_reserved_gib": self.allocator_reserved_gib, "max_allocated_gib": self.allocated_gib,
              "activations_gib": self.activations_gib, "": self.peak_gib}  # fmt: skip
        if quantity not in by:
            raise PlannerInputError("quantity", f"{quantity!r} is not one of {', '.join(k for k in by if k)}")
        return by[quantity]

    @property
    def largest_term(self) -> str:
        """The kind of the largest term: ``activations``, ``optimizer states``, ``gradients``, ..."""
        what = self.terms()[0][0]
        return "activations" if what.startswith("activations") else what

    @property
    def overflow(self) -> str:
        """The largest term and the total, e.g. ``activations of 16 in-flight micro-batches x 8
        layers: 63.3 GiB of 82.7 GiB (capacity 80 GiB)``: why a layout does not fit."""
        what, gib = self.terms()[0]
        return f"{what}: {gib:.1f} GiB of {self.peak_gib:.1f} GiB (capacity {self.capacity_gib:.0f} GiB)"


ALLOCATOR_FRAGMENTATION = 0.15
"""Share of PyTorch's reserved memory (``torch.cuda.max_memory_reserved``) that the CUDA caching
allocator holds free at the allocated peak: blocks cached after a free and split segments whose
holes a later request does not fit (c10/cuda/CUDACachingAllocator.cpp rounds requests to 512 B,
serves those under 1 MiB from 2 MiB segments and those up to 10 MiB from 20 MiB ones, and larger
ones from segments rounded to 2 MiB, which it splits; PyTorch docs, "CUDA memory management"). The
rounding is small against multi-GiB activations; the split holes are not, and they grow with
recomputation and sharded training's irregular alloc/free pattern. GMLake (Guo et al., ASPLOS'24,
arXiv:2401.08156) measures the native allocator on eight LLMs on A100-80GB and removes 15 % of
reserved memory on average (up to 33 %) by stitching those holes: the share used here, one figure
for every run. It applies only to a prediction of a measured *reserved* figure
(:meth:`Memory.measured_as`); whether a layout fits is judged on the allocated peak plus the runtime
reserve, since a failed ``cudaMalloc`` makes the allocator free its unused cached segments and retry
before it raises out-of-memory (``release_cached_blocks``), and the runs the labs made on 80 GB
(Llama 3 405B at tp 8, pp 16) would not fit at their reserved figure."""

LOSS_BYTES_PER_LOGIT = {"torchtitan": 12.0}
"""Bytes per logit (token x vocabulary / tp) the loss holds at its peak, by framework; 4 otherwise:
Megatron's vocab-parallel cross-entropy turns the fp32 logits into the softmax in place and writes
the gradient into the same buffer. torchtitan casts the logits to fp32 outside the model
(``output(h).float()``) and runs ``F.cross_entropy``: the fp32 log-softmax is saved and its
gradient and the logits' gradient are fp32 tensors of their own: about 3 x 4 bytes."""

LOSS_PARALLEL_BYTES_PER_LOGIT = {"torchtitan": 16.0}
"""Bytes per logit under tensor parallelism (``tp > 1``), by framework, where it differs from
:data:`LOSS_BYTES_PER_LOGIT`. torchtitan's: loss parallelism is on by default (``ParallelDims.
loss_parallel_enabled``: tp > 1 unless ``--training.disable_loss_parallel``), and
``torch.distributed.tensor.parallel.loss``'s backward (``_nll_loss_and_log_softmax_backward``) is
decomposed: the saved fp32 log-softmax, ``zeros_like`` of it for the target's scatter, its
``exp`` and their sum (then times the per-token gradient) are four fp32 tensors of the vocabulary
shard at once, against the fused ``log_softmax_backward`` kernel's three."""


def loss_bytes_per_logit(s: Strategy) -> float:
    """:data:`LOSS_BYTES_PER_LOGIT` of the strategy's framework (4 without one); with tensor
    parallelism its :data:`LOSS_PARALLEL_BYTES_PER_LOGIT` where it has one."""
    fw = canonical(s.framework or "")
    if s.tp > 1 and fw in LOSS_PARALLEL_BYTES_PER_LOGIT:
        return LOSS_PARALLEL_BYTES_PER_LOGIT[fw]
    return LOSS_BYTES_PER_LOGIT.get(fw, 4.0)


def op_level_checkpointing(s: Strategy) -> bool:
    """Selective recomputation is torchtitan's per-operator policy (``activation_checkpoint.mode
    selective``, ``selective_ac_option op``): it saves the outputs of every other matmul (wq, wv,
    w1, w2 of a Llama block) and of the attention kernel, and recomputes the rest."""
    return s.recompute == "selective" and canonical(s.framework or "") == "torchtitan"


def dropout_masks(model: TransformerSpec) -> int:
    """Bytes per token and hidden unit of a layer's two dropout masks: 2 for the GPT-style models
    (GPT-3, BLOOM, OPT train with dropout 0.1), 0 for the SwiGLU families, which train without
    dropout (Llama 2/3, Mistral, Mixtral, Qwen, DeepSeek: ``--hidden-dropout 0.0`` in Megatron-LM's
    Llama examples); PyTorch's dropout with ``p = 0`` returns its input and keeps no mask."""
    return 0 if model.mlp == "swiglu" else 2


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
    unsplit = (4 * e + dropout_masks(model)) * sb * h  # two norm inputs, QKV and fc1 inputs, dropout masks
    split = e * sb * (2 * q + 2 * hkv)  # q, k, v and the attention output
    mla_up = 0.0  # MLA: the up-projected queries, keys and values (recomputed under selective)
    if model.is_mla:  # q and k are qk_head_size wide per head, v and the output v_head_size; the latents too
        qk = model.num_heads * model.qk_head_size
        mla_up = e * sb * (qk + q + (qk if model.q_lora_rank else 0))
        split = mla_up + e * sb * (q + (0 if model.q_lora_rank else qk))
        unsplit += e * sb * ((model.q_lora_rank or 0) + (model.kv_lora_rank or 0) + model.qk_rope_head_dim)
    routed = 0.0  # not split by tp: the permuted token copies each expert-parallel rank receives
    if is_moe:
        pairs = sb * model.top_k * moe_load_factor(s)
        routed = (1 if s.precision == "fp8" else e) * pairs * h  # the experts' fc1 input, cast to FP8 under fp8
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
    if not s.fused_attention:
        scores = 5.0 * model.num_heads * (model.seq_len // s.cp) * model.seq_len * s.micro_batch / t * (e / 2)
    full = (unsplit + split) / t + scores if s.sequence_parallel else unsplit + split / t + scores
    full += routed
    if s.recompute == "full":
        stored = e * sb * h / (t if s.sequence_parallel or s.distribute_saved_activations else 1)
    elif op_level_checkpointing(s) and not is_moe:
        # the block's input and w2's output (hidden-sized; sequence-split with SP), q, v, the attention
        # output and w1's output (split by tp)
        stored = e * sb * (2 * h / (t if s.sequence_parallel else 1) + (2 * q + hkv + model.ffn) / t)
    elif s.recompute == "selective":
        stored = full - scores
        if model.is_mla:  # DeepSeek-V3 sec. 3.2.3: RMSNorm and the MLA up-projections are recomputed
            norm_out = (1 if s.precision == "fp8" else e) * 2 * sb * h  # the QKV and fc1 inputs
            stored -= mla_up / t + norm_out / (t if s.sequence_parallel else 1)
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
        # 16-bit weights plus their cached FP8 cast; with the distributed optimizer the FP8 weights
        # are the model's own (--fp8-param-gather, set by Megatron-LM's and NeMo's FP8 recipes):
        # FP8 data and its cached transpose, the fp32 master being the optimizer's
        w_bytes = 2 if s.zero_stage >= 1 else 3
    g_bytes = grad_reduce_bytes(s)
    o_bytes = 8 if s.precision in ("fp32", "tf32") else 12  # fp32 master copy, Adam m and v
    stored_d, full_d = layer_activation_bytes(model, s, elem_bytes, moe=False)
    stored_m, full_m = layer_activation_bytes(model, s, elem_bytes, moe=True)
    kinds = stage_layer_kinds(model, pipeline_stages(s))
    edp = expert_data_parallel(s)  # routed experts are replicated on dp*cp/ep ranks only: ZeRO shards them there

    def zero(rest: float, experts: float, stage: int) -> float:
        """Bytes per element times the parameters, each part sharded from ZeRO ``stage`` on."""
        return rest / (dp if s.zero_stage >= stage else 1) + experts / (edp if s.zero_stage >= stage else 1)

    # ZeRO-3 whose weights are all gathered when the backward starts: a pipeline stage (gathered once a
    # step, gathers_per_layer) or a rank that does not reshard after forward (gathers_for_backward);
    # with pipeline stages the gradients also accumulate unsharded until the last micro-batch's backward
    regather = gathers_for_backward(s)
    whole_weights = s.zero_stage == 3 and not regather
    stage_grads = s.zero_stage == 3 and not gathers_per_layer(s)
    acc_bytes = accumulated_grad_bytes(s)
    # the terms of each pipeline rank as plain numbers; the Memory record (validated) is built once, for
    # the rank with the highest peak (the first such): the search sizes thousands of layouts this way
    best: tuple[float, int, float, float, float, float, int, int, int] | None = None
    for r, (rest, experts) in enumerate(rank_params_split(model, s)):
        params = rest + experts
        opt = zero(rest, experts, 1) * o_bytes
        weights = params * w_bytes if whole_weights else zero(rest, experts, 3) * w_bytes
        grads = params * acc_bytes if stage_grads else zero(rest, experts, 2) * g_bytes
        if regather:
            weights += 2 * (params / model.num_layers) * w_bytes  # two gathered layers at a time
        held = chunk_stages(s, r)
        flight = in_flight(s, r)
        chunk_bytes = sum(kinds[vs][0] * stored_d + kinds[vs][1] * stored_m for vs in held)
        acts = chunk_bytes / len(held) * flight
        if s.recompute == "full":
            acts += max(full_d, full_m)  # the layer being recomputed and back-propagated
        if pipeline_stages(s) - 1 in held:  # the last stage (under DualPipe, on ranks 0 and p - 1)
            tokens = (model.seq_len // s.cp) * s.micro_batch
            acts += tokens * (model.vocab_size / s.tp) * loss_bytes_per_logit(s)  # the loss's logits
        total = weights + grads + opt + acts + RUNTIME_RESERVE_GIB * GIB
        if best is None or total > best[0]:
            layers = sum(kinds[vs][0] + kinds[vs][1] for vs in held)
            best = (total, r, weights, grads, opt, acts, flight, layers, len(held))
    assert best is not None
    total, r, weights, grads, opt, acts, flight, layers, chunks = best
    return Memory(
        weights_gib=weights / GIB,
        gradients_gib=grads / GIB,
        optimizer_gib=opt / GIB,
        activations_gib=acts / GIB,
        reserved_gib=RUNTIME_RESERVE_GIB,
        peak_gib=total / GIB,
        capacity_gib=cluster.accelerator.memory_gib,
        fits=total / GIB <= cluster.accelerator.memory_gib,
        pipeline_rank=r,
        in_flight=flight,
        layers=layers,
        chunk_layers=layers / chunks,
    )
