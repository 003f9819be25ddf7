"""The transformer-training frameworks as the documented, discrete choices each one makes.

No factor per framework: each field switches a physical term of the step (which attention kernel,
what overlaps what, how big the gradient buckets are, which states are sharded), and each value is
read from the framework's own code or docs (``sources`` of each entry). A framework fills only the
strategy fields the user left unset (:func:`apply`); an explicit flag always wins.

Choices that depend on the accelerator generation (Transformer Engine picks FlashAttention-2 on
Ampere and cuDNN's fused attention on Hopper; FlashAttention needs Ampere or later) are held per
generation (:class:`GenChoices`). Choices the step graph cannot express are documented here and
named in the result (``scenario.framework_not_modelled``): FSDP prefetch depth and reshard policy (the graph gathers
each layer's parameters one layer ahead and frees them after use, as FSDP2's implicit prefetch does;
FSDP1's ``BACKWARD_POST`` issues the next gather a little later), fused optimizers (the optimizer step is priced as its bytes over HBM either
way) and CUDA graphs (all listed frameworks launch eagerly by default: the fitted ``layer_host_s``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner.errors import PlannerInputError


@dataclass(frozen=True)
class GenChoices:
    """The choices that differ between accelerator generations."""

    attention: str  # flash (generic, e.g. a TPU kernel), fa2, fa3, cudnn, sdpa-math, unfused
    tp_comm_overlap: bool  # TP collectives overlapped with GEMMs (needs sequence parallelism)
    distributed_optimizer: bool  # optimizer states sharded over data-parallel ranks (ZeRO-1)


@dataclass(frozen=True)
class TransformerFramework:
    """The discrete choices of one framework (see ``sources`` for where each is documented)."""

    name: str
    ampere: GenChoices  # A100 and other pre-Hopper GPUs (and accelerators without a GPU kernel choice)
    hopper: GenChoices  # H100/H800/H200/GH200, Blackwell
    fsdp: bool  # parameters, gradients and optimizer states fully sharded (ZeRO-3 / FSDP FULL_SHARD)
    dp_overlap: bool | None  # gradient reduction overlapped with the backward (None: planner's default)
    bucket_mparams: float | None  # gradient bucket, millions of parameters (None: planner's default)
    not_modelled: dict[str, str]  # documented choices the step graph does not express, with their value
    sources: dict[str, str]
    zero_stage: int | None = None  # sharding short of FSDP the framework documents (None: from the fields above)
    layer_chunks: bool = False  # interleaved pipeline, one layer per virtual stage (:func:`layer_chunk_vpp`)
    grad_reduce: str | None = None  # data-parallel gradient reduction dtype: fp32 or param (None: planner's rule)
    reshard_after_forward: bool = True  # FSDP frees a layer's gathered weights after its forward
    recompute: str | None = None  # the launcher's activation recomputation (None: planner's default)
    distribute_saved_activations: bool = False  # full recomputation's checkpoints split over the tp ranks
    sequence_parallel: bool | None = None  # None: planner's default (on with tp > 1 where validate fills it)
    update_freq: int | None = None  # micro-batches per replica per step, the launcher's (None: not fixed)
    deepspeed_pipeline: bool = False  # pp > 1 runs DeepSpeed's PipelineEngine (:func:`launcher_choices`)


_TE_HOPPER = "NVIDIA/TransformerEngine attention backend selection (docs): 'On Hopper+ (sm90): FusedAttention > FlashAttention > Unfused; on pre-Hopper: FlashAttention > FusedAttention > Unfused'"  # noqa: E501

FRAMEWORKS: dict[str, TransformerFramework] = {
    "megatron-core": TransformerFramework(
        "megatron-core", GenChoices("fa2", True, True), GenChoices("cudnn", True, True), False, True, None,
        {"cuda_graphs": "off (--enable-cuda-graph default False)", "fused_optimizer": "TE/apex FusedAdam"},
        {
            "attention": _TE_HOPPER,
            "tp_comm_overlap": "NeMo / Megatron-Bridge performance recipes: tp_comm_overlap=True (needs sequence "
            "parallelism: megatron/training/arguments.py)",
            "distributed_optimizer": "NeMo / Megatron-Bridge recipes: use_distributed_optimizer=True",
            "dp_overlap": "recipes: overlap_grad_reduce=True; bucket max(40M, 1M x dp) params "
            "(megatron/core/distributed/distributed_data_parallel.py)",
            "grad_reduce": "planner's rule (sharding.grad_reduce_bytes) is Megatron's: NVIDIA/Megatron-LM @d98e8a64 "
            "megatron/training/arguments.py sets accumulate_allreduce_grads_in_fp32 = True under --bf16 unless "
            "--grad-reduce-in-bf16 (the FP8 recipes set it), and megatron/core/distributed/param_and_grad_buffer.py "
            "keeps the grad buffer, which the distributed optimizer reduce-scatters, in torch.float when "
            "grad_reduce_in_fp32, else in the param dtype (fp16 under --fp16)",
        },
    ),
    "megatron": TransformerFramework(
        "megatron", GenChoices("unfused", False, False), GenChoices("cudnn", True, True), False, True, None,
        {"cuda_graphs": "off", "fused_optimizer": "apex FusedAdam"},
        {
            "attention": "Megatron-LM 2020-22 (arXiv:2104.04473, 2205.05198): fused scale-mask-softmax, no "
            "FlashAttention; on Hopper Megatron-LM runs Megatron-Core with Transformer Engine (" + _TE_HOPPER + ")",
            "tp_comm_overlap": "Megatron-Core on Hopper, as megatron-core",
        },
    ),
    "megatron-deepspeed": TransformerFramework(
        "megatron-deepspeed", GenChoices("unfused", False, False), GenChoices("unfused", False, False), False, None,
        None, {"cuda_graphs": "off", "fused_optimizer": "DeepSpeed FusedAdam"},
        {
            "attention": "microsoft/Megatron-DeepSpeed megatron/arguments.py: --use-flash-attn off by default",
            "dp_overlap": "DeepSpeed zero_optimization.overlap_comm: not set by the examples: planner's default; "
            "with pp > 1 DeepSpeed's PipelineEngine runs deepspeed/runtime/pipe/schedule.py TrainSchedule, whose "
            "last step issues ReduceTiedGrads, ReduceGrads, OptimizerStep after the last micro-batch's backward: "
            "no overlap",
            "grad_all_reduce": "bf16 with ZeRO-1 (BLOOM: ds_config stage 0 with bf16, 'it implements its own zero "
            "stage 1 equivalent', bigscience train/tr11-176B-ml/tr11-176B-ml.slurm) is DeepSpeed's BF16_Optimizer: "
            "pipe/engine.py _bf16_reduce_grads all-reduces its fp32 gradients (buffered_allreduce_fallback) and "
            "runtime/bf16_optimizer.py update_lp_params all-gathers the updated bf16 shards",
        },
        deepspeed_pipeline=True,
    ),
    "deepspeed": TransformerFramework(
        "deepspeed", GenChoices("fa2", False, False), GenChoices("fa2", False, False), False, None, 500.0,
        {"cuda_graphs": "off", "fused_optimizer": "DeepSpeed FusedAdam (ops/adam) for optimizer type Adam/AdamW"},
        {
            "attention": "Hugging Face Transformers attn_implementation default 'sdpa': PyTorch SDPA's flash "
            "backend (FlashAttention-2) on sm80+",
            "bucket_mb": "deepspeed/runtime/zero/config.py: reduce_bucket_size default 5e8 elements",
            "dp_overlap": "overlap_comm: default True under ZeRO-3, False otherwise: planner's default",
            "grad_reduce": "deepspeedai/DeepSpeed @edaa7221 deepspeed/runtime/constants.py: communication_data_type "
            "default None, which engine.py's communication_data_type resolves to fp16 / bf16 when those are enabled "
            "(ZeRO-1/2/3 reduce in the 16-bit param dtype unless the config sets it)",
        },
        grad_reduce="param",
    ),
    "torchtitan": TransformerFramework(
        "torchtitan", GenChoices("fa2", False, False), GenChoices("fa2", False, False), True, True, None,
        {
            "fsdp_reshard_after_forward": "'default' (True but for the last block)",
            "fsdp_prefetch": "FSDP2 implicit: next layer's all-gather during this one",
            "fused_optimizer": "AdamW implementation 'fused'", "cuda_graphs": "off (eager; torch.compile off)",
        },
        {
            "attention": "pytorch/torchtitan Llama 3 model: F.scaled_dot_product_attention unless use_flex_attn "
            "(PyTorch's flash backend, FlashAttention-2, on sm80+)",
            "fsdp": "torchtitan config: data_parallel_shard_degree -1 (FSDP2 over all data-parallel ranks)",
            "tp_comm_overlap": "enable_async_tensor_parallel default False",
            "grad_reduce": "torchtitan/config_manager.py @0011fb90: --training.mixed_precision_reduce default "
            "'float32' (its only choice), passed as FSDP2 MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32): "
            "all-gathers move bf16, gradient reduce-scatters fp32",
        },
        grad_reduce="fp32",
    ),
    "composer": TransformerFramework(
        "composer", GenChoices("fa2", False, False), GenChoices("fa2", False, False), True, True, None,
        {
            "fsdp_reshard_after_forward": "FULL_SHARD", "fsdp_prefetch": "composer FSDPConfig defaults: "
            "backward_prefetch BACKWARD_POST, backward_prefetch_limit 1, forward_prefetch False",
            "fused_optimizer": "llm-foundry yamls: composer DecoupledAdamW / DecoupledLionW",
            "cuda_graphs": "off",
        },
        {
            "attention": "mosaicml/llm-foundry MPT attn_config attn_impl 'flash' (flash-attn FlashAttention-2)",
            "fsdp": "mosaicml/composer FSDP (FSDP1) sharding_strategy FULL_SHARD default",
            "grad_reduce": "mosaicml/llm-foundry @8c8dd48f scripts/train/yamls/pretrain/mpt-*.yaml: fsdp_config "
            "mixed_precision PURE, which composer/distributed/mosaic_parallelism.py get_mixed_precision turns into "
            "reduce_dtype = the 16-bit precision (Composer's own default, DEFAULT, reduces in float32; "
            "llm-foundry's benchmark README records 'MP Mode' per row: PURE for A100 40GB, DEFAULT for A100 80GB "
            "and H100)",
        },
        grad_reduce="param",
    ),
    "maxtext": TransformerFramework(
        "maxtext", GenChoices("flash", True, False), GenChoices("flash", True, False), True, True, None,
        {"cuda_graphs": "n/a: one XLA program per step (no per-op host launches)", "fused_optimizer": "XLA-fused"},
        {
            "attention": "AI-Hypercomputer/maxtext configs/v5e/*.sh, v5p/*.sh @76bd53b0: attention='flash' (the "
            "Pallas TPU flash-attention kernel; no published TPU benchmark: the kernel table's default)",
            "tp_comm_overlap": "same scripts: LIBTPU_INIT_ARGS --xla_tpu_enable_async_collective_fusion=true "
            "--xla_tpu_enable_async_collective_fusion_multiple_steps=true --xla_tpu_overlap_compute_collective_tc=true"
            " (XLA runs the tensor-axis collectives asynchronously under the TensorCore's matmuls)",
            "fsdp": "MaxText base.yml / scripts: ici_fsdp_parallelism -1 (parameters sharded over the fsdp axis)",
            "dp_overlap": "same scripts: --xla_enable_async_all_gather=true, "
            "--xla_tpu_enable_data_parallel_all_reduce_opt=true",
        },
    ),
    "meta-internal": TransformerFramework(
        "meta-internal", GenChoices("fa2", False, False), GenChoices("fa2", False, False), False, True, None,
        {"cp_algorithm": "all-gather of K and V, then local attention (sec. 3.3.2): priced as ring attention, whose "
         "exchange the 128k-token attention hides, as the paper finds the all-gather's latency small",
         "pipeline_n": "N contiguous micro-batches, tunable (Figure 6): the interleaved 1F1B order is played"},
        {
            "attention": "not named in arXiv:2407.21783: planner's default, FlashAttention-2",
            "zero_stage": "sec. 3.3.2: 'Our use of FSDP for Llama 3 shards optimizer states and gradients, but for "
            "model shards we do not reshard after forward computation' (ZeRO-2; ZeRO-1 with pp > 1 in planner)",
            "dp_overlap": "sec. 3.3.2: FSDP 'can tolerate longer network latency by asynchronously prefetching "
            "sharded model weights and reducing gradients'",
            "layer_chunks": "sec. 3.3.2: 'we use an interleaved schedule (Narayanan et al., 2021) with V pipeline "
            "stages on one pipeline rank' and 'we reduce one Transformer layer each from the first and the last "
            "stages ... the first model chunk on the first stage has only the embedding, and the last model chunk "
            "on the last stage has only output projection and loss calculation': one layer per chunk, "
            "V = (layers + 2) / pp (Llama 3 405B: 126 layers, pp 16, V = 8)",
            "grad_reduce": "sec. 3.3.2 (Numerical stability): 'we use FP32 gradient accumulation during backward "
            "computation over multiple micro-batches and also reduce-scatter gradients in FP32 across data parallel "
            "workers in FSDP'",
        },
        zero_stage=2, layer_chunks=True, grad_reduce="fp32",
    ),
    "metaseq": TransformerFramework(
        "metaseq", GenChoices("unfused", False, False), GenChoices("unfused", False, False), True, True, None,
        {"fp16": "--memory-efficient-fp16: no fp32 master copy of the weights (Adam's m and v in fp32): priced as "
         "Adam's 12 bytes a parameter, sharded over dp", "fused_optimizer": "apex-derived FusedAdam "
         "(metaseq/modules/apex/fused_adam_cuda)", "cuda_graphs": "off (eager)",
         "loss": "--criterion vocab_parallel_cross_entropy: Megatron's vocab-parallel loss, planner's default"},
        {
            "launcher": "OPT-175B as trained (arXiv:2205.01068 sec. 2.4: FSDP with Megatron-LM tensor parallelism): "
            "facebookresearch/metaseq metaseq/launcher/opt_baselines.py @08c2274 (read in the code index) and "
            "opt_job_constants.py (175b: model_parallel 8)",
            "attention": "metaseq/modules/megatron/model/fused_softmax.py: Megatron's fused scaled upper-triangular "
            "masked softmax between the QK^T and AV GEMMs (the run predates FlashAttention)",
            "fsdp": "opt_baselines.py: --ddp-backend fully_sharded (fairscale FSDP over the data-parallel ranks)",
            "reshard_after_forward": "opt_baselines.py: --no-reshard-after-forward (its save-dir key says 'zero2')",
            "recompute": "opt_baselines.py: --checkpoint-activations (every layer's input saved, the layer recomputed)",
            "distribute_saved_activations": "opt_baselines.py: --distribute-checkpointed-activations (the saved "
            "inputs split over the --model-parallel-size ranks, Megatron's distribute_saved_activations)",
            "sequence_parallel": "not set by opt_baselines.py: Megatron-style TP all-reduces",
            "update_freq": "opt_baselines.py: --update-freq 1, --batch-size (batch tokens // (GPUs / model "
            "parallel)) // 2048: one micro-batch of the whole per-replica batch (OPT-175B: 2M tokens over 124 "
            "replicas is 8 sequences)",
            "dp_overlap": "FSDP reduce-scatters each layer's gradients from its backward hook",
        },
        reshard_after_forward=False, recompute="full", distribute_saved_activations=True, sequence_parallel=False,
        update_freq=1,
    ),
    "mtnlg": TransformerFramework(
        "mtnlg", GenChoices("unfused", False, False), GenChoices("unfused", False, False), False, None, None,
        {"micro_batch": "not stated: planner's default 1 (sec. 2.1's example: 1920 micro-batches of 1)",
         "zero_stage": "not stated: planner's default (no sharding)", "fused_optimizer": "not stated",
         "cuda_graphs": "off (eager)"},
        {
            "launcher": "MT-NLG 530B as trained (Smith et al. 2022, arXiv:2201.11990, read through the quotes of "
            "its sec. 2 in public notes; no launch script is public: microsoft/Megatron-DeepSpeed @f4157bea "
            "examples_deepspeed/azure/run-1t.sh names the 530B shape only, for a ZeRO-3 benchmark without pp)",
            "attention": "2021 Megatron (sec. 2.2: tensor slicing from Megatron-LM): fused scale-mask-softmax between "
            "the QK^T and AV GEMMs (the run predates FlashAttention)",
            "recompute": "sec. 2.1 (Memory efficiency): 'Checkpointing and recomputing the activations of each "
            "transformer block' leaves 'the activations at the boundaries between layers', batch x layers x seq "
            "x hidden x 2 bytes, 16.9 TB for 1920 x 105 x 2048 x 20480; sec. 2.4's 126/121/113 TFLOP/s at "
            "60.1/50.2/44.4 s are Megatron's recompute-inclusive 96Bslh^2(1 + s/6h + V/16lh) FLOPs",
            "sequence_parallel": "none: Megatron's sequence parallelism (arXiv:2205.05198) came after the run",
            "deepspeed_pipeline": "sec. 2.2 (as its reviews quote it): the stack 'combines pipeline parallelism "
            "and data parallelism from DeepSpeed with tensor slicing from Megatron', each replica 8-way tensor "
            "slicing in a node x 35-way pipeline: DeepSpeed's PipelineEngine (1F1B TrainSchedule, gradients "
            "reduced after the flush; see megatron-deepspeed)",
            "precision": "sec. 2.3 (quoted): 'mixed precision using 16-bit bfloat16' on Selene's DGX A100 80GB "
            "(the rows' precision column)",
        },
        recompute="full", sequence_parallel=False, deepspeed_pipeline=True,
    ),
}  # fmt: skip
"""The frameworks by the name ``--framework``, ``framework:`` and validate's column take."""

