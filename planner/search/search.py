"""The search pipeline: enumerate -> estimate (prune by memory and time) -> simulate -> rank -> explain.

:class:`Searcher` wires the stages; each is an object passed in (see :mod:`planner.search.types`
for their contracts), so a different enumerator, estimator, pruner, simulator or ranker is a
different argument, not a branch. :func:`search` is the keyword API the CLI and the UI call.
Whole searches are cached in-process by their resolved inputs.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from pydantic import BaseModel
from typing_extensions import TypedDict, Unpack

from planner.calibration import DEFAULT, Calibration
from planner.defaults import resolve_hardware
from planner.errors import PlannerInputError
from planner.hardware import Cluster
from planner.keywords import HardwareChoice, reject_unknown, take
from planner.registry import load_model
from planner.search.enumerate import GridEnumerator
from planner.search.evaluate import FullSimulator
from planner.search.explain import (
    check,
    explain,
    memory_reason,
    signature,
    usual_alternatives,
    usual_families,
)
from planner.search.goodput import GoodputModel, run_plan
from planner.search.prune import TopKPruner, estimate_value
from planner.search.rank import ObjectiveRanker, pareto_front
from planner.search.types import (
    OBJECTIVES,
    Candidate,
    Enumerator,
    Estimator,
    Objective,
    Pruner,
    Ranker,
    SearchResult,
    SearchSpace,
    Simulated,
    Simulator,
)
from planner.transformer.estimate import AnalyticalEstimator
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy

TOKENS_PER_STEP_DEFAULT = 4_194_304
"""Default global batch: about 4M tokens per step (GPT-3 175B ran 3.2M, Llama 3 405B 4-16M)."""

CHINCHILLA_TOKENS_PER_PARAM = 20.0
"""Default run length: 20 tokens per parameter (Hoffmann et al. 2022, arXiv:2203.15556)."""

_SEARCH_CACHE: dict[tuple[Any, ...], SearchResult] = {}


class NoLayoutFits(PlannerInputError):
    """No layout of the space obeys the rules and fits in memory; the message says the closest miss."""


def require_transformer(spec: object) -> None:
    """The search covers transformers; recommendation models are sharded by their own planner."""
    if not isinstance(spec, TransformerSpec):
        raise PlannerInputError(
            "model",
            f"{getattr(spec, 'name', 'this model')} is a {getattr(spec, 'kind', 'non-transformer')} model: the layout"
            " search and compare cover transformers (planner search takes a recommendation model too)",
        )


def default_min_gpus(gpus: int, min_gpus: int | None) -> int:
    """The fewest GPUs a search tries: ``min_gpus`` when given (1 .. ``gpus``), else a quarter of
    ``gpus``, so the answer shows whether fewer GPUs run the job cheaper (the time-cost front)."""
    if min_gpus is None:
        return max(1, gpus // 4)
    if not 1 <= min_gpus <= gpus:
        raise PlannerInputError("min_gpus", f"must be between 1 and gpus {gpus}, got {min_gpus}")
    return min_gpus


MAX_DEFAULT_SEQUENCES_PER_GPU = 1024
"""Most sequences per GPU in the default batch (at least 8,192 in all: only sequences under 512 tokens reach it)."""


def default_global_batch(model: TransformerSpec, gpus: int) -> int:
    """The one default batch of search and compare: about 4M tokens per step (within 2x).

    The target is the power of two of sequences nearest 4M / seq_len. Up to that many GPUs it is
    rounded up to a multiple of the GPU count (every data-parallel degree divides it). Past it, the
    batch stays near the target: a power of two times the GPU count's odd factor (so the layouts
    whose data-parallel degree divides it remain), never one sequence per GPU (at 100,000 GPUs and
    2,048-token sequences that was 205M tokens). Sequences under 512 tokens stop at 8,192 or
    MAX_DEFAULT_SEQUENCES_PER_GPU per GPU (4M one-token sequences were millions of micro-batches).
    """
    target = 2 ** round(math.log2(max(1.0, TOKENS_PER_STEP_DEFAULT / model.seq_len)))
    target = min(target, max(8192, MAX_DEFAULT_SEQUENCES_PER_GPU * 2 ** math.ceil(math.log2(gpus))))
    if gpus <= target:
        return math.ceil(target / gpus) * gpus
    odd = gpus >> ((gpus & -gpus).bit_length() - 1)  # the GPU count without its factors of two
    return 2 ** max(0, round(math.log2(target / odd))) * odd


def resize(cluster: Cluster, gpus: int) -> Cluster:
    """The same hardware with another GPU count (validated: whole nodes)."""
    data = cluster.model_dump()
    data["num_gpus"] = gpus
    if cluster.instance is None and cluster.name.endswith(f"x {cluster.accelerator.id}"):
        data["name"] = f"{gpus}x {cluster.accelerator.id}"
    return Cluster.model_validate(data)


def gpu_counts(cluster: Cluster, min_gpus: int) -> list[int]:
    """The GPU count and its halvings down to ``min_gpus``, keeping whole nodes."""
    n = cluster.num_gpus
    g = cluster.node.gpus_per_node
    out = [n]
    k = n // 2
    while k >= max(1, min_gpus) and n % k == 0 and (k % g == 0 or k <= g):
        out.append(k)
        k //= 2
    return out


class Searcher:
    """The search pipeline with its stages; defaults are the grid, the analytical estimate,
    top-k pruning, the full simulation over all cores and the objective ranking."""

    def __init__(
        self,
        enumerator: Enumerator | None = None,
        estimator: Estimator | None = None,
        pruner: Pruner | None = None,
        simulator: Simulator | None = None,
        ranker: Ranker | None = None,
        calib: Calibration = DEFAULT,
    ) -> None:
        self.enumerator = enumerator or GridEnumerator()
        self.estimator = estimator or AnalyticalEstimator(calib)
        self.pruner = pruner or TopKPruner()
        self.simulator = simulator or FullSimulator(calib=calib)
        self.ranker = ranker or ObjectiveRanker()
        self.calib = calib

    def run(
        self,
        model: TransformerSpec,
        cluster: Cluster,
        *,
        global_batch: int | None = None,
        objective: Objective = "time",
        top: int = 10,
        min_gpus: int | None = None,
        space: SearchSpace | None = None,
        tokens: float | None = None,
        goodput: GoodputModel | None = None,
        alternatives: bool = True,
    ) -> SearchResult:
        """Search the layouts of ``model`` on ``cluster`` (and on halvings down to ``min_gpus``)."""
        t0 = time.perf_counter()
        if objective not in OBJECTIVES:
            raise PlannerInputError("objective", f"must be one of {', '.join(OBJECTIVES)}, got '{objective}'")
        if top < 1:
            raise PlannerInputError("top", f"must be a positive integer, got {top}")
        if tokens is not None and not tokens > 0:
            raise PlannerInputError("tokens", f"must be > 0, got {tokens}")
        n = cluster.num_gpus
        min_gpus = n if min_gpus is None else default_min_gpus(n, min_gpus)
        space = space or SearchSpace()
        gb = global_batch if global_batch is not None else default_global_batch(model, n)
        if gb < 1:
            raise PlannerInputError("global_batch", f"must be a positive integer, got {gb}")
        clusters = {k: (cluster if k == n else resize(cluster, k)) for k in gpu_counts(cluster, min_gpus)}

        # 1-2. enumerate and estimate every valid layout at every GPU count
        rejected: dict[str, int] = {}
        cands: list[Candidate] = []
        listed = 0
        t_enum = t_est = 0.0
        for k, cl in clusters.items():
            a = time.perf_counter()
            en = self.enumerator.enumerate(model, cl, space, gb)
            b = time.perf_counter()
            listed += en.listed
            for reason, c in en.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + c
            cands += [Candidate(gpus=k, strategy=s, estimate=self.estimator.estimate(model, cl, s)) for s in en.valid]
            t_enum += b - a
            t_est += time.perf_counter() - b
        fitting = [c for c in cands if c.estimate.fits]
        for c in cands:
            if not c.estimate.fits:  # counted by the term that overflows (activations, optimizer states, ...)
                key = f"memory: does not fit ({c.estimate.overflow_term} largest)"  # the plan's own memory
                rejected[key] = rejected.get(key, 0) + 1
        if not any(c.gpus == n for c in fitting):
            raise self._impossible(cands, rejected, cluster)

        # 3-4. prune, then simulate the finalists
        t1 = time.perf_counter()
        finalists = self.pruner.select(fitting, objective, n)
        sims = self.simulator.simulate(model, clusters, finalists)
        ranked = self.ranker.rank(sims, objective)

        # 5. alternatives of the winner (by the objective, at its own GPU count), simulated the same
        # way; they join the ranking
        alts_out = []
        if alternatives:
            strategy_of = {(r.gpus, r.layout.label): c.strategy for c, r in zip(finalists, sims, strict=True)}
            win = ranked[0]
            at_w = [c for c in cands if c.gpus == win.gpus]
            alts = self._alternatives(model, clusters[win.gpus], strategy_of[(win.gpus, win.layout.label)], at_w,
                                      objective)  # fmt: skip
            to_sim = [c for _, _, c, _ in alts if c is not None]
            alt_sims = self.simulator.simulate(model, {win.gpus: clusters[win.gpus]}, to_sim) if to_sim else []
            sims += alt_sims
            ranked = self.ranker.rank(_dedupe(sims), objective)
            it = iter(alt_sims)
            rows = [(name, s, next(it) if c is not None else None, why) for name, s, c, why in alts]
            winner = next(r for r in ranked if r.gpus == win.gpus)
            alts_out = explain(winner, rows)
        t2 = time.perf_counter()

        errors = [abs(r.estimate_step_time_s / r.step_time_s - 1) for r in sims if r.step_time_s > 0]
        best = ranked[0]
        run_tokens = tokens if tokens is not None else CHINCHILLA_TOKENS_PER_PARAM * model.num_params
        cl_best = clusters[best.gpus]
        run = run_plan(
            tokens=run_tokens,
            tokens_per_step=gb * model.seq_len,
            step_time_s=best.step_time_s,
            gpus=best.gpus,
            params=model.num_params,
            usd_per_gpu_hour=cl_best.usd_per_gpu_hour,
            model=goodput,
        )
        return SearchResult(
            model=model.name,
            hardware=cluster.name,
            accelerator=cluster.accelerator.id,
            gpus=n,
            gpu_counts=sorted(clusters, reverse=True),
            global_batch=gb,
            seq_len=model.seq_len,
            objective=objective,
            results=ranked[:top],
            pareto=pareto_front(ranked),
            best_per_gpu_count=[next(r for r in ranked if r.gpus == k) for k in sorted({r.gpus for r in ranked})],
            enumerated=listed,
            evaluated=len(cands),
            fits=len(fitting),
            fully_simulated=len(_dedupe(sims)),
            rejected=dict(sorted(rejected.items(), key=lambda kv: -kv[1])),
            alternatives=alts_out,
            run=run,
            timings_s={
                "enumerate": t_enum,
                "estimate": t_est,
                "simulate": t2 - t1,
                "total": time.perf_counter() - t0,
            },
            estimate_error=statistics.median(errors) if errors else None,
        )

    def _alternatives(
        self, model: TransformerSpec, cluster: Cluster, winner: Strategy, at_n: list[Candidate], objective: Objective
    ) -> list[tuple[str, Strategy, Candidate | None, str | None]]:
        """The usual alternatives: each family's best estimated member, then one-knob variants."""
        out: list[tuple[str, Strategy, Candidate | None, str | None]] = []
        for name, member, example in usual_families(model, cluster):
            members = [c for c in at_n if member(c.strategy) and signature(c.strategy) != signature(winner)]
            fit = [c for c in members if c.estimate.fits]
            if fit:
                best = min(fit, key=lambda c: estimate_value(c, objective))
                out.append((name, best.strategy, best, None))
            elif members:
                small = min(members, key=lambda c: c.estimate.peak_gib)
                why = memory_reason(model, cluster, small.strategy).replace(
                    "out of memory:", "out of memory, the smallest:"
                )
                out.append((name, small.strategy, None, why))
            else:
                gb = at_n[0].strategy.global_batch if at_n else None
                _, why = check(model, cluster, example.model_copy(update={"global_batch": gb}))
                out.append((name, example, None, why or "no layout of this kind in the search space"))
        for name, s in usual_alternatives(winner, model):
            resolved, why = check(model, cluster, s)
            if resolved is None:
                out.append((name, s, None, why))
                continue
            est = self.estimator.estimate(model, cluster, resolved)
            if not est.fits:
                out.append((name, resolved, None, memory_reason(model, cluster, resolved)))
                continue
            out.append((name, resolved, Candidate(gpus=cluster.num_gpus, strategy=resolved, estimate=est), None))
        return out

    @staticmethod
    def _impossible(cands: list[Candidate], rejected: dict[str, int], cluster: Cluster) -> NoLayoutFits:
        cap = cluster.accelerator.memory_gib
        at_n = [c for c in cands if c.gpus == cluster.num_gpus]
        if at_n:
            c = min(at_n, key=lambda c: c.estimate.peak_gib)
            s = c.strategy
            where = f"tp {s.tp}, pp {s.pp}, vpp {s.vpp}, micro-batch {s.micro_batch}, zero {s.zero_stage}, recompute {s.recompute}"
            return NoLayoutFits(
                "gpus",
                f"no layout fits in {cap:.0f} GiB per GPU on {cluster.num_gpus} x {cluster.accelerator.id}: the smallest"
                f" needs {c.estimate.peak_gib:.1f} GiB ({where}); use more GPUs or an accelerator with more memory",
            )
        top = sorted(rejected.items(), key=lambda kv: -kv[1])[:3]
        why = "; ".join(f"{k} ({v})" for k, v in top) or "the search space is empty"
        return NoLayoutFits("layout", f"no layout obeys the layout rules on {cluster.num_gpus} GPUs: {why}")


