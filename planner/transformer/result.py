"""The result of one simulated transformer step and its breakdown.

One pydantic schema, :class:`StepResult`, is what every face prints (``--json`` dumps it).
The breakdown is read off the timeline of the busiest pipeline rank: every instant of the step is
either compute, in-line communication on the compute stream (tensor/context/expert parallel),
waiting on an exposed transfer (data-parallel reduction, pipeline send), pipeline bubble (waiting
on nothing of its own), or the optimizer; the parts add up to the step time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from planner.costs.kernels import attention_figure
from planner.energy import Energy, estimate_energy
from planner.engine import Timeline
from planner.result import TimelineResult, cluster_summary, length, merge, overlap, step_price, subtract
from planner.transformer.frameworks import framework as framework_entry
from planner.transformer.keys import Kind, Node, Phase
from planner.transformer.memory import Memory
from planner.transformer.spec import TransformerSpec
from planner.uncertainty import Uncertainty, scenario_band

if TYPE_CHECKING:
    from planner.transformer.graph import StepGraph
    from planner.transformer.plan import StepPlan


class Breakdown(BaseModel):
    """Where the step's time goes on the busiest rank; the parts sum to ``step_time_s``."""

    compute_s: float = Field(description="kernels doing model math (GEMMs, attention, norms, ...)")
    tp_comm_s: float = Field(description="tensor/sequence-parallel collectives in line with compute")
    cp_comm_s: float = Field(description="context-parallel exchange not hidden behind attention")
    ep_comm_s: float = Field(description="expert-parallel all-to-all")
    dp_comm_exposed_s: float = Field(description="data-parallel reduction / ZeRO gathers not overlapped")
    pp_comm_exposed_s: float = Field(description="pipeline sends waited on")
    exposed_comm_s: float = Field(description="sum of all communication on the critical path")
    bubble_s: float = Field(description="pipeline bubble: the rank waits for other stages")
    optimizer_s: float = Field(description="gradient-norm sync and optimizer step")
    host_overhead_s: float = Field(description="the GPU idles while the host issues small kernels")
    recompute_s: float = Field(description="part of compute_s spent recomputing activations")
    busiest_rank: int = Field(description="pipeline rank the breakdown describes")


class Cost(BaseModel):
    usd_per_gpu_hour: float | None
    usd_per_hour: float | None
    usd_per_step: float | None
    usd_per_million_tokens: float | None
    price_source: str | None
    price_date: str | None


class StepResult(TimelineResult):
    """Prediction for one training step (one optimizer step over the global batch)."""

    step_time_s: float
    mfu: float = Field(description="model FLOPs/s / (GPUs x dense peak of the precision)")
    hfu: float = Field(description="as MFU, counting recomputed FLOPs too")
    tokens_per_s: float
    samples_per_s: float
    model_tflops_per_gpu: float
    hardware_tflops_per_gpu: float
    model_flops_per_step: float
    breakdown: Breakdown
    memory: Memory
    cost: Cost
    scenario: dict[str, Any]
    tasks: int = Field(description="tasks in the simulated step graph")
    calibration: str
    energy: Energy | None = Field(default=None, description="kWh, CO2, electricity $ (None: no power figure)")
    uncertainty: Uncertainty | None = Field(default=None, description="error band of step_time_s (planner.uncertainty)")

    def model_post_init(self, context: Any) -> None:
        """The error band from the shipped table of cross-validated residuals (a look-up, no simulation)."""
        if self.uncertainty is None:
            self.uncertainty = scenario_band("transformer", self.scenario, self.step_time_s)


