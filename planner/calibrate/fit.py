"""Fit the global constants of :class:`~planner.calibration.Calibration` to measured training steps.

Input: rows in the validation schema (``../shared/validation/README.md``, transformer rows), the
user's own measured steps on one cluster. Each row is predicted with the same code as
``planner validate`` (:func:`planner.validate.row_scenario` and its per-row prediction), so a
profile changes nothing but the constants.

The fitted constants (:data:`planner.calibration.BOUNDS`, the one table profile loading also
checks) are few, global and physical; each is searched only inside its plausible physical range:

* ``gemm_mamf_fraction`` 0.60-1.00: framework GEMMs against the shape-searched best (MAMF); below
  0.6 a GEMM library is misconfigured, above 1 is impossible by definition.
* ``attention_fraction`` 0.20-0.90: fused attention against the GEMM ceiling (FlashAttention-2
  0.6-0.85, older fused kernels lower).
* ``hbm_efficiency`` 0.50-0.95: STREAM-like kernels reach 80-93 % of HBM bandwidth.
* ``ring_efficiency`` 0.50-1.00: NCCL ring bus bandwidth against the scale-up link (S2: 78-82 %).
* ``nic_efficiency`` 0.30-1.00: scale-out bus bandwidth against the NIC rate (S2: 74-85 %; lower
  on congested or misconfigured fabrics).
* ``collective_launch_s`` 2-50 us (log-spaced): NCCL launch and start-up per collective.
* ``layer_host_s`` 0-3 ms: host time to issue one layer's forward pass.

**Search.** Coordinate search: for each constant in turn, the objective is evaluated on a grid of
``grid_points`` values spanning its range (linear, or logarithmic for ``_s`` ranges over a decade)
with the others at their current values, and the best is kept; later rounds refine around the
current value with half the spacing. Objective: the mean of ``|predicted / measured - 1|`` over
the training rows, leaving out the worst-fitting 30 % (rounded down; :data:`TRIM`): an L1 loss,
trimmed so that one run no consistent model follows (vtrain_multi's ``vtrain-multi-0015``, 49 %
off) cannot drag every constant.

**Identifiability.** Before fitting, each constant is set to both ends of its range with the
others at their defaults. If no row's prediction moves (by more than 0.01 %), or the objective moves by
less than ``flat_tol`` (0.2 percentage points of the objective), the rows cannot pin it down: it
keeps its default and the report says why. If nothing is identifiable, or fewer than 3 rows can
be simulated, the fit refuses (:class:`~planner.errors.PlannerInputError`). At most one constant
is fitted per :data:`ROWS_PER_CONSTANT` (4) rows: those that lower the objective most on their own
(few rows and many constants overfit: leave-one-out shows it); a move must lower the objective by
``flat_tol`` too. Which constants are fitted is chosen once, on all training rows.

**Error figures.** ``before`` is the default calibration's error; ``after`` is measured on rows
the fit did not see: k-fold cross-validation (leave-one-out up to 10 rows, else ``folds`` folds by
position), or an explicit hold-out set. The profile itself is fitted on all rows.

**Speed.** Every (calibration, row) prediction is cached and the folds share the cache (each
evaluation covers all rows), so cross-validation costs little more than one fit when the folds
agree; predictions run in worker processes (one per core), each row in one of them (:class:`~planner.calibrate.recost.Shards`).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from planner.calibrate.recost import Shards, predict_many
from planner.calibrate.report import ConstantFit, FitReport, RowError, format_fit
from planner.calibration import BOUNDS, DEFAULT, Bound, Calibration
from planner.errors import PlannerInputError
from planner.validate import read_rows, row_scenario, summarize
from planner.validate.rows import measured_value, schema_of

__all__ = ["BOUNDS", "Bound", "ConstantFit", "Evaluator", "FitReport", "RowError", "calibrate_files",
           "calibrate_rows", "coordinate_search", "format_fit", "load_rows"]  # fmt: skip


MIN_ROWS = 3
ROWS_PER_CONSTANT = 4
"""At most one fitted constant per this many rows: fewer rows than that overfit (leave-one-out shows it)."""
SENSITIVITY_TOL = 1e-4
"""A constant whose sweep moves no row's prediction by more than this (relative) is not in the model of these rows."""


def grid(b: Bound, points: int, around: float | None = None, step_frac: float | None = None) -> list[float]:
    """Values to try in range ``b``: ``points`` spanning it, or, with ``around`` and ``step_frac``,
    the two neighbours at that fraction of the range (in log space for log ranges)."""
    lo, hi = (math.log(b.low), math.log(b.high)) if b.log else (b.low, b.high)

    def back(x: float) -> float:
        return float(f"{math.exp(x) if b.log else x:.6g}")  # 6 digits: a profile reads 0.65, not 0.6499999999999999

    if around is not None and step_frac is not None:
        c = math.log(around) if b.log else around
        d = (hi - lo) * step_frac
        return [back(v) for v in (c - d, c + d) if lo - 1e-12 <= v <= hi + 1e-12]
    if points < 2:
        return [back((lo + hi) / 2)]
    return [back(lo + (hi - lo) * i / (points - 1)) for i in range(points)]


