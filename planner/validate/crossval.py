"""Cross-validation by group: how well planner predicts hardware, frameworks and sources it was not fitted on.

``planner validate --cross-validate accelerator|framework|source FILE...`` groups the rows of the files
(by the row's ``accelerator`` id, its ``framework`` column, or its source, :func:`source_key`). For each
group it refits the global constants (:data:`planner.calibration.BOUNDS`) on the transformer rows of
all *other* groups, with :mod:`planner.calibrate.fit`'s objective, identifiability test and limit of one
constant per four rows, and predicts the held-out group with them. Per group it reports the rows and the
median / mean / max ``|predicted / measured - 1|`` before (planner's default constants, which saw every
row of the shared files) and after (constants that never saw the group). A group with fewer than
:data:`MIN_GROUP_ROWS` rows, or whose complement has too few rows to fit, is reported with the default
constants and says so.

**Bounded cost.** The refits share one :class:`~planner.calibrate.fit.Evaluator` (its process pool and
its cache of (calibration, row) predictions: the identifiability sweep from the default constants is the
same for every group, so it is paid once). Each refit uses at most ``max_rows_per_fit`` training rows: a
fixed sample drawn round-robin over sources (so 720 rows of one source do not crowd out the others),
less the held-out group. The held-out group is always predicted in full. Recommendation rows are never
fitted on (the constants price a transformer's kernels) but are predicted with each refit.

The signed residuals of the held-out predictions are what :mod:`planner.uncertainty`'s band is made of
(:func:`write_uncertainty`).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from planner.calibrate.fit import MIN_ROWS, ROWS_PER_CONSTANT, Evaluator, _fit, _identifiable
from planner.calibration import BOUNDS, DEFAULT, Calibration
from planner.errors import PlannerInputError
from planner.validate.report import Summary, summarize
from planner.validate.rows import measured_value, read_rows, schema_of, source_key
from planner.validate.runner import predict_all

GROUPINGS = ("accelerator", "framework", "source")
"""What ``--cross-validate`` may group rows by."""

MIN_GROUP_ROWS = MIN_ROWS
"""A group with fewer rows is not refit without (the fit's own minimum): it is reported with the defaults."""


def group_of(row: dict[str, str], by: str) -> str:
    """The group a row belongs to: its accelerator id, framework (blank: 'unspecified'), or source key."""
    if by == "accelerator":
        return (row.get("accelerator") or "").strip() or "unspecified"
    if by == "framework":
        return (row.get("framework") or "").strip().lower() or "unspecified"
    if by == "source":
        return source_key(row.get("source") or "")
    raise PlannerInputError("cross-validate", f"must be one of {', '.join(GROUPINGS)}, got '{by}'")


class CVRow(BaseModel):
    """One row's held-out prediction (its residual feeds the uncertainty band)."""

    id: str
    file: str
    kind: str = Field(description="workload family: transformer or recsys")
    group: str
    accelerator: str
    framework: str | None
    before_error: float | None = Field(description="predicted / measured - 1 with the default constants")
    after_error: float | None = Field(description="predicted / measured - 1 with constants refit without the group")


class CVGroup(BaseModel):
    """One held-out group: its errors before and after refitting without it."""

    group: str
    rows: int
    refit: bool = Field(description="false: too small (or its complement too small); 'after' uses the defaults")
    note: str | None = None
    train_rows: int = Field(0, description="rows the refit was fitted on")
    constants: dict[str, float] = Field(
        default_factory=dict, description="refit constants that differ from the defaults"
    )
    before: Summary
    after: Summary
    wall_s: float


class CrossValReport(BaseModel):
    """What ``planner validate --cross-validate`` returns."""

    by: str
    files: list[str]
    rows: int = Field(description="rows predicted (those that could not be simulated are left out)")
    failed: int = Field(description="rows that could not be simulated with the default constants")
    max_rows_per_fit: int
    max_rows_per_file: int | None = Field(None, description="a reduced setting: rows of each file, evenly spaced")
    grid_points: int
    rounds: int
    groups: list[CVGroup]
    before: Summary = Field(description="every row, default constants")
    after: Summary = Field(description="every row, each predicted by the refit that did not see its group")
    results: list[CVRow]
    wall_s: float


def _load(
    files: Sequence[str | Path], per_file: int | None = None
) -> tuple[list[tuple[str, dict[str, str], int, str, float]], set[int]]:
    """(kind, row, line, file, measured) for every row of the files, or for at most ``per_file`` rows of
    each, evenly spaced (a reduced setting), and the rows that cannot be simulated (their accelerator is not
    in the catalog); a bad value fails here, with its line."""
    out: list[tuple[str, dict[str, str], int, str, float]] = []
    bad: set[int] = set()
    for f in files:
        rows = read_rows(f)
        schema = schema_of(rows[0])
        keep = range(len(rows)) if not per_file or per_file >= len(rows) else {
            i * len(rows) // per_file for i in range(per_file)}  # fmt: skip
        for line, r in enumerate(rows, start=2):
            if line - 2 not in keep:
                continue
            out.append((schema.kind, r, line, str(f), measured_value(r, schema.measured, line, str(f))))
            if getattr(schema.parse(r, line), "problem", None):  # e.g. an accelerator the catalog lacks
                bad.add(len(out) - 1)
    return out, bad


def fit_sample(keys: Sequence[str], limit: int, sizes: Sequence[float] | None = None, seed: int = 0) -> list[int]:
    """At most ``limit`` indices, drawn round-robin over the distinct ``keys`` so every source is represented
    before any gets a second turn; sorted. Within a key, rows are shuffled with ``seed``, then (with
    ``sizes``) taken smallest first: a run on thousands of GPUs costs seconds per trial calibration to
    re-cost, a small one milliseconds, and the fit's constants are the same physical terms in both."""
    buckets: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        buckets.setdefault(k, []).append(i)
    rng = random.Random(seed)
    for b in buckets.values():
        rng.shuffle(b)
        if sizes is not None:
            b.sort(key=lambda i: -sizes[i])  # stable: ties keep the shuffle; pop() takes the smallest
    out: list[int] = []
    while len(out) < min(limit, len(keys)):
        for b in buckets.values():
            if b and len(out) < limit:
                out.append(b.pop())
    return sorted(out)


def refit(ev: Evaluator, train: list[int], measured: list[float], grid_points: int, rounds: int) -> Calibration:
    """The global constants fitted to rows ``train`` as ``planner calibrate`` fits them: only identifiable
    constants, at most one per :data:`ROWS_PER_CONSTANT` rows (those that gain most alone)."""
    names = list(BOUNDS)
    why, gain = _identifiable(ev, train, measured, names, grid_points, 0.002)
    ranked = sorted((n for n in names if why[n] is None), key=lambda n: -gain[n])
    free = ranked[: max(1, len(train) // ROWS_PER_CONSTANT)]
    return _fit(ev, train, measured, free, grid_points, rounds, 0.002) if free else DEFAULT


def _err(pred: float | None, meas: float) -> float | None:
    return None if pred is None else pred / meas - 1.0


def cross_validate(files: Sequence[str | Path], by: str, **kwargs: Any) -> CrossValReport:
    """Refit without each group of ``files``' rows (grouped ``by``) and predict it; see the module doc."""
    return cross_validate_many(files, [by], **kwargs)[0]


def check_groupings(groupings: Sequence[str]) -> list[str]:
    """The groupings, each one of :data:`GROUPINGS` (else one error naming the bad one)."""
    bad = [g for g in groupings if g not in GROUPINGS]
    if bad or not groupings:
        raise PlannerInputError(
            "cross-validate", f"must be one or more of {', '.join(GROUPINGS)}, got '{','.join(bad)}'"
        )
    return list(dict.fromkeys(groupings))


def cross_validate_many(
    files: Sequence[str | Path],
    groupings: Sequence[str],
    *,
    max_rows_per_fit: int = 60,
    grid_points: int = 3,
    rounds: int = 2,
    max_rows_per_file: int | None = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[CrossValReport]:
    """:func:`cross_validate` for each grouping, sharing one evaluator (its compiled rows, the default
    predictions and every (calibration, row) prediction a grouping already made)."""
    t0 = time.perf_counter()
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    groupings = check_groupings(groupings)
    if max_rows_per_fit < MIN_ROWS:
        raise PlannerInputError("max-rows-per-fit", f"must be at least {MIN_ROWS}, got {max_rows_per_fit}")
    if grid_points < 2 or rounds < 1:
        raise PlannerInputError("grid", f"needs at least 2 grid points and 1 round, got {grid_points}, {rounds}")
    rows, bad = _load(files, max_rows_per_file)
    tf = [i for i, r in enumerate(rows) if r[0] == "transformer" and i not in bad]
    rs = [i for i, r in enumerate(rows) if r[0] != "transformer" and i not in bad]
    n_groups = sum(len({group_of(r[1], by) for r in rows}) for by in groupings)
    say(f"cross-validate by {', '.join(groupings)}: {len(rows)} rows ({len(tf)} transformer), {n_groups} groups; "
        f"each refit on at most {max_rows_per_fit} rows, {grid_points}-point grid, {rounds} round(s)")  # fmt: skip
    with Evaluator([(rows[i][1], rows[i][2]) for i in tf], workers) as ev:
        t1 = time.perf_counter()
        default_tf = _default_pass(ev, len(tf), say)
        default_rs = [p.value for p in predict_all([(rows[i][0], rows[i][1], rows[i][2], DEFAULT) for i in rs])]
        before = dict.fromkeys(bad) | dict(zip(tf, default_tf, strict=True)) | dict(zip(rs, default_rs, strict=True))
        per_row_s = (time.perf_counter() - t1) / max(1, len(rows))
        ok_tf = [j for j, p in enumerate(default_tf) if p is not None]
        keys = [source_key(rows[tf[j]][1].get("source") or "") for j in ok_tf]
        sizes = [float(rows[tf[j]][1].get("num_gpus") or 1) for j in ok_tf]
        sample = [ok_tf[k] for k in fit_sample(keys, max_rows_per_fit, sizes)]
        most = len(BOUNDS) * grid_points * (1 + n_groups * rounds) * len(sample)
        say(f"default constants: {len(rows)} rows predicted in {time.perf_counter() - t1:.0f} s; the refits need at "
            f"most {most:,} re-costed predictions (~{most * per_row_s * RECOST / 60:.0f} min at most; identical "
            "trials are shared between groups)")  # fmt: skip
        run = _Run(ev, rows, tf, rs, before, sample, grid_points, rounds, say, t0)
        reports = [run.grouping(by, [str(f) for f in files], max_rows_per_fit) for by in groupings]
    for rep in reports:
        rep.max_rows_per_file = max_rows_per_file
    return reports


class _Run:
    """What every grouping of one cross-validation shares: the evaluator, the rows, the default
    predictions and the fit sample."""

    def __init__(self, ev: Evaluator, rows: list[Any], tf: list[int], rs: list[int], before: dict[int, float | None],
                 sample: list[int], grid_points: int, rounds: int, say: Callable[[str], None], t0: float) -> None:  # fmt: skip
        self.ev, self.rows, self.tf, self.rs, self.before, self.sample = ev, rows, tf, rs, before, sample
        self.grid_points, self.rounds, self.say, self.t0 = grid_points, rounds, say, t0
        self.measured = [rows[i][4] for i in tf]

    def grouping(self, by: str, files: list[str], max_rows_per_fit: int) -> CrossValReport:
        """Every group of ``by`` held out in turn."""
        t0, rows, before = time.perf_counter(), self.rows, self.before
        groups = sorted({group_of(r[1], by) for r in rows})
        out_groups, results = [], []
        for n, g in enumerate(groups, start=1):
            tg = time.perf_counter()
            members = [i for i, r in enumerate(rows) if group_of(r[1], by) == g and before[i] is not None]
            in_g = {j for j in range(len(self.tf)) if group_of(rows[self.tf[j]][1], by) == g}
            train = [j for j in self.sample if j not in in_g]
            note = None
            if not members:
                note = "no row can be simulated (see the rows left out); nothing to predict"
            elif len(members) < MIN_GROUP_ROWS:
                note = f"{len(members)} row(s): fewer than the fit's minimum of {MIN_GROUP_ROWS}; default constants"
            elif len(train) < MIN_ROWS:
                note = f"only {len(train)} other transformer row(s) to fit on; default constants"
            calib = DEFAULT if note else refit(self.ev, train, self.measured, self.grid_points, self.rounds)
            after = _predict_group(self.ev, rows, self.tf, self.rs, members, calib)
            mine = [_cv_row(rows[i], g, before[i], after[i]) for i in members]
            results += mine
            changed = {k: v for k, v in calib.constants().items() if not math.isclose(v, getattr(DEFAULT, k))}
            out_groups.append(CVGroup(group=g, rows=len(members), refit=note is None, note=note,
                                      train_rows=0 if note else len(train), constants=changed,
                                      before=summarize([r.before_error for r in mine if r.before_error is not None]),
                                      after=summarize([r.after_error for r in mine if r.after_error is not None]),
                                      wall_s=time.perf_counter() - tg))  # fmt: skip
            self.say(f"  {by} [{n}/{len(groups)}] {g}: {len(members)} rows, "
                     f"{'refit on ' + str(len(train)) + ' rows' if note is None else 'not refit'}; "
                     f"{time.perf_counter() - tg:.0f} s ({time.perf_counter() - self.t0:.0f} s so far)")  # fmt: skip
        return CrossValReport(
            by=by, files=files, rows=len(results), failed=sum(1 for v in before.values() if v is None),
            max_rows_per_fit=max_rows_per_fit, grid_points=self.grid_points, rounds=self.rounds, groups=out_groups,
            before=summarize([r.before_error for r in results if r.before_error is not None]),
            after=summarize([r.after_error for r in results if r.after_error is not None]),
            results=results, wall_s=time.perf_counter() - t0,
        )  # fmt: skip


def _cv_row(row: tuple[str, dict[str, str], int, str, float], group: str, before: float | None,
            after: float | None) -> CVRow:  # fmt: skip
    kind, r, line, file, meas = row
    return CVRow(id=r.get("id", f"row{line}"), file=Path(file).name, kind=kind, group=group,
                 accelerator=(r.get("accelerator") or "").strip(),
                 framework=(r.get("framework") or "").strip().lower() or None,
                 before_error=_err(before, meas), after_error=_err(after, meas))  # fmt: skip


RECOST = 0.15
"""A re-costed prediction's time as a share of a first one (compile, plan, graph, play): for the time estimate."""


def _default_pass(ev: Evaluator, n: int, say: Callable[[str], None]) -> list[float | None]:
    """The default constants' predictions of the evaluator's ``n`` rows, in slices, with progress and, after
    the first slice, an estimate of the whole default pass."""
    out: list[float | None] = []
    step = max(20, n // 10)
    t0 = time.perf_counter()
    for start in range(0, n, step):
        out += ev.predict([DEFAULT], list(range(start, min(n, start + step))))[0]
        el = time.perf_counter() - t0
        say(
            f"  default constants: {len(out)}/{n} transformer rows ({el:.0f} s; ~{el / len(out) * (n - len(out)):.0f} s to go)"
        )
    return out


def _predict_group(
    ev: Evaluator, rows: list[Any], tf: list[int], rs: list[int], members: list[int], calib: Calibration
) -> dict[int, float | None]:
    """Predictions of the held-out rows ``members`` under ``calib``: transformer rows re-costed by the
    evaluator, recommendation rows simulated."""
    pos = {i: j for j, i in enumerate(tf)}
    t_idx = [i for i in members if i in pos]
    r_idx = [i for i in members if i not in pos]
    preds = dict(zip(t_idx, ev.predict([calib], [pos[i] for i in t_idx])[0], strict=True))
    jobs = [(rows[i][0], rows[i][1], rows[i][2], calib) for i in r_idx]
    return preds | dict(zip(r_idx, (p.value for p in predict_all(jobs)), strict=True))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def format_crossval(rep: CrossValReport) -> str:
    """The per-group table as text."""
    head = (f"Cross-validation by {rep.by}: {rep.rows} rows, {len(rep.groups)} groups "
            f"(each refit on at most {rep.max_rows_per_fit} rows of the other groups), {rep.wall_s:.0f} s")  # fmt: skip
    lines = [head, f"{'group':<36} {'rows':>5}  {'median |err| before → after':>28}  {'mean':>17}  {'max':>17}"]
    for g in [*rep.groups, None]:
        name, n = (g.group, g.rows) if g else ("all rows", rep.rows)
        b, a = (g.before, g.after) if g else (rep.before, rep.after)
        lines.append(
            f"{name[:36]:<36} {n:>5}  {_pct(b.median_abs_error):>12} → {_pct(a.median_abs_error):<13}  "
            f"{_pct(b.mean_abs_error):>7} → {_pct(a.mean_abs_error):<7}  {_pct(b.max_abs_error):>7} → "
            f"{_pct(a.max_abs_error):<7}" + (f"  ({g.note})" if g and g.note else "")
        )
    if rep.failed:
        lines.append(f"{rep.failed} row(s) could not be simulated and are left out.")
    return "\n".join(lines)


def markdown_crossval(rep: CrossValReport) -> str:
    """The per-group table as Markdown (docs/validation.md leads with these)."""
    out = [f"### Leave one {rep.by} out", "",
           f"{rep.rows} rows; each group predicted by constants refit on at most {rep.max_rows_per_fit} rows of the "
           f"other groups ({rep.grid_points}-point grid, {rep.rounds} round(s)); {rep.wall_s:.0f} s.", "",
           f"| {rep.by} | rows | median before | median after | mean before | mean after | max after | refit on |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for g in rep.groups:
        fit = f"{g.train_rows} rows" if g.refit else f"not refit: {g.note}"
        out.append(f"| {g.group} | {g.rows} | {_pct(g.before.median_abs_error)} | {_pct(g.after.median_abs_error)} | "
                   f"{_pct(g.before.mean_abs_error)} | {_pct(g.after.mean_abs_error)} | {_pct(g.after.max_abs_error)} | "
                   f"{fit} |")  # fmt: skip
    out.append(f"| **all** | {rep.rows} | {_pct(rep.before.median_abs_error)} | {_pct(rep.after.median_abs_error)} | "
               f"{_pct(rep.before.mean_abs_error)} | {_pct(rep.after.mean_abs_error)} | "
               f"{_pct(rep.after.max_abs_error)} | |")  # fmt: skip
    return "\n".join(out) + "\n"


def markdown_lead(reps: Sequence[CrossValReport]) -> str:
    """docs/validation.md's first section: what the cross-validation does, its tables, and the band it feeds."""
    from planner.uncertainty import DEFINITION

    out = ["## Generalisation: each accelerator, framework and source predicted without it", "",
           "For each group, the global constants are refit (planner calibrate's objective, identifiability test and",
           "one constant per four rows) on the transformer rows of all *other* groups and the group is predicted with",
           "them: **after** is how planner does on hardware, software or a source it was not fitted on; **before** uses",
           "the default constants, which were fitted on the shared files. Recommendation rows are predicted, never fitted.",
           "A group under the fit's minimum of three rows is reported with the default constants.", ""]  # fmt: skip
    out += [markdown_crossval(r) for r in reps]
    out += ["### The error band of every prediction", "",
            f"`uncertainty` {{`low_s`, `high_s`, `rows`, `group`}} in simulate, search and compare: the {DEFINITION}.",
            "A step predicted at t with percentiles p10..p90 of the step-time error spans t / (1 + p90) .. t / (1 + p10);",
            "for recommendation rows (error on samples/s) the step spans t (1 + p10) .. t (1 + p90). The table ships in",
            "`planner/data/uncertainty.json`, written by the command above.", ""]  # fmt: skip
    return "\n".join(out)


def write_uncertainty(rep: CrossValReport, path: str | Path, command: str) -> dict[str, Any]:
    """Write the band table (:mod:`planner.uncertainty`) from the held-out residuals, atomically."""
    from planner.io import atomic_write_text
    from planner.uncertainty import DEFINITION, MIN_ROWS, band_table

    res = [(r.kind, r.accelerator, r.framework, r.after_error) for r in rep.results if r.after_error is not None]
    data = {"definition": DEFINITION, "generated_by": command, "cross_validated_by": rep.by, "min_rows": MIN_ROWS,
            "groups": band_table(res)}  # fmt: skip
    atomic_write_text(path, json.dumps(data, indent=1) + "\n", field="write-uncertainty")
    return data