def breakdown(graph: Any, tl: Timeline, ranks: int) -> Breakdown:
    """Attribute every instant of the step on the busiest rank to one category."""
    per_rank: dict[int, dict[str, Any]] = {
        r: {"busy": [], "kinds": {}, "dp": [], "pp": [], "opt": 0.0, "rec": 0.0} for r in range(ranks)
    }
    sync: list[tuple[float, float]] = []  # the global gradient-norm all-reduce (no rank of its own)
    for i, node in enumerate(tl.nodes):
        a = graph.nodes[node]
        r = a.get("rank", -1)
        st, en = tl.start_s[i], tl.end_s[i]
        if r < 0:
            sync.append((st, en))
            continue
        d = per_rank[r]
        kind = a["kind"]
        if a["stream"].endswith("/compute"):
            d["busy"].append((st, en))
            if kind == Kind.OPTIMIZER:
                d["opt"] += en - st
            for k, sec in a.get("kinds", {}).items():
                d["kinds"][k] = d["kinds"].get(k, 0.0) + sec
            for p, count in a.get("passes", []):
                if p.phase is Phase.RECOMPUTE:
                    d["rec"] += p.seconds_of(Kind.COMPUTE) * count
        elif kind == Kind.DP_COMM:
            d["dp"].append((st, en))
        elif kind == Kind.PP_COMM:
            d["pp"].append((st, en))
    # incoming sends count as pipeline communication for the receiver too
    for i, node in enumerate(tl.nodes):
        if node.phase in (Phase.SEND_FORWARD, Phase.SEND_BACKWARD):
            forward = node.phase is Phase.SEND_FORWARD
            dst = node.index + 1 if forward else node.index - 1
            # the pass that waits for it (DualPipe: either way)
            recv = Node(Phase.FORWARD if forward else Phase.BACKWARD, dst, node.micro_batch)
            to = graph.nodes[recv].get("rank", dst % ranks) if recv in graph else dst % ranks
            per_rank[to]["pp"].append((tl.start_s[i], tl.end_s[i]))
    busiest = max(per_rank, key=lambda r: (length(merge(per_rank[r]["busy"])), -r))
    d = per_rank[busiest]
    span = [(0.0, tl.makespan_s)]
    busy = merge(d["busy"])
    idle = subtract(span, busy)
    dp_iv = merge(d["dp"])
    dp_exp = overlap(idle, dp_iv)
    rest = subtract(idle, dp_iv)
    # waiting on the gradient-norm sync is part of the optimizer phase, not a pipeline bubble
    sync_exp = overlap(rest, merge(sync))
    rest = subtract(rest, merge(sync))
    pp_exp = overlap(rest, merge(d["pp"]))
    bubble = length(rest) - length(pp_exp)
    kinds = d["kinds"]
    tp, cp, ep = kinds.get(Kind.TP_COMM, 0.0), kinds.get(Kind.CP_COMM, 0.0), kinds.get(Kind.EP_COMM, 0.0)
    dp_s, pp_s = length(dp_exp), length(pp_exp)
    # The optimizer phase includes waiting on the global gradient-norm sync.
    return Breakdown(
        compute_s=kinds.get(Kind.COMPUTE, 0.0),
        tp_comm_s=tp,
        cp_comm_s=cp,
        ep_comm_s=ep,
        dp_comm_exposed_s=dp_s,
        pp_comm_exposed_s=pp_s,
        exposed_comm_s=tp + cp + ep + dp_s + pp_s,
        bubble_s=max(0.0, bubble),
        optimizer_s=d["opt"] + length(sync_exp),
        host_overhead_s=kinds.get(Kind.OVERHEAD, 0.0),
        recompute_s=d["rec"],
        busiest_rank=busiest,
    )


def recompute_flops_per_token(model: TransformerSpec, recompute: str) -> float:
    """FLOPs per token that recomputation adds: the whole forward pass of the layers (full; the LM
    head is not recomputed) or the attention scores (selective)."""
    if recompute == "full":
        return model.model_flops_per_token() / 3 - 2.0 * model.vocab_size * model.hidden_size
    if recompute == "selective":
        return model.attention_flops_per_token()
    return 0.0


def assemble(plan: StepPlan, sg: StepGraph, tl: Timeline) -> StepResult:
    """The :class:`StepResult` of a planned step from its played timeline (timeline attached)."""
    model, s, cluster, calib = plan.model, plan.strategy, plan.cluster, plan.calib
    bd = breakdown(sg.graph, tl, sg.ranks)
    step = tl.makespan_s
    n = cluster.num_gpus
    tokens = s.global_batch * model.seq_len  # type: ignore[operator]
    model_flops = model.model_flops_per_token() * tokens
    hw_flops = model_flops + recompute_flops_per_token(model, s.recompute) * tokens
    peak = cluster.accelerator.peak_flops(s.precision)
    mem = plan.memory
    priced = step_price(cluster, step)
    usd_step = priced["usd_per_step"]
    cost = Cost(**priced, usd_per_million_tokens=usd_step / tokens * 1e6 if usd_step is not None else None)
    scenario = {
        "model": model.model_dump(),
        "cluster": cluster_summary(cluster),
        "strategy": s.model_dump(),
        "micro_batches_per_replica": s.micro_batches,
    }
    if s.fused_attention:  # which kernel benchmark (or which default) priced the attention
        scenario["attention_kernel"] = attention_figure(cluster.accelerator.id, s.attention).basis
    if s.framework is not None:  # the framework's documented choices the step graph does not express
        scenario["framework_not_modelled"] = dict(framework_entry(s.framework).not_modelled)
    res = StepResult(
        step_time_s=step,
        mfu=model_flops / (step * n * peak),
        hfu=hw_flops / (step * n * peak),
        tokens_per_s=tokens / step,
        samples_per_s=s.global_batch / step,  # type: ignore[operator]
        model_tflops_per_gpu=model_flops / step / n / 1e12,
        hardware_tflops_per_gpu=hw_flops / step / n / 1e12,
        model_flops_per_step=model_flops,
        breakdown=bd,
        memory=mem,
        cost=cost,
        scenario=scenario,
        tasks=sg.graph.number_of_nodes(),
        calibration=calib.name,
    )
    res.energy = estimate_energy(res, cluster)
    res.attach(sg.graph, tl)
    return res