def _key(c: Calibration) -> tuple[float, ...]:
    return tuple(round(v, 12) for v in c.constants().values())


class Evaluator:
    """Predicted step times of the rows under a calibration, cached per (calibration, row), computed
    in a process pool."""

    def __init__(self, rows: list[tuple[dict[str, str], int]], workers: int | None = None) -> None:
        self.rows = rows
        self.cache: dict[tuple[tuple[float, ...], int], tuple[float | None, str | None]] = {}
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self.predictions = 0
        self._shards: Shards | None = None
        self._stack = ExitStack()

    def __enter__(self) -> Evaluator:
        if self.workers > 1:  # workers die with the calibration (planner.pool)
            self._shards = Shards(self.workers, self._stack)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)

    def predict(self, calibs: Sequence[Calibration], idx: Sequence[int]) -> list[list[float | None]]:
        """For each calibration, the predicted step time of each row in ``idx`` (None: failed)."""
        todo = []
        seen = set()
        for c in calibs:
            k = _key(c)
            for i in idx:
                if (k, i) not in self.cache and (k, i) not in seen:
                    seen.add((k, i))
                    todo.append((k, i, c))
        jobs = [(self.rows[i][0], self.rows[i][1], c) for _, i, c in todo]
        if self._shards is not None:  # each row compiled once, in one worker, re-timed per calibration
            out = self._shards.run([i for _, i, _ in todo], jobs)
        else:
            out = predict_many(jobs)
        self.predictions += len(jobs)
        for (k, i, _), (pred, problem, _d) in zip(todo, out, strict=True):
            self.cache[(k, i)] = (pred, problem)
        return [[self.cache[(_key(c), i)][0] for i in idx] for c in calibs]


def _errors(preds: Sequence[float | None], measured: Sequence[float]) -> list[float]:
    return [math.inf if p is None else p / m - 1.0 for p, m in zip(preds, measured, strict=True)]


TRIM = 0.3
"""Share of the worst-fitting training rows the objective leaves out (rounded down)."""


def _objective(errors: Sequence[float]) -> float:
    """Trimmed mean of |error|: the worst ``TRIM`` of the rows are left out, so one run that no
    consistent model follows (a straggler, memory pressure) cannot drag every constant."""
    if not errors:
        return math.inf
    a = sorted(abs(e) for e in errors)
    keep = a[: len(a) - int(TRIM * len(a))]
    return statistics.fmean(keep)


def coordinate_search(
    ev: Evaluator,
    idx: list[int],
    objective: Callable[[list[float | None]], float],
    names: Sequence[str],
    *,
    bounds: dict[str, Bound] = BOUNDS,
    grid_points: int = 5,
    rounds: int = 2,
    start: Calibration = DEFAULT,
    min_gain: float = 1e-9,
    log: Callable[[str], None] | None = None,
) -> tuple[Calibration, float]:
    """Coordinate search of the constants ``names`` within ``bounds`` from ``start``: the
    calibration that minimises ``objective`` (of the predictions of rows ``idx``, in order), and
    its score. Round 0 tries ``grid_points`` values over each range; each later round the two
    neighbours of the current value at half the previous spacing. A move must lower the objective
    by at least ``min_gain``."""
    cur = start
    best = objective(ev.predict([cur], idx)[0])
    for rnd in range(rounds):
        changed = False
        for name in names:
            b = bounds[name]
            if rnd == 0:
                values = grid(b, grid_points)
            else:
                values = grid(b, grid_points, around=getattr(cur, name), step_frac=0.5**rnd / (grid_points - 1))
            trials = [cur.model_copy(update={name: v}) for v in values if abs(v - getattr(cur, name)) > 1e-15]
            if not trials:
                continue
            preds = ev.predict(trials, idx)
            for t, p in zip(trials, preds, strict=True):
                score = objective(p)
                if log is not None:
                    log(f"round {rnd} {name}={getattr(t, name):.4g}: {score:.4f}")
                if score < best - min_gain:
                    best, cur, changed = score, t, True
        if not changed and rnd > 0:
            break
    return cur, best


def _fit(
    ev: Evaluator,
    idx: list[int],
    measured: list[float],
    names: list[str],
    grid_points: int,
    rounds: int,
    min_gain: float,
) -> Calibration:
    """The calibration fitted to rows ``idx`` (trimmed mean |error|; see the module doc)."""
    meas = [measured[i] for i in idx]
    objective = lambda p: _objective(_errors(p, meas))  # noqa: E731
    return coordinate_search(ev, idx, objective, names, grid_points=grid_points, rounds=rounds, min_gain=min_gain)[0]


