"""Strategy: how one training step is split over the accelerators, and the rules a layout obeys.

A :class:`Strategy` is what the user chose (possibly with ``dp`` left to be derived).
:func:`check_layout` applies every rule against a workload and a cluster and returns the
resolved strategy; each rule raises :class:`PlannerInputError` with its own message.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from planner.costs.kernels import FUSED_KERNELS
from planner.errors import PlannerInputError
from planner.hardware import Cluster
from planner.transformer.frameworks import FRAMEWORK_ALIASES, FRAMEWORK_NAMES
from planner.transformer.frameworks import apply as apply_framework
from planner.transformer.frameworks import framework as framework_entry
from planner.transformer.spec import TransformerSpec

Recompute = Literal["none", "selective", "full"]
Schedule = Literal["gpipe", "1f1b", "interleaved", "zero-bubble", "dualpipe"]
AttentionKernel = Literal["flash", "fa2", "fa3", "cudnn", "sdpa-math", "unfused"]
ATTENTION_CHOICES = ("flash", "fa2", "fa3", "cudnn", "sdpa-math", "unfused")
TrainPrecision = Literal["fp32", "tf32", "fp16", "bf16", "fp8"]
CpAlgorithm = Literal["ring", "ulysses"]
CP_ALGORITHM_CHOICES = ("ring", "ulysses")
GradReduceDtype = Literal["fp32", "param"]

RECOMPUTE_CHOICES = ("none", "selective", "full")
SCHEDULE_CHOICES = ("gpipe", "1f1b", "interleaved", "zero-bubble", "dualpipe")
PRECISION_CHOICES = ("bf16", "fp16", "fp8", "tf32", "fp32")

MAX_PASSES = 1_000_000
"""Upper bound on micro-batches x virtual stages in one simulated step."""

MAX_GRAPH_TASKS = 250_000
"""Upper bound on the tasks of one step's graph, checked before it is built (~0.1-0.3 ms a task to
build and play, so a step stays within about a minute and its memory within a few GiB)."""


def graph_tasks_bound(s: Strategy, model: TransformerSpec, micro_batches: int) -> int:
    """An upper estimate of the tasks in a step's graph (counted on the builder's output: a pipeline
    rank issues at most ~5 tasks per pass (compute, sends, receives, weight-gradient) and ~2 per
    layer (gradient buckets); FSDP without pipeline stages gathers and reduces every layer for every
    micro-batch)."""
    from planner.transformer.sharding import gathers_per_layer  # here: sharding imports this module

    layers = model.num_layers
    if gathers_per_layer(s):
        return 6 * micro_batches * layers + 2 * layers + 16
    return s.pp * (5 * micro_batches * s.vpp + 16) + 2 * layers


class Strategy(BaseModel):
    """A parallel layout and the training options that change its cost.

    Defaults are those of Megatron-LM's ``pretrain_gpt.py`` where it has one (no recomputation,
    no sequence parallelism, overlapped gradient reduction, 1F1B), so a blank field means what
    a user of that framework gets.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    tp: int = Field(default=1, ge=1, description="tensor-parallel degree")
    pp: int = Field(default=1, ge=1, description="pipeline-parallel degree")
    dp: int | None = Field(default=None, ge=1, description="data-parallel degree; default GPUs/(tp*pp*cp)")
    cp: int = Field(default=1, ge=1, description="context-parallel degree")
    ep: int = Field(default=1, ge=1, description="expert-parallel degree")
    vpp: int = Field(default=1, ge=1, description="virtual pipeline stages per pipeline rank")
    micro_batch: int = Field(default=1, ge=1, description="sequences per micro-batch")
    global_batch: int | None = Field(default=None, ge=1, description="sequences per optimizer step")
    recompute: Recompute = "none"
    sequence_parallel: bool = False
    zero_stage: int = Field(default=0, ge=0, le=3, description="ZeRO stage; FSDP full-shard = 3")
    precision: TrainPrecision = "bf16"
    dp_overlap: bool = Field(default=True, description="overlap gradient reduction with the backward pass")
    bucket_mb: float = Field(default=40.0, gt=0, description="gradient bucket size, millions of parameters")
    grad_reduce_dtype: GradReduceDtype | None = Field(
        default=None,
        description="datatype of the data-parallel gradient reduction: fp32 (FSDP2 reduce_dtype float32, Megatron's"
        " fp32 grad buffer), param (the 16-bit training dtype: DeepSpeed's default, FSDP mixed precision PURE);"
        " default: planner's rule (sharding.grad_reduce_bytes) or the framework's documented choice",
    )
    schedule: Schedule | None = Field(default=None, description="default 1f1b, interleaved when vpp > 1")
    attention: AttentionKernel = Field(
        default="flash",
        description="attention kernel: flash (= fa2, FlashAttention-2), fa3, cudnn (Transformer Engine's fused "
        "attention), sdpa-math (PyTorch's unfused math path) or unfused (Megatron's fused softmax)",
    )
    framework: str | None = Field(
        default=None,
        description="training framework whose documented choices fill the fields left unset "
        f"(planner.transformer.frameworks: {', '.join(FRAMEWORK_NAMES)}; other names: {', '.join(FRAMEWORK_ALIASES)})",
    )
    tp_comm_overlap: bool = Field(
        default=False, description="overlap tensor-parallel communication with GEMMs (Megatron-Core --tp-comm-overlap)"
    )
    fsdp_reshard_after_forward: bool = Field(
        default=True,
        description="ZeRO-3 / FSDP without pipeline stages: free each layer's gathered parameters after its forward"
        " and gather them again for its backward (False: fairscale's / metaseq's --no-reshard-after-forward, held"
        " from the forward to the backward)",
    )
    distribute_saved_activations: bool = Field(
        default=False,
        description="full recomputation: each layer's checkpointed input split over the tensor-parallel ranks and"
        " all-gathered before its recomputation (Megatron's --distribute-saved-activations, metaseq's"
        " --distribute-checkpointed-activations)",
    )
    grad_all_reduce: bool = Field(
        default=False,
        description="ZeRO-1 as DeepSpeed's BF16_Optimizer runs it under its pipeline engine: the gradients"
        " all-reduced over the data-parallel ranks (not reduce-scattered), each rank updating its shard of the"
        " fp32 master weights, the 16-bit weights then all-gathered",
    )
    cp_algorithm: CpAlgorithm = Field(
        default="ring",
        description="context parallelism: ring attention (KV exchange under attention) or DeepSpeed-Ulysses all-to-all",
    )
    moe_capacity_factor: float | None = Field(
        default=None, gt=0, description="MoE: tokens per expert capped and padded to cf x the mean; None = dropless"
    )
    moe_imbalance: float = Field(
        default=1.0, ge=1.0, description="MoE, dropless: busiest expert-parallel rank's tokens / the mean"
    )
    moe_shared_expert_overlap: bool = Field(
        default=False, description="run the shared experts under the dispatch/combine all-to-all (Megatron-Core)"
    )

    @property
    def pipeline_schedule(self) -> str:
        if self.schedule is not None:
            return self.schedule
        return "interleaved" if self.vpp > 1 else "1f1b"

    @field_validator("framework")
    @classmethod
    def _known_framework(cls, v: str | None) -> str | None:
        """A framework name planner.transformer.frameworks knows (an alias counts), lower case."""
        if v is None:
            return None
        try:
            framework_entry(v)
        except PlannerInputError as e:
            raise ValueError(e.rule) from None
        return v.strip().lower()

    @property
    def fused_attention(self) -> bool:
        """Whether attention runs as one fused kernel (else GEMMs plus a materialised softmax)."""
        return self.attention in FUSED_KERNELS

    @property
    def model_parallel(self) -> int:
        return self.tp * self.pp * self.cp

    @property
    def data_parallel(self) -> int:
        assert self.dp is not None, "strategy not resolved: call check_layout first"
        return self.dp

    @property
    def micro_batches(self) -> int:
        """Micro-batches per data-parallel replica per step."""
        assert self.global_batch is not None and self.dp is not None
        return self.global_batch // (self.dp * self.micro_batch)


