"""The recommendation-model family (DLRM, DCNv2) behind the :class:`planner.family.WorkloadFamily`
contract: spec -> strategy -> topology and sharding plan -> graph -> result -> text."""

from __future__ import annotations

from typing import Any

from planner.calibration import Calibration
from planner.engine import Timeline
from planner.errors import PlannerInputError
from planner.family import Estimate
from planner.hardware import Cluster
from planner.recsys.format import format_recsys
from planner.recsys.graph import RecsysGraph
from planner.recsys.result import RecsysStepResult
from planner.recsys.run import RecsysPlan, assemble, build_graph, make_recsys_strategy, plan_step
from planner.recsys.spec import RecsysSpec, is_recsys_preset, load_recsys, recsys_preset_names
from planner.recsys.strategy import RECSYS_STRATEGY_FIELDS, RecsysStrategy


class RecsysFamily:
    """Recommendation models: sharded embedding tables, data-parallel dense layers."""

    kind = "recsys"
    unit = "samples"
    strategy_fields = RECSYS_STRATEGY_FIELDS
    spec_type = RecsysSpec
    result_type = RecsysStepResult

    def preset_names(self) -> list[str]:
        return recsys_preset_names()

    def is_preset(self, name: str) -> bool:
        return is_recsys_preset(name)

    def accepts(self, spec: object) -> bool:
        return isinstance(spec, RecsysSpec)

    def load(self, ref: str | dict[str, Any], seq_len: int | None = None) -> RecsysSpec:
        return self.with_overrides(load_recsys(ref), seq_len)

    def with_overrides(self, spec: RecsysSpec, seq_len: int | None = None) -> RecsysSpec:
        if seq_len is not None:
            raise PlannerInputError("seq_len", "a recommendation model has no sequence length")
        return spec

    def make_strategy(self, **fields: Any) -> RecsysStrategy:
        return make_recsys_strategy(**fields)

    def check(self, spec: RecsysSpec, strategy: RecsysStrategy, cluster: Cluster) -> RecsysStrategy:
        return strategy  # the batch and memory rules are checked while planning the topology

    def plan(self, spec: RecsysSpec, strategy: RecsysStrategy, cluster: Cluster, calib: Calibration) -> RecsysPlan:
        return plan_step(spec, cluster, strategy, calib)

    def build_graph(self, plan: RecsysPlan) -> RecsysGraph:
        return build_graph(plan)

    def build_retimed(self, plan: RecsysPlan) -> tuple[RecsysGraph, None]:
        return build_graph(plan), None  # no retimer: calibration fits transformer rows only

    def estimate(self, plan: RecsysPlan) -> Estimate:
        from planner.engine import play

        r = assemble(plan, g := build_graph(plan), play(g.graph))
        b = r.breakdown
        return Estimate(step_time_s=r.step_time_s, compute_s=b.compute_s, bubble_s=0.0,
                        exposed_comm_s=b.exposed_comm_s, optimizer_s=b.optimizer_s,
                        peak_gib=r.memory.peak_gib, fits=r.memory.fits)  # fmt: skip

    def result(self, plan: RecsysPlan, graph: RecsysGraph, timeline: Timeline) -> RecsysStepResult:
        return assemble(plan, graph, timeline)

    def format_text(self, result: RecsysStepResult) -> str:
        return format_recsys(result)


FAMILY = RecsysFamily()