def _identifiable(
    ev: Evaluator, idx: list[int], measured: list[float], names: list[str], grid_points: int, flat_tol: float
) -> tuple[dict[str, str | None], dict[str, float]]:
    """For each constant: None if the rows pin it down, else why not; and how much the objective
    drops when it alone moves to its best value on the search's grid (its gain)."""
    out: dict[str, str | None] = {}
    gain: dict[str, float] = {}
    meas = [measured[i] for i in idx]
    base = ev.predict([DEFAULT], idx)[0]
    start = _objective(_errors(base, meas))
    for name in names:
        b = BOUNDS[name]
        # the search's first grid over the range (cached, so the search reuses these predictions):
        # the ends alone miss a constant whose best value lies inside its range
        trials = [DEFAULT.model_copy(update={name: v}) for v in grid(b, max(2, grid_points))]
        preds = ev.predict(trials, idx)
        move = max(
            (abs(p / q - 1.0) for ps in preds for p, q in zip(ps, base, strict=True) if p is not None and q),
            default=0.0,
        )
        scores = [start] + [_objective(_errors(p, meas)) for p in preds]  # the default's, then the ends'
        gain[name] = start - min(scores)
        rng = f"[{b.low:g}, {b.high:g}]"
        if move < SENSITIVITY_TOL:
            out[name] = (
                f"not identifiable from these rows: no row's predicted step time depends on it over {rng} (needs {b.hint})"
            )
        elif max(scores) - min(scores) < flat_tol:
            out[name] = (
                f"not identifiable from these rows: the fit objective (trimmed mean |error|) changes by only {100 * (max(scores) - min(scores)):.2f} "
                f"percentage points over {rng} (predictions move up to {100 * move:.1f} %; needs {b.hint})"
            )
        else:
            out[name] = None
    return out, gain


def load_rows(files: Sequence[str | Path]) -> list[tuple[dict[str, str], int, str]]:
    """Transformer rows of the files, each with its line and file, checked to be one accelerator."""
    rows: list[tuple[dict[str, str], int, str]] = []
    for f in files:
        rs = read_rows(f)
        schema = schema_of(rs[0])
        if schema.kind != "transformer":  # the fitted constants price a transformer's kernels
            raise PlannerInputError("file", f"{f} holds {schema.name} rows; calibrate takes transformer rows")
        rows += [(r, line, str(f)) for line, r in enumerate(rs, start=2)]
    return rows


def _check_rows(rows: list[tuple[dict[str, str], int, str]]) -> tuple[str, list[float]]:
    accs: dict[str, str] = {}
    measured: list[float] = []
    for r, line, f in rows:
        acc = (r.get("accelerator") or "").strip()
        accs.setdefault(acc, f"{Path(f).name} row {line} ({r.get('id', '?')})")
        measured.append(measured_value(r, "measured_step_time_s", line, f))
        row_scenario(r, line)  # a bad value fails here, with its line
    if len(accs) > 1:
        seen = ", ".join(f"{a or '(blank)'} first at {w}" for a, w in accs.items())
        raise PlannerInputError(
            "accelerator",
            f"rows name {len(accs)} accelerators ({seen}); one profile per accelerator/cluster: calibrate each apart",
        )
    return next(iter(accs)), measured


