"""Running a sweep: count and check the points, skip those already in the store, run the rest (streamed,
a bounded number in flight), commit each as it finishes, report progress, export."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel
from typing_extensions import TypedDict, Unpack

from planner.errors import PlannerInputError
from planner.keywords import reject_unknown
from planner.sweep.executors import POINT_TIMEOUT_S, DaskScheduler, Job, LocalProcesses
from planner.sweep.spec import SweepSpec, check_count, load_spec, point_key
from planner.sweep.store import Store, columns, export, store_path


class SweepReport(BaseModel):
    points: int
    skipped: int
    ran: int
    errors: int
    store: str
    export: str | None
    wall_s: float


def _keys(spec: SweepSpec, calibration: dict[str, Any] | None) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Each point's (index, key, inputs), streamed; a non-default ``calibration`` (its fields) goes into
    each point's inputs, so its results are keyed apart from the default's."""
    for i, inputs in enumerate(spec.points()):
        if calibration is not None:
            inputs = {**inputs, "calibration": calibration}
        yield i, point_key(inputs, spec.search), inputs


def _todo(spec: SweepSpec, calibration: dict[str, Any] | None, skip: set[str]) -> Iterator[Job]:
    """The points still to run, streamed (a point repeated in the spec runs once)."""
    seen = set(skip)
    for i, k, inputs in _keys(spec, calibration):
        if k not in seen:
            seen.add(k)
            yield i, k, inputs


def _progress(total: int, skipped: int) -> Callable[[int], None]:
    """Progress with rate and ETA on stderr: a tqdm bar on a terminal, else a line every ~5 %."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"sweep ({skipped} already done)", unit="point", file=sys.stderr)

        def tick(n: int) -> None:
            bar.update(n - bar.n)
            if n >= total:
                bar.close()

        return tick
    t0 = time.perf_counter()
    step = max(1, total // 20)

    def line(n: int) -> None:
        if n % step and n != total:
            return
        rate = n / max(time.perf_counter() - t0, 1e-9)
        eta = (total - n) / rate if rate > 0 else 0.0
        print(
            f"sweep: {n}/{total} points ({skipped} already done), {rate:.1f} points/s, ETA {eta:.0f} s", file=sys.stderr
        )

    return line


def run_sweep(
    spec: str | os.PathLike[str] | dict[str, Any] | SweepSpec,
    out: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
    scheduler: str | None = None,
    calibration: Any = None,
    max_points: int | None = None,
    point_timeout_s: float | None = POINT_TIMEOUT_S,
) -> tuple[SweepReport, list[dict[str, Any]]]:
    """Run (or resume) a sweep; returns the report and the rows of this spec's points in order.

    Points run in ``workers`` local processes, or on the Dask cluster at ``scheduler``, with
    ``calibration`` (a profile path or a Calibration; default the spec's ``calibration``, else
    planner's default). A spec of more than ``max_points`` points (default
    :data:`~planner.sweep.spec.MAX_POINTS`) is refused before anything runs; a local point that runs
    past ``point_timeout_s`` seconds (None: no limit) is recorded as an error."""
    from planner.calibration import DEFAULT, resolve_calibration

    s = load_spec(spec)
    check_count(s, max_points)
    if point_timeout_s is not None and not 0 < point_timeout_s < float("inf"):
        raise PlannerInputError("point_timeout", f"must be a positive number of seconds, got {point_timeout_s}")
    calib = resolve_calibration(calibration or s.calibration)
    calib_fields = calib.model_dump() if calib != DEFAULT else None
    if workers is not None and workers < 1:
        raise PlannerInputError("workers", f"must be a positive integer, got {workers}")
    runner: LocalProcesses | DaskScheduler = (
        DaskScheduler(scheduler) if scheduler else LocalProcesses(workers or os.cpu_count() or 1, point_timeout_s)
    )
    db, exp = store_path(out) if out is not None else (":memory:", None)
    t0 = time.perf_counter()
    store = Store(db)
    try:
        done = store.done()
        keys = [k for _, k, _ in _keys(s, calib_fields)]
        ran = len(set(keys) - done)
        bar = _progress(ran, len(keys) - ran) if progress else None
        with contextlib.closing(runner.results(_todo(s, calib_fields, done), s.search)) as results:
            for n, ((i, k, inputs), (res, err, el)) in enumerate(results, 1):
                store.put(k, i, inputs, res, err, el)
                if bar is not None:
                    bar(n)
        rows = store.rows(keys)
    finally:
        store.close()
    if exp is not None:
        export(rows, exp)
    report = SweepReport(
        points=len(keys),
        skipped=len(keys) - ran,
        ran=ran,
        errors=sum(r["status"] == "error" for r in rows),
        store=db,
        export=exp,
        wall_s=time.perf_counter() - t0,
    )
    return report, rows


class SweepOptions(TypedDict, total=False):
    """The keywords of :func:`run_sweep` (there with their defaults) that :func:`sweep` passes on."""

    out: str | os.PathLike[str] | None
    workers: int | None
    progress: bool
    scheduler: str | None
    calibration: Any
    max_points: int | None
    point_timeout_s: float | None


def sweep(spec: str | os.PathLike[str] | dict[str, Any] | SweepSpec, **options: Unpack[SweepOptions]) -> Any:
    """Run or resume a sweep (see :mod:`planner.sweep`) and return one row per point.

    ``spec`` is a YAML path, a dict or a :class:`SweepSpec`. ``options`` (:class:`SweepOptions`; an
    unknown one is a ``TypeError``): ``out`` the results file (``.db`` /
    ``.sqlite``: the store; ``.csv`` / ``.parquet``: exported, with the store at ``OUT.sqlite``;
    ``None``: in memory, nothing kept); ``workers`` local processes (default: all cores), or
    ``scheduler`` the address of a Dask distributed scheduler (``tcp://host:8786``); ``max_points``
    the most points the spec may have (default 100,000); ``point_timeout_s`` one point's time limit.

    Returns a pandas DataFrame (a list of dicts only where pandas is missing from the environment).
    Each row holds ``key``, ``point``, ``status`` (ok|error), ``error``,
    ``elapsed_s``, the point's inputs and the flattened result (``step_time_s``, ``mfu``,
    ``memory.peak_gib``, ``cost.usd_per_hour``, ``breakdown.compute_s``, ``strategy.dp``, ...).

    >>> rows = sweep({"base": {"model": "gpt3-1.7b", "accelerator": "a100-sxm-80gb", "global_batch": 64},
    ...               "axes": {"gpus": [8, 16], "micro_batch": [1, 2]}}, out="s.db")  # doctest: +SKIP
    """
    reject_unknown("sweep", options, SweepOptions)
    _, rows = run_sweep(spec, **options)
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows, columns=columns(rows))
