"""A whole run, not one step: tokens to steps to days and dollars, with failures and checkpoints.

Model (Daly 2006, "A higher order estimate of the optimum checkpoint interval for restart dumps",
Future Generation Computer Systems 22(3), eq. 20 for exponentially distributed failures): a job of
``W`` seconds of useful work checkpoints after every ``tau`` seconds of work, a checkpoint takes
``delta``; failures arrive at rate ``1/M``; after a failure it takes ``R`` to restart and reload,
and the work since the last checkpoint is redone. The expected wall time is

    T(tau) = M * exp(R / M) * (exp((tau + delta) / M) - 1) * W / tau

and goodput is ``W / T``. The interval that minimises it is close to Young's first-order
``sqrt(2 * delta * M)`` (Young 1974, "A first order approximation to the optimum checkpoint
interval", CACM 17(9)) and closer still to Daly's higher-order form, used here:

    tau = sqrt(2 delta M) * (1 + sqrt(delta / (2M)) / 3 + delta / (18 M)) - delta    (delta < 2M)
    tau = M                                                                          (otherwise)

Defaults, each stated:

* failures: Llama 3 (Grattafiori et al. 2024, arXiv:2407.21783, sec. 3.3.4, Table 5): 419
  unexpected interruptions in a 54-day snapshot of pre-training on 16,384 H100 GPUs, i.e.
  419 / (54 x 24 x 16,384) = 1.97e-5 per GPU-hour (a job MTBF of 3.1 h at 16,384 GPUs, 50 h at 1,024);
* checkpoint size: 14 bytes per parameter (bf16 weights 2, fp32 master weights 4, Adam m and v 8),
  Megatron's distributed checkpoint of the model and optimizer state;
* storage bandwidth: Llama 3 sec. 3.3.1, Meta's Tectonic file system sustained 2 TB/s for the
  16K-GPU cluster, i.e. 0.122 GB/s per GPU; assuming storage scales with the cluster (an
  assumption: a smaller cluster on a shared file system may see more per GPU);
* restart: 10 minutes to detect the failure, reschedule and restart the job (an assumption,
  stated; Llama 3 reports that most interruptions were handled automatically), plus reading the
  checkpoint back at the storage bandwidth.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from planner.search.types import Goodput, RunPlan

LLAMA3_UNEXPECTED_INTERRUPTIONS = 419
LLAMA3_SNAPSHOT_DAYS = 54
LLAMA3_GPUS = 16_384
DEFAULT_FAILURES_PER_GPU_HOUR = LLAMA3_UNEXPECTED_INTERRUPTIONS / (LLAMA3_SNAPSHOT_DAYS * 24 * LLAMA3_GPUS)
"""1.97e-5 interruptions per GPU-hour (Llama 3, arXiv:2407.21783 sec. 3.3.4)."""

LLAMA3_STORAGE_TB_S = 2.0
DEFAULT_STORAGE_GB_S_PER_GPU = LLAMA3_STORAGE_TB_S * 1000 / LLAMA3_GPUS
"""0.122 GB/s per GPU: Tectonic's sustained 2 TB/s over 16,384 GPUs (Llama 3 sec. 3.3.1)."""

DEFAULT_RESTART_S = 600.0
"""Detect, reschedule and restart after a failure: 10 minutes (an assumption)."""

CHECKPOINT_BYTES_PER_PARAM = 14.0
"""bf16 weights (2) + fp32 master weights (4) + Adam first and second moments (8)."""


