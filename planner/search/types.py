"""Contracts between the search stages: what each stage takes and returns (pydantic).

The search is a pipeline of swappable stages, in the style of TorchRec's sharding planner
(enumerator -> estimator -> proposer/pruner -> simulator -> ranker):

* :class:`Enumerator` lists every layout of a :class:`SearchSpace` and checks each against the
  layout rules (:func:`planner.transformer.strategy.check_layout`) and memory;
* :class:`Estimator` gives a fast closed-form step time for a valid layout (no graph);
* :class:`Pruner` picks the finalists that can still win;
* :class:`Simulator` runs the full simulation (graph + discrete events) on the finalists;
* :class:`Ranker` orders the simulated layouts by the objective.

A stage is replaced by passing another object with the same method to
:class:`planner.search.search.Searcher`; nothing branches on the kind of stage.
Units are in the field names (``_s`` seconds, ``_gib`` 2**30 bytes, ``usd`` US dollars).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from planner.family import Estimate
from planner.hardware import Cluster
from planner.transformer.memory import Memory
from planner.transformer.result import Breakdown
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import AttentionKernel, Recompute, Strategy, TrainPrecision
from planner.uncertainty import Uncertainty

Objective = Literal["time", "cost"]
OBJECTIVES: tuple[str, ...] = ("time", "cost")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchSpace(_Model):
    """What the enumerator varies. ``None`` means the default range, derived from model and cluster."""

    tp: tuple[int, ...] | None = Field(
        default=None, description="tensor-parallel degrees; default powers of 2 up to the scale-up island"
    )
    pp: tuple[int, ...] | None = Field(
        default=None, description="pipeline degrees; default every divisor of GPUs/tp that splits the layers"
    )
    max_vpp: int = Field(default=8, ge=1, description="most virtual stages per pipeline rank (interleaved 1F1B)")
    micro_batch: tuple[int, ...] = Field(default=(1, 2, 4, 8), description="sequences per micro-batch")
    recompute: tuple[Recompute, ...] = ("none", "selective", "full")
    zero_stage: tuple[int, ...] = Field(
        default=(0, 1, 2, 3),
        description="ZeRO stages (2 needs pp 1; 3 with pp > 1 is FSDP that keeps a stage gathered)",
    )
    sequence_parallel: tuple[bool, ...] = (False, True)
    cp: tuple[int, ...] = Field(default=(1,), description="context-parallel degrees (only when asked)")
    ep: tuple[int, ...] | None = Field(default=None, description="expert-parallel degrees; default for MoE models")
    zero_bubble: tuple[bool, ...] = Field(
        default=(False, True),
        description="also try the zero-bubble schedule (ZB-H1) where pp > 1 without interleaving",
    )
    precision: TrainPrecision = "bf16"
    attention: AttentionKernel | None = Field(default=None, description="attention kernel; default the framework's")
    framework: str | None = Field(
        default=None, description="training framework (fixed, not searched): fills the fields the search leaves unset"
    )


class Layout(_Model):
    """A resolved parallel layout: the strategy fields a search varies."""

    tp: int
    pp: int
    dp: int
    cp: int = 1
    ep: int = 1
    vpp: int = 1
    micro_batch: int
    global_batch: int
    recompute: Recompute
    zero_stage: int
    sequence_parallel: bool
    schedule: str
    precision: str = "bf16"

    @classmethod
    def of(cls, s: Strategy) -> Layout:
        """The layout of a resolved strategy (after :func:`planner.transformer.strategy.check_layout`)."""
        return cls(
            tp=s.tp,
            pp=s.pp,
            dp=s.data_parallel,
            cp=s.cp,
            ep=s.ep,
            vpp=s.vpp,
            micro_batch=s.micro_batch,
            global_batch=s.global_batch or 0,
            recompute=s.recompute,
            zero_stage=s.zero_stage,
            sequence_parallel=s.sequence_parallel,
            schedule=s.pipeline_schedule,
            precision=s.precision,
        )

    @property
    def label(self) -> str:
        """Short human form: ``tp8 pp16 vpp2 dp8 mb1 rc=full z1 sp`` (``zb``: zero-bubble schedule)."""
        parts = [f"tp{self.tp}", f"pp{self.pp}"]
        if self.vpp > 1:
            parts.append(f"vpp{self.vpp}")
        parts.append(f"dp{self.dp}")
        if self.cp > 1:
            parts.append(f"cp{self.cp}")
        if self.ep > 1:
            parts.append(f"ep{self.ep}")
        parts += [f"mb{self.micro_batch}", f"rc={self.recompute}", f"z{self.zero_stage}"]
        if self.sequence_parallel:
            parts.append("sp")
        if self.schedule == "zero-bubble":
            parts.append("zb")
        return " ".join(parts)


class Candidate(BaseModel):
    """A valid layout with its estimate (not frozen: it carries the resolved Strategy)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    gpus: int
    strategy: Strategy
    estimate: Estimate


class StepCost(_Model):
    """What one step costs: always in GPU-hours, in US dollars when the hardware has a price."""

    gpu_hours_per_step: float
    usd_per_hour: float | None = None
    usd_per_step: float | None = None
    usd_per_million_tokens: float | None = None
    price_source: str | None = None
    price_date: str | None = None


class Simulated(_Model):
    """A fully simulated layout: the figures the ranking uses."""

    gpus: int
    layout: Layout
    step_time_s: float
    mfu: float
    hfu: float
    tokens_per_s: float
    estimate_step_time_s: float = Field(description="what the quick estimate predicted (for its accuracy)")
    breakdown: Breakdown
    memory: Memory
    cost: StepCost
    uncertainty: Uncertainty | None = Field(default=None, description="error band of step_time_s (planner.uncertainty)")

    def objective_value(self, objective: Objective) -> float:
        """The value ranked on: seconds per step, or dollars (GPU-hours when unpriced) per step."""
        if objective == "time":
            return self.step_time_s
        c = self.cost
        return c.usd_per_step if c.usd_per_step is not None else c.gpu_hours_per_step


