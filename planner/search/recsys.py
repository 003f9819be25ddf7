"""Search for recommendation models: the embedding sharding and the GPU count.

The TorchRec-style planner in :mod:`planner.recsys` already picks a plan per sharding type (``auto``
searches across types per table); this stage runs it for every sharding choice at each GPU count,
simulates each plan, and ranks them by step time or by cost per billion samples.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from planner.errors import PlannerInputError

SHARDINGS = ("auto", "table", "row", "column", "data")


class RecsysCandidate(BaseModel):
    """One simulated sharding plan."""

    gpus: int
    sharding: str
    plan: dict[str, int] = Field(description="tables per sharding type in the plan")
    step_time_s: float
    samples_per_s: float
    mfu: float = Field(description="MFU of the dense part")
    peak_gib: float
    usd_per_hour: float | None
    usd_per_billion_samples: float | None
    gpu_hours_per_billion_samples: float


class RecsysSearchResult(BaseModel):
    """What ``planner search`` returns for a recommendation model."""

    model: str
    hardware: str
    global_batch: int
    objective: Literal["time", "cost"]
    gpu_counts: list[int]
    results: list[RecsysCandidate] = Field(description="simulated plans, best first")
    evaluated: int = Field(description="sharding plans simulated")
    rejected: dict[str, int] = Field(description="choices that could not run, by reason")


def search_recsys(
    model: str,
    *,
    gpus: int,
    global_batch: int | None,
    objective: Literal["time", "cost"] = "time",
    top: int = 10,
    min_gpus: int | None = None,
    **hardware: Any,
) -> RecsysSearchResult:
    """Every sharding choice at ``gpus`` and its halvings down to ``min_gpus``, simulated and ranked."""
    import planner

    if global_batch is None:
        raise PlannerInputError("global_batch", "is required for a recommendation model (samples per step)")
    counts = [gpus]
    while counts[-1] % 2 == 0 and counts[-1] // 2 >= (min_gpus or gpus):
        counts.append(counts[-1] // 2)
    results: list[RecsysCandidate] = []
    rejected: dict[str, int] = {}
    for n in counts:
        for sharding in SHARDINGS:
            try:
                r = planner.simulate(model, gpus=n, global_batch=global_batch, sharding=sharding, **hardware)
            except PlannerInputError as e:
                reason = f"{sharding}: {e}"[:120]
                rejected[reason] = rejected.get(reason, 0) + 1
                continue
            if not r.memory.fits:
                rejected["memory"] = rejected.get("memory", 0) + 1
                continue
            results.append(
                RecsysCandidate(
                    gpus=n,
                    sharding=sharding,
                    plan=dict(r.sharding.get("counts", {})),
                    step_time_s=r.step_time_s,
                    samples_per_s=r.samples_per_s,
                    mfu=r.mfu,
                    peak_gib=r.memory.peak_gib,
                    usd_per_hour=r.cost.usd_per_hour,
                    usd_per_billion_samples=r.cost.usd_per_billion_samples,
                    gpu_hours_per_billion_samples=n * 1e9 / r.samples_per_s / 3600,
                )
            )
    if not results:
        why = ", ".join(f"{k} ({v})" for k, v in sorted(rejected.items())) or "nothing to try"
        raise PlannerInputError("gpus", f"no sharding plan runs on {counts} GPUs: {why}")

    def cost_key(c: RecsysCandidate) -> float:
        return c.usd_per_billion_samples if c.usd_per_billion_samples is not None else c.gpu_hours_per_billion_samples

    results.sort(key=(lambda c: c.step_time_s) if objective == "time" else cost_key)
    hw_name = next((str(v) for k, v in hardware.items() if k in ("cluster", "instance", "accelerator") and v), "")
    return RecsysSearchResult(
        model=model,
        hardware=hw_name,
        global_batch=global_batch,
        objective=objective,
        gpu_counts=counts,
        results=results[:top],
        evaluated=len(results),
        rejected=rejected,
    )


def format_recsys_search(r: RecsysSearchResult) -> str:
    lines = [
        f"{r.model} on {r.hardware}, global batch {r.global_batch:,} samples, objective {r.objective}",
        f"simulated {r.evaluated} sharding plans at {r.gpu_counts} GPUs"
        + (f"; {sum(r.rejected.values())} could not run" if r.rejected else ""),
        "",
        f"  {'#':>2s}  {'GPUs':>5s}  {'sharding':8s}  {'plan':34s}  {'step ms':>8s}  {'M samples/s':>11s}  "
        f"{'dense MFU':>9s}  {'GiB':>5s}  {'$/B samples':>11s}",
    ]
    for i, c in enumerate(r.results, 1):
        plan = ", ".join(f"{v} {k.replace('_', '-')}" for k, v in c.plan.items())
        usd = "-" if c.usd_per_billion_samples is None else f"{c.usd_per_billion_samples:,.2f}"
        lines.append(
            f"  {i:2d}  {c.gpus:5d}  {c.sharding:8s}  {plan[:34]:34s}  {c.step_time_s * 1e3:8.2f}  "
            f"{c.samples_per_s / 1e6:11.2f}  {c.mfu:9.1%}  {c.peak_gib:5.1f}  {usd:>11s}"
        )
    if r.rejected:
        lines += ["", "could not run"] + [f"  {v:3d} x {k}" for k, v in r.rejected.items()]
    return "\n".join(lines)