def _dedupe(sims: list[Simulated]) -> list[Simulated]:
    seen: set[tuple[int, str]] = set()
    out = []
    for r in sims:
        k = (r.gpus, r.layout.label)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


class SearchOptions(TypedDict, total=False):
    """The keywords of :meth:`Searcher.run` (there with their defaults), which :func:`search` passes on:
    ``global_batch`` (default :func:`default_global_batch`), ``objective`` (time|cost|...), ``top``
    (results kept), ``min_gpus`` (fewest GPUs tried), ``space`` (the grid), ``tokens`` (run length,
    default 20 per parameter), ``goodput`` (failures and checkpoints), ``alternatives`` (explain the
    winner against the usual layouts)."""

    global_batch: int | None
    objective: Objective
    top: int
    min_gpus: int | None
    space: SearchSpace | None
    tokens: float | None
    goodput: GoodputModel | None
    alternatives: bool


class SearchKwargs(HardwareChoice, SearchOptions, total=False):
    """The keywords of :func:`search` past its own: the hardware and the options of the run."""


def search(
    model: str | TransformerSpec,
    *,
    seq_len: int | None = None,
    workers: int | None = None,
    progress: bool = False,
    calibration: Calibration | None = None,
    **options: Unpack[SearchKwargs],
) -> SearchResult:
    """Find the best layouts of ``model`` on the hardware of ``options`` (:class:`HardwareChoice`)
    with the rest of ``options`` (:class:`SearchOptions`); see :class:`Searcher`.

    Defaults: the hardware of :func:`planner.defaults.default_hardware` (8 GPUs of a priced
    p5.48xlarge), ``min_gpus`` a quarter of the GPUs (:func:`default_min_gpus`), ``global_batch``
    about 4M tokens (:func:`default_global_batch`). ``workers`` processes simulate the finalists
    (default: all cores); an unknown keyword is a ``TypeError``.

    >>> r = search("gpt3-175b", accelerator="a100-sxm-80gb", gpus=1024, global_batch=1536)  # doctest: +SKIP
    >>> r.results[0].layout.label, r.results[0].step_time_s  # doctest: +SKIP
    """
    reject_unknown("search", options, SearchKwargs)
    run_options: dict[str, Any] = dict(options)
    hw = resolve_hardware(**take(run_options, HardwareChoice))  # the rest are the run's options
    spec = load_model(model, seq_len) if isinstance(model, str) else model
    require_transformer(spec)
    run_options["min_gpus"] = default_min_gpus(hw.num_gpus, run_options.get("min_gpus"))
    calib = calibration or DEFAULT
    given = sorted((k, v.model_dump_json() if isinstance(v, BaseModel) else v) for k, v in run_options.items())
    key = (spec.model_dump_json(), hw.model_dump_json(), calib.model_dump_json(), *given)
    if key in _SEARCH_CACHE:
        return _SEARCH_CACHE[key]
    searcher = Searcher(simulator=FullSimulator(workers=workers, calib=calib, progress=progress), calib=calib)
    res = _SEARCH_CACHE[key] = searcher.run(spec, hw, **run_options)
    return res
