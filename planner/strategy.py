"""Strategy: how one training step is split over the accelerators, and the rules a layout obeys.

A :class:`Strategy` is what the user chose (possibly with ``dp`` left to be derived).
:func:`check_layout` applies every rule against a workload and a cluster and returns the
resolved strategy; each rule raises :class:`PlannerInputError` with its own message.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from planner.errors import PlannerInputError
from planner.hardware import Cluster
from planner.workloads.transformer import TransformerSpec

Recompute = Literal["none", "selective", "full"]
Schedule = Literal["gpipe", "1f1b", "interleaved", "zero-bubble"]
AttentionKernel = Literal["flash", "unfused"]
TrainPrecision = Literal["fp32", "tf32", "fp16", "bf16", "fp8"]

RECOMPUTE_CHOICES = ("none", "selective", "full")
SCHEDULE_CHOICES = ("gpipe", "1f1b", "interleaved", "zero-bubble")
PRECISION_CHOICES = ("bf16", "fp16", "fp8", "tf32", "fp32")

MAX_PASSES = 1_000_000
"""Upper bound on micro-batches x virtual stages in one simulated step (keeps a step under ~1 min)."""


class Strategy(BaseModel):
    """A parallel layout and the training options that change its cost.

    Defaults are those of Megatron-LM's ``pretrain_gpt.py`` where it has one (no recomputation,
    no sequence parallelism, overlapped gradient reduction, 1F1B), so a blank field means what
    a user of that framework gets.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    schedule: Schedule | None = Field(default=None, description="default 1f1b, interleaved when vpp > 1")
    attention: AttentionKernel = Field(default="flash", description="fused (FlashAttention) or unfused")
    tp_comm_overlap: bool = Field(
        default=False, description="overlap tensor-parallel communication with GEMMs (Megatron-Core --tp-comm-overlap)"
    )

    @property
    def pipeline_schedule(self) -> str:
        if self.schedule is not None:
            return self.schedule
        return "interleaved" if self.vpp > 1 else "1f1b"

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


def check_layout(s: Strategy, model: TransformerSpec, cluster: Cluster) -> Strategy:
    """Apply every layout rule; return the strategy with ``dp``, batch and schedule resolved."""
    n = cluster.num_gpus
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
    if model.ffn % s.tp:
        raise PlannerInputError("tp", f"tp {s.tp} must divide ffn_hidden_size {model.ffn}")
    stages = s.pp * s.vpp
    if model.num_layers < stages:
        raise PlannerInputError(
            "pp",
            f"num_layers {model.num_layers} is fewer than the pp*vpp = {s.pp}*{s.vpp} = {stages} pipeline stages",
        )
    if s.vpp > 1 and s.pp == 1:
        raise PlannerInputError("vpp", "interleaved stages (vpp > 1) need pipeline parallelism (pp > 1)")
    schedule = s.pipeline_schedule
    if schedule == "interleaved" and s.vpp == 1:
        raise PlannerInputError("schedule", "the interleaved 1F1B schedule needs vpp > 1")
    if schedule != "interleaved" and s.vpp > 1:
        raise PlannerInputError("schedule", f"vpp > 1 needs the interleaved schedule, not {schedule}")
    if s.cp > 1 and model.seq_len % (2 * s.cp):
        raise PlannerInputError("cp", f"seq_len {model.seq_len} must be divisible by 2*cp = {2 * s.cp}")
    if s.ep > 1:
        if not model.is_moe:
            raise PlannerInputError("ep", "expert parallelism needs a mixture-of-experts model (num_experts > 1)")
        if model.num_experts % s.ep:
            raise PlannerInputError("ep", f"ep {s.ep} must divide num_experts {model.num_experts}")
        if (dp * s.cp) % s.ep:
            raise PlannerInputError("ep", f"ep {s.ep} must divide dp*cp = {dp * s.cp}")
    if s.sequence_parallel and s.tp == 1:
        raise PlannerInputError("sequence_parallel", "sequence parallelism needs tp > 1")
    if s.zero_stage >= 2 and s.pp > 1:
        raise PlannerInputError("zero_stage", f"ZeRO stage {s.zero_stage} cannot be combined with pp > 1")
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
    if schedule == "interleaved" and m % s.pp:
        raise PlannerInputError(
            "global_batch",
            f"the interleaved schedule needs micro-batches per replica ({m}) to be a multiple of pp {s.pp}",
        )
    return s.model_copy(update={"dp": dp, "global_batch": gb, "schedule": schedule})