class GoodputModel(BaseModel):
    """Failure, checkpoint and restart parameters of a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failures_per_gpu_hour: float = Field(default=DEFAULT_FAILURES_PER_GPU_HOUR, gt=0)
    storage_gb_s_per_gpu: float = Field(default=DEFAULT_STORAGE_GB_S_PER_GPU, gt=0)
    restart_s: float = Field(default=DEFAULT_RESTART_S, ge=0)
    checkpoint_bytes_per_param: float = Field(default=CHECKPOINT_BYTES_PER_PARAM, gt=0)

    def assumptions(self) -> list[str]:
        """The parameters in words, with where each default comes from."""
        out = [f"failures {self.failures_per_gpu_hour:.3g} per GPU-hour"]
        if self.failures_per_gpu_hour == DEFAULT_FAILURES_PER_GPU_HOUR:
            out[-1] += " (Llama 3, arXiv:2407.21783 sec. 3.3.4: 419 interruptions, 54 days, 16,384 GPUs)"
        out.append(
            f"checkpoint {self.checkpoint_bytes_per_param:g} bytes/parameter (bf16 weights + fp32 master + Adam)"
        )
        s = f"storage {self.storage_gb_s_per_gpu:.3g} GB/s per GPU"
        if self.storage_gb_s_per_gpu == DEFAULT_STORAGE_GB_S_PER_GPU:
            s += " (Llama 3 sec. 3.3.1: 2 TB/s for 16K GPUs; assumed to scale with the cluster)"
        out.append(s)
        r = f"restart {self.restart_s:g} s + checkpoint read"
        if self.restart_s == DEFAULT_RESTART_S:
            r += " (assumption)"
        out.append(r)
        return out

    def goodput(self, params: float, gpus: int, work_s: float) -> Goodput:
        """Expected goodput of ``work_s`` seconds of training on ``gpus`` GPUs of a ``params`` model."""
        mtbf = 3600.0 / (self.failures_per_gpu_hour * gpus)
        ckpt_bytes = params * self.checkpoint_bytes_per_param
        write = ckpt_bytes / (self.storage_gb_s_per_gpu * 1e9 * gpus)
        restart = self.restart_s + write  # read back at the same bandwidth
        tau = daly_interval_s(write, mtbf)
        wall = expected_wall_s(work_s, tau, write, mtbf, restart)
        return Goodput(
            failures_per_gpu_hour=self.failures_per_gpu_hour,
            mtbf_s=mtbf,
            checkpoint_bytes=ckpt_bytes,
            checkpoint_write_s=write,
            restart_s=restart,
            checkpoint_interval_s=tau,
            young_interval_s=young_interval_s(write, mtbf),
            goodput=work_s / wall if wall > 0 else 1.0,
            expected_failures=wall / mtbf,
            assumptions=self.assumptions(),
        )


def young_interval_s(checkpoint_s: float, mtbf_s: float) -> float:
    """Young's optimum checkpoint interval, first order: ``sqrt(2 * checkpoint * MTBF)``."""
    return math.sqrt(2.0 * checkpoint_s * mtbf_s)


def daly_interval_s(checkpoint_s: float, mtbf_s: float) -> float:
    """Daly's higher-order optimum checkpoint interval (2006, eq. 37)."""
    d, m = checkpoint_s, mtbf_s
    if d >= 2.0 * m:
        return m
    x = d / (2.0 * m)
    return math.sqrt(2.0 * d * m) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - d


def expected_wall_s(work_s: float, interval_s: float, checkpoint_s: float, mtbf_s: float, restart_s: float) -> float:
    """Expected wall time of ``work_s`` of useful work (Daly 2006, exponential failures)."""
    if work_s <= 0:
        return 0.0
    m = mtbf_s
    return m * math.exp(restart_s / m) * math.expm1((interval_s + checkpoint_s) / m) * work_s / interval_s


def run_plan(
    *,
    tokens: float,
    tokens_per_step: int,
    step_time_s: float,
    gpus: int,
    params: float,
    usd_per_gpu_hour: float | None,
    model: GoodputModel | None = None,
) -> RunPlan:
    """Tokens to steps to days and dollars, with the expected goodput of the run."""
    gm = model or GoodputModel()
    steps = max(1, math.ceil(tokens / tokens_per_step))
    compute = steps * step_time_s
    g = gm.goodput(params, gpus, compute)
    wall = compute / g.goodput
    gpu_hours = gpus * wall / 3600.0
    usd = gpu_hours * usd_per_gpu_hour if usd_per_gpu_hour is not None else None
    return RunPlan(
        tokens=tokens,
        tokens_per_step=tokens_per_step,
        steps=steps,
        compute_s=compute,
        wall_s=wall,
        compute_days=compute / 86400.0,
        wall_days=wall / 86400.0,
        gpu_hours=gpu_hours,
        usd=usd,
        usd_without_failures=gpus * compute / 3600.0 * usd_per_gpu_hour if usd_per_gpu_hour is not None else None,
        usd_per_million_tokens=usd / tokens * 1e6 if usd is not None else None,
        goodput=g,
    )