FRAMEWORK_ALIASES: dict[str, str] = {
    "nemo": "megatron-core",  # NeMo runs on Megatron-Core with Transformer Engine
    "megatron-bridge": "megatron-core",
    "llm-foundry": "composer",
    "mosaic": "composer",  # MosaicML's published MPT / llm-foundry runs
    "bloom": "megatron-deepspeed",  # BLOOM (arXiv:2211.05100): Megatron-DeepSpeed
    "korthikanti": "megatron-deepspeed",  # arXiv:2205.05198's runs: Megatron's unfused softmax on A100
    # DeepSeek-V3's HAI-LLM (arXiv:2412.19437 sec. 3.2) uses no TP; the kernel is not named
    "hai-llm": "torchtitan",
}
"""Other names (validation files, other spellings) mapped onto the entry whose choices they use.
Validate (planner.validate.frameworks) reads an alias's entry for its attention kernel, TP overlap,
one-layer-per-chunk ``vpp`` and launcher's choices (:func:`launcher_choices`: BLOOM's DeepSpeed
pipeline engine), not for its ``grad_reduce``, which only a row naming the entry itself takes."""

FRAMEWORK_NAMES = tuple(FRAMEWORKS)

HOPPER_OR_LATER = ("h100", "h800", "h200", "gh200", "b200", "gb200", "b300", "gb300")
PRE_AMPERE = ("v100", "p100", "t4")
"""Accelerator id prefixes by generation: FlashAttention and cuDNN fused attention need sm80 or later."""