class Alternative(_Model):
    """A usual alternative layout and why it loses to the winner."""

    name: str
    layout: str
    step_time_s: float | None = None
    slower_by: float | None = Field(default=None, description="step time / winner's - 1")
    reason: str


class Goodput(_Model):
    """Failures, checkpoints and restarts over a whole run (see :mod:`planner.search.goodput`)."""

    failures_per_gpu_hour: float
    mtbf_s: float = Field(description="mean time between failures of the whole job")
    checkpoint_bytes: float
    checkpoint_write_s: float
    restart_s: float = Field(description="per failure: reschedule, restart and reload the checkpoint")
    checkpoint_interval_s: float = Field(description="optimal interval of useful work between checkpoints (Daly)")
    young_interval_s: float = Field(description="Young's first-order interval sqrt(2 * write * MTBF)")
    goodput: float = Field(description="useful training time / expected wall time")
    expected_failures: float
    assumptions: list[str]


class RunPlan(_Model):
    """Tokens to steps to days and dollars, with and without failures."""

    tokens: float
    tokens_per_step: int
    steps: int
    compute_s: float = Field(description="steps x step time: the run without failures or checkpoints")
    wall_s: float = Field(description="expected wall time with failures, checkpoints and restarts")
    compute_days: float
    wall_days: float
    gpu_hours: float = Field(description="GPUs x expected wall time")
    usd: float | None = Field(default=None, description="expected cost of the run, failures included")
    usd_without_failures: float | None = None
    usd_per_million_tokens: float | None = Field(default=None, description="expected cost per million trained tokens")
    goodput: Goodput


class SearchResult(_Model):
    """What ``planner search`` returns."""

    model: str
    hardware: str
    accelerator: str
    gpus: int = Field(description="the most GPUs the search could use")
    gpu_counts: list[int] = Field(description="GPU counts searched (the Pareto front trades them)")
    global_batch: int
    seq_len: int
    objective: Objective
    results: list[Simulated] = Field(description="fully simulated layouts, best first")
    pareto: list[Simulated] = Field(description="no other layout is both faster and cheaper")
    best_per_gpu_count: list[Simulated] = Field(
        default_factory=list, description="the best simulated layout (by the objective) at each GPU count searched"
    )
    enumerated: int = Field(description="layouts listed by the enumerator")
    evaluated: int = Field(description="valid layouts assessed by the quick estimate and the memory check")
    fits: int = Field(description="of those, layouts that fit in memory")
    fully_simulated: int = Field(description="finalists run through the full simulation")
    rejected: dict[str, int] = Field(description="layouts dropped, by reason")
    alternatives: list[Alternative]
    run: RunPlan | None = None
    timings_s: dict[str, float]
    estimate_error: float | None = Field(
        default=None, description="median |estimate / simulation - 1| over the finalists"
    )


class CompareRow(_Model):
    """One instance type in ``planner compare``."""

    instance: str
    provider: str | None = None
    accelerator: str
    gpus: int | None = None
    fits: bool
    reason: str | None = Field(default=None, description="why no layout runs, when none does")
    layout: Layout | None = None
    step_time_s: float | None = None
    uncertainty: Uncertainty | None = Field(default=None, description="error band of step_time_s (planner.uncertainty)")
    mfu: float | None = None
    usd_per_gpu_hour: float | None = None
    usd_per_million_tokens: float | None = Field(default=None, description="failures and checkpoints included")
    run: RunPlan | None = None
    price_source: str | None = None
    price_date: str | None = None
    evaluated: int = 0
    meets_deadline: bool | None = Field(
        default=None, description="the run's wall time is within deadline_days; null when no deadline was asked"
    )
    within_budget: bool | None = Field(
        default=None, description="the run's cost is within budget_usd; null when no budget was asked or no price"
    )


class CompareResult(_Model):
    """What ``planner compare`` returns: one row per instance type, best first."""

    model: str
    tokens: float
    objective: Objective
    results: list[CompareRow]
    deadline_days: float | None = Field(default=None, description="the deadline asked, if any")
    budget_usd: float | None = Field(default=None, description="the budget asked, if any")


# ------------------------------------------------------------------------------------ stages


class Enumeration(BaseModel):
    """The enumerator's output: valid layouts (rules pass) and the count of those dropped, by reason."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    gpus: int
    listed: int
    valid: list[Strategy]
    rejected: dict[str, int]


class Enumerator(Protocol):
    """Lists every layout of a space on a cluster, keeping those that obey the layout rules."""

    def enumerate(
        self, model: TransformerSpec, cluster: Cluster, space: SearchSpace, global_batch: int
    ) -> Enumeration: ...


class Estimator(Protocol):
    """A fast step-time and memory estimate of one valid layout."""

    def estimate(self, model: TransformerSpec, cluster: Cluster, strategy: Strategy) -> Estimate: ...


class Pruner(Protocol):
    """Chooses, among estimated candidates that fit, those worth a full simulation."""

    def select(self, candidates: Sequence[Candidate], objective: Objective, primary_gpus: int) -> list[Candidate]: ...


class Simulator(Protocol):
    """Runs the full simulation of candidates (possibly in parallel, possibly cached)."""

    def simulate(
        self, model: TransformerSpec, cluster_of: dict[int, Cluster], cands: Sequence[Candidate]
    ) -> list[Simulated]: ...


class Ranker(Protocol):
    """Orders simulated layouts, best first."""

    def rank(self, results: Sequence[Simulated], objective: Objective) -> list[Simulated]: ...
