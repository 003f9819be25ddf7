"""Propose: which option each table takes (TorchRec's GreedyProposer, plus a balance step).

The first proposal gives every table its cheapest option (fewest device-seconds including its
communication: table-wise for most tables). When a proposal does not fit, the table with the
largest shard moves to its next option with a smaller largest shard (row-wise, column-wise, host).
When it fits, the table whose shard dominates the slowest rank moves to an option with more, smaller
shards, and the planner keeps whichever plan is faster. Proposals stop after ``max_proposals``.
"""

from __future__ import annotations

from planner.recsys.types import Plan, ShardingOption


class GreedyProposer:
    """Cheapest option per table first, then memory- or balance-driven moves, one table at a time."""

    def __init__(self, max_proposals: int = 16) -> None:
        self.max_proposals = max_proposals  # proposals after the first one that fits
        self.fitted = 0
        self.space: list[list[ShardingOption]] = []
        self.choice: list[int] = []
        self.proposed = 0
        self.done = False

    def load(self, search_space: list[list[ShardingOption]]) -> None:
        self.space = [sorted(opts, key=lambda o: (o.perf_s, o.max_shard_hbm_bytes)) for opts in search_space]
        self.choice = [0] * len(self.space)
        self.proposed = 0
        self.fitted = 0
        self.done = False

    def propose(self) -> list[ShardingOption] | None:
        if self.done or self.fitted >= self.max_proposals or self.proposed >= 4 * len(self.space) + self.max_proposals:
            return None
        self.proposed += 1
        return [opts[c] for opts, c in zip(self.space, self.choice, strict=True)]

    def _advance(self, t: int, better: str) -> bool:
        """Move table ``t`` to the cheapest option whose largest shard is smaller (memory) or
        whose slowest shard is faster (balance)."""
        cur = self.space[t][self.choice[t]]
        best: int | None = None
        for j, o in enumerate(self.space[t]):
            if better == "memory":
                ok = o.max_shard_hbm_bytes < cur.max_shard_hbm_bytes
            else:
                ok = max(s.perf_s for s in o.shards) < 0.5 * max(s.perf_s for s in cur.shards) and o.location == "hbm"
            if ok and (best is None or o.perf_s < self.space[t][best].perf_s):
                best = j
        if best is None:
            return False
        self.choice[t] = best
        return True

    def feedback(self, plan: Plan | None) -> None:
        if plan is None:  # did not fit: shrink the table with the largest shard that can shrink
            order = sorted(range(len(self.space)), key=lambda t: -self.space[t][self.choice[t]].max_shard_hbm_bytes)
            self.done = not any(self._advance(t, "memory") for t in order)
            return
        self.fitted += 1
        slow = plan.slowest_rank()
        # the table with the largest shard on the slowest rank
        best_t, best_s = None, 0.0
        for o in plan.options:
            for s in o.shards:
                if s.rank == slow.rank and s.perf_s > best_s:
                    best_t, best_s = o.table_index, s.perf_s
        avg = sum(r.fwd_s + r.bwd_s for r in plan.ranks) / len(plan.ranks)
        if best_t is None or best_s <= avg:
            self.done = True  # the slowest rank is not one shard's fault: balanced as it gets
            return
        self.done = not self._advance(best_t, "balance")