def calibrate_rows(
    rows: list[tuple[dict[str, str], int, str]],
    *,
    name: str = "calibrated",
    holdout: list[tuple[dict[str, str], int, str]] | None = None,
    constants: Sequence[str] | None = None,
    grid_points: int = 5,
    rounds: int = 2,
    folds: int = 5,
    flat_tol: float = 0.002,
    workers: int | None = None,
) -> FitReport:
    """Fit the constants (``constants``, default all of :data:`BOUNDS`) to ``rows`` ((row, line,
    file) as :func:`load_rows` gives); report errors before/after on rows the fit did not see:
    ``holdout`` when given, else cross-validation. Raises :class:`PlannerInputError` when the rows
    cannot calibrate (too few, mixed accelerators, nothing identifiable)."""
    t0 = time.perf_counter()
    names = list(constants) if constants else list(BOUNDS)
    for n in names:
        if n not in BOUNDS:
            raise PlannerInputError("constants", f"'{n}' is not a fitted constant; known: {', '.join(BOUNDS)}")
    if grid_points < 2:
        raise PlannerInputError("grid_points", f"must be at least 2, got {grid_points}")
    every = rows + (holdout or [])
    if not rows:
        raise PlannerInputError("rows", "no rows to calibrate on")
    accelerator, measured = _check_rows(every)
    with Evaluator([(r, line) for r, line, _ in every], workers) as ev:
        n_train = len(rows)
        default_preds = ev.predict([DEFAULT], list(range(len(every))))[0]
        skipped = [
            f"{every[i][0].get('id', '?')}: {ev.cache[(_key(DEFAULT), i)][1]}"
            for i, p in enumerate(default_preds)
            if p is None
        ]
        train = [i for i in range(n_train) if default_preds[i] is not None]
        test = [i for i in range(n_train, len(every)) if default_preds[i] is not None]
        if len(train) < MIN_ROWS:
            raise PlannerInputError(
                "rows", f"{len(train)} row(s) can be simulated; a calibration needs at least {MIN_ROWS} measured runs"
            )
        why, gain = _identifiable(ev, train, measured, names, grid_points, flat_tol)
        free = [n for n in names if why[n] is None]
        most = max(1, len(train) // ROWS_PER_CONSTANT)
        if len(free) > most:
            ranked = sorted(free, key=lambda n: -gain[n])
            for n in ranked[most:]:
                why[n] = (
                    f"not fitted: {len(train)} rows support at most {most} fitted constant(s) (one per "
                    f"{ROWS_PER_CONSTANT} rows); {', '.join(ranked[:most])} lowered the error most on their own"
                )
            free = [n for n in free if n in ranked[:most]]
        if not free:
            raise PlannerInputError(
                "rows",
                "no constant is identifiable from these rows (" + "; ".join(f"{n}: {why[n]}" for n in names) + ")",
            )
        if holdout:
            fold_of = {i: None for i in test}
            fitted = {None: _fit(ev, train, measured, free, grid_points, rounds, flat_tol)}
            evaluated = test
            validation = f"hold-out ({len(test)} rows)"
            final = fitted[None]
        else:
            k = len(train) if len(train) <= 10 else min(folds, len(train))
            validation = "leave-one-out" if k == len(train) else f"{k}-fold cross-validation"
            fold_of = {i: j % k for j, i in enumerate(train)}
            fitted = {}
            for f in range(k):
                tr = [i for i in train if fold_of[i] != f]
                fitted[f] = _fit(ev, tr, measured, free, grid_points, rounds, flat_tol)
            evaluated = train
            final = _fit(ev, train, measured, free, grid_points, rounds, flat_tol)
        held: list[RowError] = []
        for i in evaluated:
            after = ev.predict([fitted[fold_of[i]]], [i])[0][0]
            held.append(
                RowError(
                    id=every[i][0].get("id", f"row{every[i][1]}"),
                    measured_step_time_s=measured[i],
                    before_error=default_preds[i] / measured[i] - 1.0,  # type: ignore[operator]
                    after_error=math.inf if after is None else after / measured[i] - 1.0,
                )
            )
        in_sample = _errors(ev.predict([final], train)[0], [measured[i] for i in train])
        predictions = ev.predictions
    consts = []
    for n in names:
        b = BOUNDS[n]
        v = getattr(final, n)
        consts.append(
            ConstantFit(
                name=n,
                default=getattr(DEFAULT, n),
                value=v,
                low=b.low,
                high=b.high,
                fitted=why[n] is None,
                at_bound=why[n] is None and (abs(v - b.low) < 1e-12 or abs(v - b.high) < 1e-12),
                reason=why[n],
            )
        )
    sources = sorted({f for _, _, f in rows})
    before, after = summarize([r.before_error for r in held]), summarize([r.after_error for r in held])
    warning = None
    if (after.mean_abs_error or 0) > (before.mean_abs_error or 0):
        warning = (
            f"on rows the fit did not see, the fitted constants do worse than planner's default (mean |error| "
            f"{100 * (after.mean_abs_error or 0):.1f} % against {100 * (before.mean_abs_error or 0):.1f} %): these rows "
            "do not support a better calibration; measure more, and more varied, runs or keep the default"
        )
    return FitReport(
        name=name,
        accelerator=accelerator,
        sources=sources + [f"{f} (hold-out)" for f in sorted({f for _, _, f in holdout or []})],
        rows=len(train),
        validation=validation,
        constants=consts,
        before=before,
        after=after,
        warning=warning,
        in_sample=summarize(in_sample),
        held_out=held,
        skipped=skipped,
        predictions=predictions,
        wall_s=time.perf_counter() - t0,
    )


def calibrate_files(files: Sequence[str | Path], holdout: Sequence[str | Path] = (), **kwargs: Any) -> FitReport:
    """:func:`calibrate_rows` on the rows of CSV files (``holdout`` files: rows to report on only)."""
    return calibrate_rows(load_rows(files), holdout=load_rows(holdout) if holdout else None, **kwargs)