def default_global_batch(dp: int, micro_batch: int, pp: int) -> int:
    """What a blank --global-batch means: 4 micro-batches per pipeline stage on each replica.

    Four per stage keeps the 1F1B bubble at or under 20 %; a real run sets its own batch.
    """
    return dp * micro_batch * 4 * pp


def _check_moe_options(s: Strategy, model: TransformerSpec) -> None:
    """The MoE knobs need an MoE model, and load imbalance applies to dropless routing only."""
    if model.is_moe:
        if s.moe_capacity_factor is not None and s.moe_imbalance > 1.0:
            raise PlannerInputError(
                "moe_imbalance",
                "applies to dropless routing only: with a capacity factor every expert is padded to capacity",
            )
        if s.moe_imbalance > 1.0 and s.ep == 1:
            raise PlannerInputError(
                "moe_imbalance",
                "is the load of the busiest expert-parallel rank: it needs ep > 1 (one rank runs every expert)",
            )
        if s.moe_shared_expert_overlap and not model.shared_experts:
            raise PlannerInputError("moe_shared_expert_overlap", f"{model.name} has no shared experts")
        most_cf = model.num_experts / model.top_k  # an expert's capacity is then every token of the batch
        if s.moe_capacity_factor is not None and s.moe_capacity_factor > most_cf:
            raise PlannerInputError(
                "moe_capacity_factor",
                f"{s.moe_capacity_factor:g} is more than num_experts/top_k = {most_cf:g}, where one expert"
                " already takes every token",
            )
        if s.moe_imbalance > s.ep:
            raise PlannerInputError(
                "moe_imbalance", f"{s.moe_imbalance:g} is more than ep = {s.ep}, where one rank gets every token"
            )
        return
    if s.moe_capacity_factor is not None:
        raise PlannerInputError("moe_capacity_factor", f"{model.name} is dense (num_experts 1): no experts to cap")
    if s.moe_imbalance != 1.0:
        raise PlannerInputError("moe_imbalance", f"{model.name} is dense (num_experts 1): no experts to balance")
    if s.moe_shared_expert_overlap:
        raise PlannerInputError("moe_shared_expert_overlap", f"{model.name} is dense: no shared experts")


