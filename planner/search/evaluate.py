"""Stage 4: the full simulation of the finalists, spread over processes and cached by scenario.

Each finalist goes through :func:`planner.simulate.simulate_scenario` (graph + discrete events),
the same path as ``planner simulate``, so a searched layout and a simulated one give the same
number. The simulations are independent, so they run in a :class:`~concurrent.futures.ProcessPoolExecutor`
(the graph build and the event loop are pure Python and hold the GIL); the largest graphs are
submitted first so the workers finish together. Results are cached in-process, keyed on the
resolved inputs (model, cluster, strategy, calibration), so a second search, or an alternative
that is also a finalist, costs nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import Executor, as_completed
from contextlib import AbstractContextManager
from typing import Any

from planner.calibration import DEFAULT, Calibration
from planner.hardware import Cluster
from planner.pool import process_pool
from planner.search.types import Candidate, Layout, Simulated, StepCost
from planner.simulate import simulate_scenario
from planner.transformer.sharding import gathers_per_layer
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy

_CACHE: dict[tuple[str, str, str, str], Simulated] = {}
"""Full-simulation results by scenario key (see :func:`scenario_key`)."""

_CACHE_MAX = 4096


def scenario_key(
    model: TransformerSpec, cluster: Cluster, s: Strategy, calib: Calibration
) -> tuple[str, str, str, str]:
    """The resolved inputs of one simulation, as a hashable key."""
    return (model.model_dump_json(), cluster.model_dump_json(), s.model_dump_json(), calib.model_dump_json())


def clear_cache() -> None:
    """Forget cached simulations (tests, or after changing the catalog on disk)."""
    _CACHE.clear()


def simulate_one(
    model: TransformerSpec, cluster: Cluster, s: Strategy, calib: Calibration, estimate_s: float
) -> Simulated:
    """Run one full simulation and keep what the ranking and the report need (no timeline)."""
    r = simulate_scenario(model, cluster, s, calib)
    n = cluster.num_gpus
    c = r.cost
    cost = StepCost(
        gpu_hours_per_step=n * r.step_time_s / 3600.0,
        usd_per_hour=c.usd_per_hour,
        usd_per_step=c.usd_per_step,
        usd_per_million_tokens=c.usd_per_million_tokens,
        price_source=c.price_source,
        price_date=c.price_date,
    )
    resolved = Strategy.model_validate(r.scenario["strategy"])
    return Simulated(
        gpus=n,
        layout=Layout.of(resolved),
        step_time_s=r.step_time_s,
        mfu=r.mfu,
        hfu=r.hfu,
        tokens_per_s=r.tokens_per_s,
        estimate_step_time_s=estimate_s,
        breakdown=r.breakdown,
        memory=r.memory,
        cost=cost,
        uncertainty=r.uncertainty,
    )


def _work(args: tuple[Any, ...]) -> Simulated:
    return simulate_one(*args)


def _size(c: Candidate) -> int:
    """Rough graph size: passes per step (what a simulation's time grows with)."""
    s = c.strategy
    per_layer = gathers_per_layer(s)
    return s.micro_batches * s.pp * s.vpp * (20 if per_layer else 1)


class FullSimulator:
    """Simulates candidates with a pool of ``workers`` processes (default: all cores).

    ``progress`` shows a tqdm bar with an ETA on stderr, only when stderr is a terminal.
    """

    def __init__(self, workers: int | None = None, calib: Calibration = DEFAULT, progress: bool = False) -> None:
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self.calib = calib
        self.progress = progress

    def simulate(
        self, model: TransformerSpec, cluster_of: dict[int, Cluster], cands: Sequence[Candidate]
    ) -> list[Simulated]:
        """Full simulation of each candidate, in the input order."""
        keys = [scenario_key(model, cluster_of[c.gpus], c.strategy, self.calib) for c in cands]
        todo = [i for i, k in enumerate(keys) if k not in _CACHE]
        todo_unique: dict[tuple[str, str, str, str], int] = {}
        for i in todo:
            todo_unique.setdefault(keys[i], i)
        order = sorted(todo_unique.values(), key=lambda i: -_size(cands[i]))
        jobs = [
            (model, cluster_of[cands[i].gpus], cands[i].strategy, self.calib, cands[i].estimate.step_time_s)
            for i in order
        ]
        bar = self._bar(len(jobs))
        try:
            if self.workers <= 1 or len(jobs) <= 1:
                for i, job in zip(order, jobs, strict=True):
                    self._store(keys[i], _work(job))
                    bar.update(1)
            else:
                with self._pool(min(self.workers, len(jobs))) as pool:
                    futures = {pool.submit(_work, job): i for i, job in zip(order, jobs, strict=True)}
                    for fut in as_completed(futures):
                        self._store(keys[futures[fut]], fut.result())
                        bar.update(1)
        finally:
            bar.close()
        out = []
        for c, k in zip(cands, keys, strict=True):
            hit = _CACHE[k]
            out.append(hit.model_copy(update={"estimate_step_time_s": c.estimate.step_time_s}))
        return out

    @staticmethod
    def _store(key: tuple[str, str, str, str], value: Simulated) -> None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = value

    @staticmethod
    def _pool(n: int) -> AbstractContextManager[Executor]:
        return process_pool(n)  # workers die with the search (planner.pool)

    def _bar(self, total: int) -> Any:
        show = self.progress and total > 0 and sys.stderr.isatty()
        if show:
            try:
                from tqdm import tqdm

                return tqdm(total=total, desc="simulating finalists", unit="layout", file=sys.stderr, leave=False)
            except ImportError:  # pragma: no cover - tqdm is a dependency; keep working without it
                pass
        return _NoBar()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass
