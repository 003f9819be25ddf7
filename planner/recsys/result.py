"""The result of one simulated recommendation-model step and its breakdown."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from planner.energy import Energy
from planner.engine import Timeline
from planner.result import TimelineResult, length, merge, overlap, subtract
from planner.uncertainty import Uncertainty, scenario_band


class RecsysBreakdown(BaseModel):
    """Where a recommendation step's time goes on the slowest rank; the parts sum to the step."""

    embedding_s: float = Field(description="embedding lookups, gradient scatter and sparse optimizer")
    all_to_all_exposed_s: float = Field(description="embedding all-to-all (and row-wise collectives) waited on")
    dense_compute_s: float = Field(description="bottom MLP, interaction, top MLP, casts")
    all_reduce_exposed_s: float = Field(description="dense gradient all-reduce waited on")
    optimizer_s: float = Field(description="dense optimizer step")
    host_s: float = Field(description="per-step host overhead no kernel hides")
    idle_s: float = Field(description="waiting on nothing attributable (should be ~0)")
    compute_s: float = Field(description="embedding_s + dense_compute_s")
    exposed_comm_s: float = Field(description="all_to_all_exposed_s + all_reduce_exposed_s")
    bubble_s: float = 0.0
    slowest_rank: int = Field(description="rank of the sharding plan this timeline follows")


class RecsysMemory(BaseModel):
    """Memory of the fullest accelerator (GiB) and what every rank holds."""

    embeddings_gib: float = Field(description="embedding shards: weights + sparse optimizer state (+ caches)")
    dense_gib: float = Field(description="MLP weights, gradients, optimizer state")
    activations_gib: float
    reserved_gib: float
    peak_gib: float
    capacity_gib: float
    fits: bool
    rank: int
    host_gib_per_node: float = Field(description="embedding shards kept in host memory, fullest node")
    per_rank: list[dict[str, Any]] = Field(description="rank, hbm_gib, host_gib and the table shards it holds")


class RecsysCost(BaseModel):
    usd_per_gpu_hour: float | None
    usd_per_hour: float | None
    usd_per_step: float | None
    usd_per_billion_samples: float | None
    price_source: str | None
    price_date: str | None


class RecsysStepResult(TimelineResult):
    """Prediction for one training step of a recommendation model (one optimizer step)."""

    kind: str = "recsys"
    step_time_s: float
    samples_per_s: float
    mfu: float = Field(description="dense-part model FLOPs/s / (GPUs x dense peak of the precision)")
    model_tflops_per_gpu: float
    dense_flops_per_step: float
    breakdown: RecsysBreakdown
    memory: RecsysMemory
    cost: RecsysCost
    sharding: dict[str, Any] = Field(description="the plan: options per sharding type, per-table choice")
    scenario: dict[str, Any]
    tasks: int
    calibration: str
    energy: Energy | None = Field(default=None, description="kWh, CO2, electricity $ (None: no power figure)")
    uncertainty: Uncertainty | None = Field(
        default=None, description="error band of step_time_s; samples/s spans global batch / high_s .. / low_s"
    )

    def model_post_init(self, context: Any) -> None:
        """The band of this step from the shipped residual table (planner.uncertainty): a look-up."""
        if self.uncertainty is None:
            self.uncertainty = scenario_band("recsys", self.scenario, self.step_time_s)


def recsys_breakdown(graph: Any, tl: Timeline, rank: int) -> RecsysBreakdown:
    """Attribute every instant of the step on the representative rank: compute by kind, idle time
    to the all-to-all first, then the all-reduce, then idle."""
    busy: dict[str, list[tuple[float, float]]] = {"embedding": [], "dense": [], "optimizer": [], "host": []}
    comm: dict[str, list[tuple[float, float]]] = {"a2a_comm": [], "dp_comm": []}
    for i, node in enumerate(tl.nodes):
        a = graph.nodes[node]
        iv = (tl.start_s[i], tl.end_s[i])
        if a["stream"].endswith("/compute"):
            busy.setdefault(a["kind"], []).append(iv)
        elif a["kind"] in comm:
            comm[a["kind"]].append(iv)
    all_busy = merge([iv for ivs in busy.values() for iv in ivs])
    idle = subtract([(0.0, tl.makespan_s)], all_busy)
    a2a = overlap(idle, merge(comm["a2a_comm"]))
    rest = subtract(idle, merge(comm["a2a_comm"]))
    ar = overlap(rest, merge(comm["dp_comm"]))
    emb = length(merge(busy["embedding"]))
    dense = length(merge(busy["dense"]))
    return RecsysBreakdown(
        embedding_s=emb,
        all_to_all_exposed_s=length(a2a),
        dense_compute_s=dense,
        all_reduce_exposed_s=length(ar),
        optimizer_s=length(merge(busy["optimizer"])),
        host_s=length(merge(busy["host"])),
        idle_s=max(0.0, length(rest) - length(ar)),
        compute_s=emb + dense,
        exposed_comm_s=length(a2a) + length(ar),
        slowest_rank=rank,
    )
