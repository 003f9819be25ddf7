"""Stage 3: choose the finalists, the layouts the full simulation decides among.

The quick estimate tracks the simulation to about 1 % (median) on GPT-3 175B, so the true winner
is among the estimate's best few. To stay safe where the estimate is less sure, the finalists are

* the ``top_k`` best by the estimate at the largest GPU count, as long as they are within
  ``margin`` of the best (the ``min_k`` best always);
* the estimate's best of every (tp, pp) family that is within ``family_margin`` of the best
  (a structurally different layout the estimate might misjudge);
* the ``top_k_other`` best at each smaller GPU count (for the Pareto front of time against cost),
  preferring layouts whose step graph is small enough to simulate in about a second.
"""

from __future__ import annotations

from collections.abc import Sequence

from planner.search.types import Candidate, Objective
from planner.transformer.sharding import gathers_per_layer


def estimate_value(c: Candidate, objective: Objective) -> float:
    """The estimate's objective: seconds per step, or GPU-seconds per step (cost on one hardware)."""
    t = c.estimate.step_time_s
    return t if objective == "time" else t * c.gpus


def graph_passes(c: Candidate) -> int:
    """Rough size of the simulated step graph (what a full simulation's time grows with)."""
    s = c.strategy
    if gathers_per_layer(s):
        return s.micro_batches * 4 * 128  # per-layer gathers and reduce-scatters, order of a large model
    return s.micro_batches * s.pp * s.vpp


class TopKPruner:
    """Top-k by estimate within a margin of the best, plus the best of each competitive (tp, pp) family.

    ``margin``: a layout whose estimate is more than this fraction slower than the estimate's best
    cannot win (the estimate's error against the simulation is about 1 % median, 3 % at most on
    GPT-3 175B and Llama 3 405B), except the ``min_k`` best, which are always kept. Past those,
    layouts whose step graph exceeds ``max_passes`` passes (seconds of simulation each) are left out.
    """

    def __init__(
        self,
        top_k: int = 24,
        top_k_other: int = 3,
        family_margin: float = 0.08,
        max_total: int = 64,
        margin: float = 0.08,
        min_k: int = 6,
        max_passes: int = 40_000,
    ) -> None:
        self.top_k = top_k
        self.top_k_other = top_k_other
        self.family_margin = family_margin
        self.max_total = max_total
        self.margin = margin
        self.min_k = min_k
        self.max_passes = max_passes

    def _best(self, ranked: list[Candidate], k: int, min_k: int, objective: Objective) -> list[Candidate]:
        if not ranked:
            return []
        bound = estimate_value(ranked[0], objective) * (1 + self.margin)
        out = list(ranked[:min_k])
        for c in ranked[min_k:k]:
            if estimate_value(c, objective) <= bound and graph_passes(c) <= self.max_passes:
                out.append(c)
        return out

    def select(self, candidates: Sequence[Candidate], objective: Objective, primary_gpus: int) -> list[Candidate]:
        fit = [c for c in candidates if c.estimate.fits]
        ranked = sorted(fit, key=lambda c: estimate_value(c, objective))
        primary = [c for c in ranked if c.gpus == primary_gpus]
        chosen: list[Candidate] = self._best(primary, self.top_k, self.min_k, objective)
        if primary:
            bound = estimate_value(primary[0], objective) * (1 + self.family_margin)
            seen: set[tuple[int, int]] = set()
            for c in primary:
                fam = (c.strategy.tp, c.strategy.pp)
                if fam not in seen and estimate_value(c, objective) <= bound and graph_passes(c) <= self.max_passes:
                    chosen.append(c)
                seen.add(fam)
        for n in sorted({c.gpus for c in ranked} - {primary_gpus}, reverse=True):
            at_n = [c for c in ranked if c.gpus == n]
            small = [c for c in at_n if graph_passes(c) <= self.max_passes] or at_n
            chosen += self._best(small, self.top_k_other, 1, objective)
        out: list[Candidate] = []
        ids: set[int] = set()
        for c in chosen:
            if id(c) not in ids:
                ids.add(id(c))
                out.append(c)
        return out[: self.max_total]
