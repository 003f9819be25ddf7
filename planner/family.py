"""The contract every workload family implements, and the registry of families.

This module plays the role ``types.py`` plays in TorchRec's sharding planner: the types that cross
the boundary between a family (:mod:`planner.transformer`, :mod:`planner.recsys`) and what sits
above it (simulate, search, sweep, validate, calibrate, the faces). Nothing above a family
branches on the kind of workload; it asks the registry for the family and calls the contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from planner.calibration import Calibration
from planner.hardware import Cluster

if TYPE_CHECKING:  # annotations only: the contract does not need the engine loaded
    from planner.engine import Timeline


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Estimate(_Model):
    """The quick estimate of one layout: closed-form step time and the memory check."""

    step_time_s: float
    compute_s: float = Field(description="forward, backward and recomputation of the busiest rank")
    bubble_s: float = Field(description="pipeline fill and drain, closed form (p-1)/v stage times")
    exposed_comm_s: float = Field(description="tensor-parallel, pipeline and data-parallel time not hidden")
    optimizer_s: float
    peak_gib: float
    fits: bool
    overflow_term: str | None = Field(
        default=None, description="when it does not fit, the kind of its largest memory term (activations, ...)"
    )


class WorkloadFamily(Protocol):
    """What a workload family (dense/MoE transformers, recommendation models, ...) provides.

    The stages, in data-flow order: load the spec -> make the strategy with its defaults -> check
    the layout against spec and cluster -> plan the step once (every group, message size, pass and
    memory term, into a typed plan) -> build the task graph from the plan (the engine plays it) or
    estimate the step in closed form from the same plan -> assemble the result -> format it.
    """

    kind: str
    """The spec's ``kind`` field: ``transformer``, ``recsys``."""
    unit: str
    """What the workload trains on, for throughput and per-run figures: ``tokens`` or ``samples``."""
    result_type: type
    """The family's result schema (a :class:`planner.result.TimelineResult`)."""
    strategy_fields: tuple[str, ...]
    """Keyword names :meth:`make_strategy` takes (the faces' flags map onto these)."""

    def preset_names(self) -> list[str]:
        """Built-in model names of this family."""
        ...

    def is_preset(self, name: str) -> bool:
        """Whether ``name`` is one of :meth:`preset_names`."""
        ...

    def accepts(self, spec: object) -> bool:
        """Whether ``spec`` is a loaded spec of this family."""
        ...

    def load(self, ref: str | dict[str, Any], seq_len: int | None = None) -> Any:
        """A spec from a preset name, a file path or a dict (YAML data); ``seq_len`` overrides the
        sequence length where the family has one, else it is refused with a clear error."""
        ...

    def with_overrides(self, spec: Any, seq_len: int | None = None) -> Any:
        """``spec`` with the caller's overrides applied (same rules as :meth:`load`)."""
        ...

    def make_strategy(self, **fields: Any) -> Any:
        """The family's strategy from keyword fields; ``None`` values take the defaults."""
        ...

    def check(self, spec: Any, strategy: Any, cluster: Cluster) -> Any:
        """The strategy resolved against spec and cluster (derived degrees, default batch), or a
        :class:`~planner.errors.PlannerInputError` naming the field and the rule."""
        ...

    def plan(self, spec: Any, strategy: Any, cluster: Cluster, calib: Calibration) -> Any:
        """Everything one step is made of, computed once, for a checked strategy."""
        ...

    def build_graph(self, plan: Any) -> StepGraph:
        """The task graph of the planned step, for :func:`planner.engine.play`."""
        ...

    def build_retimed(self, plan: Any) -> tuple[StepGraph, Any | None]:
        """:meth:`build_graph`, and a retimer that gives the graph's task times under another
        calibration as arrays without building it (``retimer.times(plan)``; calibration's fast path,
        :mod:`planner.calibrate.recost`), or None where the family (or this graph) has none and
        :meth:`recost` re-times the graph instead."""
        ...

    def recost(self, plan: Any, graph: StepGraph, calib: Calibration) -> tuple[Any, StepGraph]:
        """The plan under another calibration, and ``graph`` (built from ``plan``) with its tasks
        re-timed in place: the tasks, edges and stream orders do not depend on the constants, so
        calibration plays the graph again without building it again for each trial constant."""
        ...

    def estimate(self, plan: Any) -> Estimate:
        """The closed-form step time and memory check of the planned step (no graph)."""
        ...

    def result(self, plan: Any, graph: StepGraph, timeline: Timeline) -> Any:
        """The family's result schema from the plan and its played timeline."""
        ...

    def format_text(self, result: Any) -> str:
        """The result as the CLI prints it (100 columns)."""
        ...


class StepGraph(Protocol):
    """A built step: the networkx graph the engine plays."""

    graph: Any
