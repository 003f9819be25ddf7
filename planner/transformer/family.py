"""The transformer family behind the :class:`planner.family.WorkloadFamily` contract.

spec (planner.transformer.spec) -> strategy with defaults -> check_layout -> plan -> graph | estimate
-> result -> text. The plan is where every group, message size, pass and memory term is computed once.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from planner.calibration import Calibration
from planner.engine import Timeline
from planner.errors import PlannerInputError, pydantic_message
from planner.family import Estimate
from planner.hardware import Cluster
from planner.transformer.estimate import estimate
from planner.transformer.format import format_result
from planner.transformer.graph import StepGraph, build
from planner.transformer.plan import StepPlan, make_plan, recost_plan
from planner.transformer.result import StepResult, assemble
from planner.transformer.retime import Retimer
from planner.transformer.spec import TransformerSpec, load_model, preset_names, transformer_from_dict
from planner.transformer.strategy import Strategy, check_layout

STRATEGY_FIELDS = tuple(Strategy.model_fields)


class TransformerFamily:
    """Dense and mixture-of-experts decoder transformers (GPT, Llama, Mixtral, DeepSeek-V3, ...)."""

    kind = "transformer"
    unit = "tokens"
    strategy_fields = STRATEGY_FIELDS
    spec_type = TransformerSpec
    result_type = StepResult

    def preset_names(self) -> list[str]:
        return preset_names()

    def is_preset(self, name: str) -> bool:
        return name in preset_names()

    def accepts(self, spec: object) -> bool:
        return isinstance(spec, TransformerSpec)

    def load(self, ref: str | dict[str, Any], seq_len: int | None = None) -> TransformerSpec:
        if isinstance(ref, str):
            return load_model(ref, seq_len)
        if seq_len is not None:
            if seq_len <= 0:
                raise PlannerInputError("seq_len", f"must be a positive integer, got {seq_len}")
            ref = {**ref, "seq_len": seq_len}
        return transformer_from_dict(ref, field=f"model {ref.get('name', '')}".strip())

    def with_overrides(self, spec: TransformerSpec, seq_len: int | None = None) -> TransformerSpec:
        if seq_len is None:
            return spec
        if seq_len <= 0:
            raise PlannerInputError("seq_len", f"must be a positive integer, got {seq_len}")
        return spec.model_copy(update={"seq_len": seq_len})

    def make_strategy(self, **fields: Any) -> Strategy:
        unknown = [k for k in fields if k not in STRATEGY_FIELDS and fields[k] is not None]
        if unknown:
            raise PlannerInputError(unknown[0], f"not a strategy field (known: {', '.join(STRATEGY_FIELDS)})")
        try:
            return Strategy.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValidationError as e:
            raise pydantic_message("strategy", e) from None

    def check(self, spec: TransformerSpec, strategy: Strategy, cluster: Cluster) -> Strategy:
        return check_layout(strategy, spec, cluster)

    def plan(self, spec: TransformerSpec, strategy: Strategy, cluster: Cluster, calib: Calibration) -> StepPlan:
        return make_plan(spec, strategy, cluster, calib)

    def build_graph(self, plan: StepPlan) -> StepGraph:
        return build(plan)

    def recost(self, plan: StepPlan, graph: StepGraph, calib: Calibration) -> tuple[StepPlan, StepGraph]:
        plan = recost_plan(plan, calib)
        return plan, build(plan, graph)

    def build_retimed(self, plan: StepPlan) -> tuple[StepGraph, Retimer | None]:
        """:meth:`build_graph`, and what gives the graph's task times under any calibration as
        arrays without building it (:mod:`planner.transformer.retime`); None for a graph it cannot
        account for, which :meth:`recost` re-times instead."""
        return Retimer.build(plan)

    def estimate(self, plan: StepPlan) -> Estimate:
        return estimate(plan)

    def result(self, plan: StepPlan, graph: StepGraph, timeline: Timeline) -> StepResult:
        return assemble(plan, graph, timeline)

    def format_text(self, result: StepResult) -> str:
        return format_result(result)


FAMILY = TransformerFamily()
