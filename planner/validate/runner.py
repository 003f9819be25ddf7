"""Predict every row of a validation file, in parallel, through the family contract.

Each row is parsed by its file's schema (:mod:`planner.validate.rows`) and simulated with
:func:`planner.simulate.run_step`, which dispatches on the spec's family; nothing here branches on
the kind of workload. All rows are parsed first, so a bad value fails fast with its line; then the
predictions run in a process pool (from 40 rows). A long run reports its progress on stderr (a
line every few seconds; sooner on a terminal) and leaves stdout to the report.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from planner.calibration import DEFAULT, Calibration
from planner.errors import PlannerInputError
from planner.pool import process_pool
from planner.simulate import run_step
from planner.validate.report import RowResult, ValidationReport, build_report
from planner.validate.rows import SCHEMAS, measured_value, read_rows, schema_of, source_key

PARALLEL_FROM_ROWS = 40
"""Fewer rows than this are predicted in this process (a pool's start-up would cost more)."""

Job = tuple[str, dict[str, str], int, Calibration]
"""(schema kind, row, line, calibration): one prediction, picklable for the pool."""


class Prediction(NamedTuple):
    """One row's prediction: the predicted value of its schema's measured quantity (None: failed),
    why it failed, the fields left blank, and the memory check."""

    value: float | None
    problem: str | None
    defaulted: list[str]
    fits: bool | None = None
    peak_gib: float | None = None
    capacity_gib: float | None = None


def predict_row(job: Job) -> Prediction:
    """Simulate one row (a user mistake in the layout becomes the row's ``problem``)."""
    kind, row, line, calib = job
    schema = SCHEMAS[kind]
    p = schema.parse(row, line)
    if p.problem:  # e.g. an accelerator the catalog lacks: this row only is reported as not simulated
        return Prediction(None, p.problem, p.defaulted)
    try:
        r = run_step(p.spec, p.cluster, p.strategy, calib)
        m = r.memory
        # a measured-memory row: the figure its ``quantity`` names (reserved, allocated, activations)
        value = m.measured_as(row.get("quantity") or "") if kind == "memory" else attrgetter(schema.predicted)(r)
    except PlannerInputError as e:
        return Prediction(None, str(e), p.defaulted)
    return Prediction(value, None, p.defaulted, m.fits, m.peak_gib, m.capacity_gib)


def _predict(args: tuple[dict[str, str], int, Calibration]) -> tuple[float | None, str | None, list[str]]:
    """A transformer row's (step time or None, the reason it failed, fields left blank)."""
    row, line, calib = args
    p = predict_row(("transformer", row, line, calib))
    return p.value, p.problem, p.defaulted


class Progress:
    """Lines on ``stream`` while a long run goes: the first after ``first_s`` (2 s on a terminal,
    10 s otherwise), then every ``every_s``; nothing for a run that ends sooner."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total = label, total
        self.stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.first_s, self.every_s = (2.0, 2.0) if tty else (10.0, 10.0)
        self.t0 = time.monotonic()
        self.next_s = self.first_s
        self.shown = False

    def update(self, done: int) -> None:
        elapsed = time.monotonic() - self.t0
        if elapsed >= self.next_s or (self.shown and done == self.total):
            self.shown = True
            self.next_s = elapsed + self.every_s
            print(f"{self.label}: {done}/{self.total} rows predicted ({elapsed:.0f} s)", file=self.stream, flush=True)

    def track(self, items: Iterable[Any]) -> Iterator[Any]:
        for i, x in enumerate(items, start=1):
            yield x
            self.update(i)


def predict_all(jobs: list[Job], workers: int | None = None, progress: Progress | None = None) -> list[Prediction]:
    """The predictions of ``jobs`` in order; ``workers`` > 1 spreads them over processes."""
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if workers > 1 and len(jobs) >= PARALLEL_FROM_ROWS:
        with process_pool(workers) as pool:
            out = pool.map(predict_row, jobs, chunksize=4)
            return list(progress.track(out) if progress else out)
    out_seq = (predict_row(j) for j in jobs)
    return list(progress.track(out_seq) if progress else out_seq)


def validate_rows(
    rows: list[dict[str, str]],
    calib: Calibration = DEFAULT,
    file: str = "",
    workers: int | None = None,
    progress: bool = False,
) -> ValidationReport:
    """Predict every row (of the schema its columns name) and summarise; ``workers`` > 1 spreads
    rows over processes (default: CPUs, at most 8); ``progress`` reports a long run on stderr."""
    if not rows:
        raise PlannerInputError("file", f"{file or 'the rows'}: no data rows")
    schema = schema_of(rows[0])
    jobs: list[Job] = []
    measured: list[float] = []
    for line, row in enumerate(rows, start=2):
        measured.append(measured_value(row, schema.measured, line, file))
        jobs.append((next(k for k, v in SCHEMAS.items() if v is schema), row, line, calib))
    parsed = [schema.parse(row, line) for _, row, line, _ in jobs]  # a bad value fails fast, with its line
    bar = Progress(f"validate {Path(file).name or 'rows'}", len(jobs)) if progress else None
    preds = predict_all(jobs, workers, bar)
    results = []
    for (_, row, line, _), meas, p, pr in zip(jobs, measured, parsed, preds, strict=True):
        fields: dict[str, Any] = {"predicted_step_time_s": pr.value, "measured_step_time_s": meas}
        if p.per_step is not None:  # the row measures a throughput (samples/s) of ``per_step`` samples a step
            fields = {"predicted_step_time_s": None if pr.value is None else p.per_step / pr.value,
                      "measured_step_time_s": p.per_step / meas, "predicted_samples_per_s": pr.value,
                      "measured_samples_per_s": meas}  # fmt: skip
        if schema.measured == "measured_peak_gib":  # a memory row: no step time was measured
            fields = {"predicted_step_time_s": None, "measured_step_time_s": None, "measured_peak_gib": meas}
        results.append(
            RowResult(
                id=row.get("id", f"row{line}"),
                source=source_key(row.get("source", "")),
                model=p.model,
                error=None if pr.value is None else pr.value / meas - 1.0,
                defaulted=pr.defaulted,
                problem=pr.problem,
                fits=pr.fits,
                peak_gib=pr.peak_gib,
                capacity_gib=pr.capacity_gib,
                **fields,
            )
        )
    return build_report(results, calib, file)


def validate_file(path: str | Path, calib: Calibration = DEFAULT, progress: bool = True) -> ValidationReport:
    """:func:`validate_rows` on the rows of a validation CSV; a long run reports progress on stderr."""
    return validate_rows(read_rows(path), calib, str(path), progress=progress)
