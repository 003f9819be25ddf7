"""Stage 5: order the simulated layouts by the objective, and the Pareto front of time against cost.

With a fixed GPU count the cost of a step is proportional to its time, so the two objectives
agree; they part when the search also tries fewer GPUs (``min_gpus``): fewer GPUs run each step
longer but often at a higher MFU (more micro-batches per replica, a smaller bubble), so a slower
layout can be cheaper. The front keeps every layout that no other layout beats on both.
"""

from __future__ import annotations

from collections.abc import Sequence

from planner.search.types import Objective, Simulated


def step_cost(r: Simulated) -> float:
    """Cost of one step: US dollars when priced, else GPU-hours (proportional on one hardware)."""
    return r.cost.usd_per_step if r.cost.usd_per_step is not None else r.cost.gpu_hours_per_step


class ObjectiveRanker:
    """Best first by the objective; ties go to the faster, then to fewer GPUs."""

    def rank(self, results: Sequence[Simulated], objective: Objective) -> list[Simulated]:
        return sorted(results, key=lambda r: (r.objective_value(objective), r.step_time_s, r.gpus, r.layout.label))


def pareto_front(results: Sequence[Simulated]) -> list[Simulated]:
    """Layouts not dominated in (step time, step cost), fastest first; one per distinct point."""
    front: list[Simulated] = []
    best_cost = float("inf")
    for r in sorted(results, key=lambda r: (r.step_time_s, step_cost(r))):
        c = step_cost(r)
        if c < best_cost * (1 - 1e-9):
            front.append(r)
            best_cost = c
    return front