def canonical(name: str) -> str:
    """The entry ``name`` uses (lower case, aliases resolved); unknown names are returned as given."""
    fw = name.strip().lower()
    return FRAMEWORK_ALIASES.get(fw, fw)


def framework(name: str) -> TransformerFramework:
    """The entry of ``name`` (an alias resolves); an unknown name is one-line input error."""
    fw = FRAMEWORKS.get(canonical(name))
    if fw is None:
        known = ", ".join([*FRAMEWORK_NAMES, *FRAMEWORK_ALIASES])
        raise PlannerInputError("framework", f"'{name}' is not a transformer framework ({known})")
    return fw


def gen_choices(fw: TransformerFramework, accelerator_id: str) -> GenChoices:
    """The framework's generation-dependent choices on ``accelerator_id``; before Ampere no fused
    attention kernel exists (FlashAttention needs sm80), so attention is unfused there."""
    acc = accelerator_id.lower()
    g = fw.hopper if acc.startswith(HOPPER_OR_LATER) else fw.ampere
    if acc.startswith(PRE_AMPERE) and g.attention != "unfused":
        g = GenChoices("unfused", g.tp_comm_overlap, g.distributed_optimizer)
    return g


def layer_chunk_vpp(num_layers: int, pp: int) -> int:
    """Virtual stages per pipeline rank when every model chunk holds one layer and the embedding and
    the output head take a chunk of their own (Llama 3, arXiv:2407.21783 sec. 3.3.2): the most
    chunks that leave each of the ``pp * vpp - 2`` others at least one layer; 1 without pipelining."""
    return max(1, (num_layers + 2) // pp) if pp > 1 else 1


def launcher_choices(
    name: str, tp: int, dp: int, pp: int = 1, global_batch: int | None = None, given: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The fields framework ``name``'s launcher fixes (FSDP reshard policy, recomputation and where
    its checkpoints live, sequence parallelism, micro-batches per step, DeepSpeed's pipeline gradient
    reduction), for those ``given`` leaves out: distributed checkpoints only under full recomputation
    with ``tp > 1`` (Megatron-LM asserts both), the micro-batch only when ``global_batch`` splits into
    :attr:`update_freq` per replica, the bf16 optimizer's all-reduce only for a ZeRO-1 ``given``."""
    fw = framework(name)
    given = given or {}
    out: dict[str, Any] = {}
    if not fw.reshard_after_forward:
        out["fsdp_reshard_after_forward"] = False
    if fw.recompute is not None:
        out["recompute"] = fw.recompute
    if fw.sequence_parallel is not None:
        out["sequence_parallel"] = fw.sequence_parallel
    recompute = given.get("recompute", out.get("recompute"))
    if fw.distribute_saved_activations and tp > 1 and recompute == "full":
        out["distribute_saved_activations"] = True
    if fw.update_freq and pp == 1 and global_batch and global_batch % (dp * fw.update_freq) == 0:
        out["micro_batch"] = global_batch // (dp * fw.update_freq)
    if fw.deepspeed_pipeline and pp > 1:  # gradients reduced after the pipeline's flush
        out["dp_overlap"] = False
        if given.get("precision", "bf16") == "bf16" and given.get("zero_stage") == 1:
            out["grad_all_reduce"] = True  # DeepSpeed's BF16_Optimizer
    return {k: v for k, v in out.items() if k not in given}


def defaults(
    name: str,
    accelerator_id: str,
    tp: int,
    dp: int,
    pp: int = 1,
    num_layers: int = 0,
    global_batch: int | None = None,
    given: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The strategy fields framework ``name`` fixes on ``accelerator_id`` for a layout of ``tp`` x ``dp``
    (and ``pp`` stages of a ``num_layers``-layer model, for a framework with :attr:`layer_chunks`;
    a ``global_batch`` for one whose launcher fixes the micro-batches per step), its launcher's choices
    depending on the fields the user ``given`` (:func:`launcher_choices`)."""
    fw = framework(name)
    g = gen_choices(fw, accelerator_id)
    fields: dict[str, Any] = {"attention": g.attention}
    if tp > 1 and (g.tp_comm_overlap or fw.name == "torchtitan"):
        # Megatron-Core's TP overlap needs sequence parallelism; torchtitan's TP plan shards the norms
        # with SequenceParallel. Megatron-LM/-DeepSpeed's --sequence-parallel is off by default.
        fields["sequence_parallel"] = True
        if g.tp_comm_overlap:
            fields["tp_comm_overlap"] = True
    if fw.fsdp:
        fields["zero_stage"] = 3
    elif g.distributed_optimizer:
        fields["zero_stage"] = 1
    elif fw.zero_stage is not None:
        fields["zero_stage"] = fw.zero_stage
    if fw.layer_chunks and pp > 1 and num_layers:
        fields["vpp"] = layer_chunk_vpp(num_layers, pp)
    if fw.dp_overlap is not None:
        fields["dp_overlap"] = fw.dp_overlap
    if fw.grad_reduce is not None:
        fields["grad_reduce_dtype"] = fw.grad_reduce
    if fw.bucket_mparams is not None:
        fields["bucket_mb"] = fw.bucket_mparams
    elif fw.name == "megatron-core":
        fields["bucket_mb"] = max(40.0, 1.0 * dp)  # DDP bucket_size = max(40M, 1M x dp) parameters
    return fields | launcher_choices(name, tp, dp, pp, global_batch, given)


def apply(strategy: Any, accelerator_id: str, dp: int, num_layers: int = 0) -> Any:
    """``strategy`` with its framework's choices in the fields the user left unset (none: unchanged)."""
    if strategy.framework is None:
        return strategy
    given = {k: getattr(strategy, k) for k in strategy.model_fields_set}
    chosen = defaults(
        strategy.framework, accelerator_id, strategy.tp, dp, strategy.pp, num_layers, strategy.global_batch, given
    )
    unset = {k: v for k, v in chosen.items() if k not in strategy.model_fields_set}
    if unset.get("zero_stage", 0) >= 2 and strategy.pp > 1:
        unset.pop("zero_stage")  # FSDP with pipeline stages: the framework shards within a stage (ZeRO-1)
        if "zero_stage" not in strategy.model_fields_set:
            unset["zero_stage"] = 1
    return strategy.model_copy(update=unset) if unset else strategy