def check_layout(s: Strategy, model: TransformerSpec, cluster: Cluster) -> Strategy:
    """Apply every layout rule; return the strategy with ``dp``, batch and schedule resolved."""
    n = cluster.num_gpus
    if s.framework is not None:
        dp_guess = s.dp if s.dp is not None else max(1, n // (s.tp * s.pp * s.cp))
        s = apply_framework(s, cluster.accelerator.id, dp_guess, model.num_layers)
    if s.tp_comm_overlap and s.tp == 1:
        raise PlannerInputError("tp_comm_overlap", "overlaps tensor-parallel collectives: it needs tp > 1")
    mp = s.tp * s.pp * s.cp
    if n % mp:
        field = "cp" if s.cp > 1 and n % (s.tp * s.pp) == 0 else ("pp" if s.pp > 1 and n % s.tp == 0 else "tp")
        raise PlannerInputError(field, f"tp*pp*cp = {s.tp}*{s.pp}*{s.cp} = {mp} must divide the {n} GPUs")
    dp = s.dp if s.dp is not None else n // mp
    if mp * dp != n:
        raise PlannerInputError("dp", f"tp*pp*cp*dp = {mp}*{dp} = {mp * dp} must equal the {n} GPUs")
    if model.num_heads % s.tp:
        raise PlannerInputError("tp", f"tp {s.tp} must divide num_heads {model.num_heads}")
    if s.tp > model.kv_heads and s.tp % model.kv_heads:
        raise PlannerInputError("tp", f"tp {s.tp} must be a multiple of num_kv_heads {model.kv_heads} when larger")
    if model.dense_layers and model.ffn % s.tp:
        raise PlannerInputError("tp", f"tp {s.tp} must divide ffn_hidden_size {model.ffn}")
    if model.is_moe and model.expert_ffn % s.tp:
        raise PlannerInputError("tp", f"tp {s.tp} must divide the expert ffn size {model.expert_ffn}")
    stages = s.pp * s.vpp
    if model.num_layers < stages - 2 * (stages > 1):
        # the first and last stages may hold only the embedding and the output head (Llama 3,
        # arXiv:2407.21783 sec. 3.3.2; Megatron-Core's account_for_embedding/loss_in_pipeline_split)
        raise PlannerInputError(
            "pp",
            f"num_layers {model.num_layers} is fewer than the pp*vpp = {s.pp}*{s.vpp} = {stages} pipeline stages"
            " less the two that may hold only the embedding and the output head",
        )
    if s.vpp > 1 and s.pp == 1:
        raise PlannerInputError("vpp", "interleaved stages (vpp > 1) need pipeline parallelism (pp > 1)")
    schedule = s.pipeline_schedule
    if schedule == "interleaved" and s.vpp == 1:
        raise PlannerInputError("schedule", "the interleaved 1F1B schedule needs vpp > 1")
    if schedule == "dualpipe":
        if s.vpp > 1:
            raise PlannerInputError(
                "vpp", f"DualPipe already holds two model chunks per rank: vpp must be 1, not {s.vpp}"
            )
        if s.pp < 2 or s.pp % 2:
            raise PlannerInputError("pp", f"DualPipe feeds micro-batches from both ends: pp must be even, not {s.pp}")
    if schedule != "interleaved" and s.vpp > 1:
        raise PlannerInputError("schedule", f"vpp > 1 needs the interleaved schedule, not {schedule}")
    if s.cp > 1 and s.cp_algorithm == "ring" and model.seq_len % (2 * s.cp):
        raise PlannerInputError("cp", f"seq_len {model.seq_len} must be divisible by 2*cp = {2 * s.cp}")
    if s.cp_algorithm == "ulysses" and s.cp > 1:
        if model.seq_len % s.cp:
            raise PlannerInputError("cp", f"seq_len {model.seq_len} must be divisible by cp {s.cp}")
        for what, heads in (("num_heads", model.num_heads), ("num_kv_heads", model.kv_heads)):
            if heads % (s.tp * s.cp):
                raise PlannerInputError(
                    "cp_algorithm",
                    f"Ulysses splits the attention heads over tp*cp = {s.tp}*{s.cp} = {s.tp * s.cp} ranks:"
                    f" it must divide {what} {heads} (use --cp-algorithm ring)",
                )
    _check_moe_options(s, model)
    if s.ep > 1:
        if not model.is_moe:
            raise PlannerInputError("ep", "expert parallelism needs a mixture-of-experts model (num_experts > 1)")
        if model.num_experts % s.ep:
            raise PlannerInputError("ep", f"ep {s.ep} must divide num_experts {model.num_experts}")
        if (dp * s.cp) % s.ep:
            raise PlannerInputError("ep", f"ep {s.ep} must divide dp*cp = {dp * s.cp}")
    if s.sequence_parallel and s.tp == 1:
        raise PlannerInputError("sequence_parallel", "sequence parallelism needs tp > 1")
    if s.grad_all_reduce and s.zero_stage != 1:
        raise PlannerInputError("grad_all_reduce", f"is DeepSpeed's bf16 ZeRO-1: it needs zero_stage 1, not {s.zero_stage}")
    if s.distribute_saved_activations and (s.tp == 1 or s.recompute != "full"):
        raise PlannerInputError(  # Megatron-LM's arguments.py asserts the same two conditions
            "distribute_saved_activations", "splits full recomputation's checkpoints over tp ranks: it needs tp > 1"
            f" and recompute full (tp {s.tp}, recompute {s.recompute})",
        )
    if s.zero_stage == 2 and s.pp > 1:  # ZeRO-3 with pp > 1 is FSDP as torchtitan runs it: sharding.gathers_per_layer
        raise PlannerInputError(
            "zero_stage",
            "ZeRO stage 2 cannot be combined with pp > 1 (DeepSpeed's pipeline engine allows ZeRO-1 only):"
            " use 1, or 3 for FSDP with pipeline stages",
        )
    if s.precision == "fp8" and "fp8" not in cluster.accelerator.peak_tflops:
        raise PlannerInputError("precision", f"{cluster.accelerator.id} has no FP8 support")
    gb = s.global_batch if s.global_batch is not None else default_global_batch(dp, s.micro_batch, s.pp)
    if gb % (dp * s.micro_batch):
        raise PlannerInputError(
            "global_batch",
            f"{gb} must be a multiple of dp*micro_batch = {dp}*{s.micro_batch} = {dp * s.micro_batch}",
        )
    m = gb // (dp * s.micro_batch)
    if m * s.pp * s.vpp > MAX_PASSES:
        raise PlannerInputError(
            "global_batch",
            f"{m} micro-batches per replica x {s.pp * s.vpp} stages is more than one simulated step holds"
            f" ({MAX_PASSES:,} passes); use a larger micro-batch",
        )
    tasks = graph_tasks_bound(s, model, m)
    if tasks > MAX_GRAPH_TASKS:
        raise PlannerInputError(
            "global_batch",
            f"one step of this layout is ~{tasks:,} simulated tasks ({m:,} micro-batches per replica, pp {s.pp},"
            f" vpp {s.vpp}, {model.num_layers:,} layers), more than the {MAX_GRAPH_TASKS:,} a step may hold;"
            " use a larger micro-batch or a smaller global batch",
        )
    if schedule == "dualpipe" and (m % 2 or m < 2 * s.pp):
        raise PlannerInputError(
            "global_batch",
            f"DualPipe splits the micro-batches between its two directions: micro-batches per replica ({m})"
            f" must be even and at least 2*pp = {2 * s.pp}",
        )
    if schedule == "interleaved" and m % s.pp:
        raise PlannerInputError(
            "global_batch",
            f"the interleaved schedule needs micro-batches per replica ({m}) to be a multiple of pp {s.pp}",
        )
    return s.model_copy(update={"dp": dp, "global_batch": gb, "schedule": schedule})
