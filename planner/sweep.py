"""Batch what-if sweeps: a grid of scenarios, one simulation (or layout search) per point.

A spec (YAML file or dict) holds ``base`` (one scenario: ``model``, ``accelerator`` | ``instance``
| ``cluster``, ``gpus`` and any strategy field), ``axes`` (input name -> list of values), ``mode``
(``product``, the default: the cartesian product of the axes; ``zip``: the i-th value of every
axis together) and ``search`` (``true``: search the best layout at each point with
:func:`planner.search.search` instead of simulating the given one)::

    base: {model: gpt3-1.7b, accelerator: a100-sxm-80gb, global_batch: 64}
    axes: {gpus: [8, 16], micro_batch: [1, 2]}

Results go to a SQLite file (one row per point, committed as each point finishes, WAL mode),
keyed by a stable hash of the point's inputs, so rerunning the same sweep after an interruption
(Ctrl-C, kill -9) skips the finished points. Points run in local processes; only the parent
writes. A point that meets an error (an invalid layout, say) records the message and the sweep
goes on.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from planner.errors import PlannerInputError, pydantic_message
from planner.recsys.strategy import RecsysStrategy
from planner.transformer.strategy import Strategy

# ------------------------------------------------------------------------------------ the spec

HARDWARE_INPUTS: dict[str, Any] = {
    "model": str,
    "cluster": str,
    "instance": str,
    "accelerator": str,
    "gpus": int,
    "gpus_per_node": int,
    "inter_node_gbps_per_gpu": float,
    "seq_len": int,
}
SIMULATE_INPUTS: dict[str, Any] = {
    **HARDWARE_INPUTS,
    **{k: f.annotation for k, f in Strategy.model_fields.items()},
    **{k: f.annotation for k, f in RecsysStrategy.model_fields.items() if k not in Strategy.model_fields},
}
SEARCH_INPUTS: dict[str, Any] = {
    **HARDWARE_INPUTS,
    "global_batch": int,
    "objective": Literal["time", "cost"],
}

_STRICT = ConfigDict(extra="forbid", strict=False)
_SimulateInputs = create_model(  # type: ignore[call-overload]
    "SimulateInputs", __config__=_STRICT, **{k: (t | None, None) for k, t in SIMULATE_INPUTS.items()}
)
_SearchInputs = create_model(  # type: ignore[call-overload]
    "SearchInputs", __config__=_STRICT, **{k: (t | None, None) for k, t in SEARCH_INPUTS.items()}
)


class SweepSpec(BaseModel):
    """What a sweep runs. Keys of ``base`` and ``axes`` are inputs of :func:`planner.simulate`
    (or, with ``search: true``, of :func:`planner.search.search`: model, hardware, seq_len,
    global_batch, objective)."""

    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any] = {}
    axes: dict[str, list[Any]] = {}
    mode: Literal["product", "zip"] = "product"
    search: bool = False
    calibration: str | None = None  # a calibration profile (planner calibrate); relative to the spec's folder

    def points(self) -> list[dict[str, Any]]:
        """Every point's inputs, in order (base, then the axes' values)."""
        names = list(self.axes)
        lists = [self.axes[n] for n in names]
        combos: Iterable[tuple[Any, ...]] = (
            zip(*lists, strict=True) if self.mode == "zip" else itertools.product(*lists)
        )
        return [{**self.base, **dict(zip(names, c, strict=True))} for c in combos]


def _check_inputs(where: str, values: dict[str, Any], search: bool, value_where: str | None = None) -> None:
    """Every key a known input and every value of its type; ``value_where`` names a lone value."""
    known = SEARCH_INPUTS if search else SIMULATE_INPUTS
    for k in values:
        if k not in known:
            hint = " (search: true chooses the layout itself)" if search and k in SIMULATE_INPUTS else ""
            raise PlannerInputError(f"{where}.{k}", f"not a sweep input{hint}; known: {', '.join(known)}")
    model = _SearchInputs if search else _SimulateInputs
    try:
        model.model_validate(values)
    except ValidationError as e:
        err = pydantic_message(where, e)
        if value_where is not None:
            raise PlannerInputError(value_where, err.rule) from None
        raise err from None


def load_spec(spec: str | os.PathLike[str] | dict[str, Any] | SweepSpec) -> SweepSpec:
    """A validated :class:`SweepSpec` from a YAML path, a dict or a spec; a mistake raises one
    :class:`PlannerInputError` naming the key."""
    if isinstance(spec, SweepSpec):
        data: Any = spec.model_dump()
    elif isinstance(spec, dict):
        data = spec
    else:
        import yaml

        path = Path(spec)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise PlannerInputError("spec", f"cannot read {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise PlannerInputError("spec", f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise PlannerInputError("spec", "must be a mapping with base, axes, mode, search")
    if isinstance(data.get("calibration"), str) and not isinstance(spec, (dict, SweepSpec)):
        prof = Path(data["calibration"])
        if not prof.is_absolute() and not prof.exists():
            data = {**data, "calibration": str(Path(spec).parent / prof)}
    try:
        s = SweepSpec.model_validate(data)
    except ValidationError as e:
        raise pydantic_message("spec", e) from None
    _check_inputs("spec.base", s.base, s.search)
    for name, values in s.axes.items():
        _check_inputs("spec.axes", {name: None}, s.search)
        if not values:
            raise PlannerInputError(f"spec.axes.{name}", "is an empty list")
        if name in s.base:
            raise PlannerInputError(f"spec.axes.{name}", "is also set in base; set it in one place")
        for i, v in enumerate(values):
            _check_inputs("spec.axes", {name: v}, s.search, value_where=f"spec.axes.{name}[{i}]")
    if s.mode == "zip" and len({len(v) for v in s.axes.values()}) > 1:
        lens = ", ".join(f"{k} has {len(v)}" for k, v in s.axes.items())
        raise PlannerInputError("spec.axes", f"zip mode needs lists of equal length ({lens})")
    return s


def point_key(inputs: dict[str, Any], search: bool) -> str:
    """Stable id of a point: a hash of its inputs (order-free) and of the search flag."""
    text = json.dumps({"inputs": inputs, "search": search}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# ------------------------------------------------------------------------------------ one point


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar leaves of a nested dict as ``a.b.c`` keys; lists are left out."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[name] = v
    return out


def run_point(inputs: dict[str, Any], search: bool) -> tuple[dict[str, Any] | None, str | None, float]:
    """(flattened results, error message, seconds) of one point. Never raises for a point's error."""
    t0 = time.perf_counter()
    inputs = dict(inputs)
    calib = inputs.pop("calibration", None)
    if calib is not None:
        from planner.calibration import Calibration

        inputs["calibration"] = Calibration(**calib)
    try:
        if search:
            from planner.search import search as do_search

            kw = dict(inputs)
            r = do_search(
                kw.pop("model", "gpt3-1.7b"), **kw, top=1, min_gpus=kw.get("gpus"), workers=1, alternatives=False
            )
            best = r.results[0]
            res = flatten(best.model_dump())
        else:
            from planner.simulate import simulate

            r = simulate(**inputs)
            d = r.model_dump(exclude={"scenario", "sharding"})
            res = flatten(d)
            strat = r.scenario.get("strategy")
            if isinstance(strat, dict):
                res.update(flatten(strat, "strategy."))
        return res, None, time.perf_counter() - t0
    except PlannerInputError as e:
        return None, str(e), time.perf_counter() - t0
    except Exception as e:  # a bug at one point must not stop the sweep: record it
        return None, f"internal error: {type(e).__name__}: {e}", time.perf_counter() - t0


# ------------------------------------------------------------------------------------ the store

FIXED_COLUMNS = ("key", "point", "status", "error", "elapsed_s")


class Store:
    """One SQLite file: table ``points``, a row per point, columns added as new fields appear."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        try:
            self.db = sqlite3.connect(self.path)
            if self.path != ":memory:":
                self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS points (key TEXT PRIMARY KEY, point INTEGER, status TEXT,"
                " error TEXT, elapsed_s REAL)"
            )
            self.db.commit()
        except sqlite3.Error as e:
            raise PlannerInputError("out", f"cannot open the results store {self.path}: {e}") from None
        self.columns = [row[1] for row in self.db.execute("PRAGMA table_info(points)")]

    def done(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT key FROM points")}

    def put(self, key: str, index: int, inputs: dict[str, Any], results: dict[str, Any] | None, error: str | None,
            elapsed_s: float) -> None:  # fmt: skip
        row: dict[str, Any] = {
            "key": key,
            "point": index,
            "status": "error" if error else "ok",
            "error": error,
            "elapsed_s": elapsed_s,
        }
        for k, v in {**inputs, **(results or {})}.items():
            if k not in row:
                row[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
        for k in row:
            if k not in self.columns:
                self.db.execute(f"ALTER TABLE points ADD COLUMN {_q(k)}")
                self.columns.append(k)
        cols = ", ".join(_q(k) for k in row)
        marks = ", ".join("?" for _ in row)
        self.db.execute(f"INSERT OR REPLACE INTO points ({cols}) VALUES ({marks})", list(row.values()))
        self.db.commit()

    def rows(self, keys: list[str] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts (every column; None where a row has no value), in the order of ``keys`` when given."""
        cur = self.db.execute("SELECT * FROM points")
        names = [c[0] for c in cur.description]
        by_key = {}
        for values in cur:
            by_key[values[0]] = dict(zip(names, values, strict=True))
        if keys is None:
            return sorted(by_key.values(), key=lambda r: r["point"])
        return [by_key[k] for k in keys if k in by_key]

    def close(self) -> None:
        self.db.close()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
EXPORT_SUFFIXES = (".csv", ".parquet")


def store_path(out: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(SQLite store, export file or None) for ``--out``: a ``.csv``/``.parquet`` export keeps its
    store next to it as ``OUT.sqlite``; any other name is the store itself."""
    p = str(out)
    suffix = Path(p).suffix.lower()
    if suffix in EXPORT_SUFFIXES:
        if suffix == ".parquet":
            _require_parquet()
        return p + ".sqlite", p
    if suffix and suffix not in STORE_SUFFIXES:
        raise PlannerInputError("out", f"must end in .db, .sqlite, .sqlite3 (the store), .csv or .parquet; got {p}")
    return p, None


def _require_parquet() -> None:
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        raise PlannerInputError("out", ".parquet needs pandas and pyarrow installed; use .csv or .sqlite") from None


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: dict[str, None] = dict.fromkeys(FIXED_COLUMNS)
    for r in rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


def export(rows: list[dict[str, Any]], path: str) -> None:
    """Write rows as CSV or Parquet (by the suffix)."""
    cols = _columns(rows)
    try:
        if path.lower().endswith(".parquet"):
            _require_parquet()
            import pandas as pd

            pd.DataFrame(rows, columns=cols).to_parquet(path)
            return
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
    except OSError as e:
        raise PlannerInputError("out", f"cannot write {path}: {e.strerror}") from None


# ------------------------------------------------------------------------------------ the sweep


class SweepReport(BaseModel):
    points: int
    skipped: int
    ran: int
    errors: int
    store: str
    export: str | None
    wall_s: float


def _jobs(
    spec: SweepSpec, store: Store, calibration: dict[str, Any] | None = None
) -> tuple[list[str], list[tuple[int, str, dict[str, Any]]]]:
    """(every point's key, the points still to run); a non-default ``calibration`` (its fields)
    goes into each point's inputs, so its results are keyed apart from the default's."""
    keys, todo, seen = [], [], set()
    done = store.done()
    for i, inputs in enumerate(spec.points()):
        if calibration is not None:
            inputs = {**inputs, "calibration": calibration}
        k = point_key(inputs, spec.search)
        keys.append(k)
        if k not in done and k not in seen:
            todo.append((i, k, inputs))
        seen.add(k)
    return keys, todo


Job = tuple[int, str, dict[str, Any]]
Outcome = tuple[dict[str, Any] | None, str | None, float]


class LocalProcesses:
    """Runs points in local processes, a bounded number in flight so an interrupt loses little."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def results(self, todo: list[Job], search: bool) -> Iterator[tuple[Job, Outcome]]:
        if self.workers <= 1 or len(todo) <= 1:
            for job in todo:
                yield job, run_point(job[2], search)
            return
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(todo)))
        try:
            it = iter(todo)
            pending: dict[Future[Any], Job] = {}
            for job in itertools.islice(it, 4 * self.workers):
                pending[pool.submit(run_point, job[2], search)] = job
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    job = pending.pop(f)
                    for nxt in itertools.islice(it, 1):
                        pending[pool.submit(run_point, nxt[2], search)] = nxt
                    yield job, f.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class DaskScheduler:
    """Runs points on a Dask distributed cluster (``--scheduler tcp://host:8786``): the cluster does
    the scheduling; results come back here and are committed by this process only."""

    def __init__(self, address: str, in_flight: int = 256) -> None:
        self.address = address
        self.in_flight = in_flight

    def results(self, todo: list[Job], search: bool) -> Iterator[tuple[Job, Outcome]]:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise PlannerInputError(
                "scheduler", "Dask is not installed: pip install -e '.[cluster]' (the distributed package)"
            ) from None
        try:
            client = Client(self.address, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise PlannerInputError("scheduler", f"cannot reach the Dask scheduler at {self.address}: {e}") from None
        try:
            it = iter(todo)
            futures = {}
            for job in itertools.islice(it, self.in_flight):
                futures[client.submit(run_point, job[2], search, pure=False)] = job
            ac = as_completed(list(futures))
            for f in ac:
                job = futures.pop(f)
                for nxt in itertools.islice(it, 1):
                    nf = client.submit(run_point, nxt[2], search, pure=False)
                    futures[nf] = nxt
                    ac.add(nf)
                yield job, f.result()
        finally:
            client.close()


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
) -> tuple[SweepReport, list[dict[str, Any]]]:
    """Run (or resume) a sweep; returns the report and the rows of this spec's points in order.

    Points run in ``workers`` local processes, or on the Dask cluster at ``scheduler``, with
    ``calibration`` (a profile path or a Calibration; default the spec's ``calibration``, else
    planner's default)."""
    from planner.calibration import DEFAULT, resolve_calibration

    s = load_spec(spec)
    calib = resolve_calibration(calibration or s.calibration)
    calib_fields = calib.model_dump() if calib != DEFAULT else None
    if workers is not None and workers < 1:
        raise PlannerInputError("workers", f"must be a positive integer, got {workers}")
    runner: LocalProcesses | DaskScheduler = (
        DaskScheduler(scheduler) if scheduler else LocalProcesses(workers or os.cpu_count() or 1)
    )
    db, exp = store_path(out) if out is not None else (":memory:", None)
    t0 = time.perf_counter()
    store = Store(db)
    try:
        keys, todo = _jobs(s, store, calib_fields)
        bar = _progress(len(todo), len(keys) - len(todo)) if progress else None
        for n, ((i, k, inputs), (res, err, el)) in enumerate(runner.results(todo, s.search), 1):
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
        skipped=len(keys) - len(todo),
        ran=len(todo),
        errors=sum(r["status"] == "error" for r in rows),
        store=db,
        export=exp,
        wall_s=time.perf_counter() - t0,
    )
    return report, rows


def sweep(
    spec: str | os.PathLike[str] | dict[str, Any] | SweepSpec,
    *,
    out: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
    scheduler: str | None = None,
    calibration: Any = None,
) -> Any:
    """Run or resume a sweep (see the module doc) and return one row per point.

    ``spec`` is a YAML path, a dict or a :class:`SweepSpec`; ``out`` the results file (``.db`` /
    ``.sqlite``: the store; ``.csv`` / ``.parquet``: exported, with the store at ``OUT.sqlite``;
    ``None``: in memory, nothing kept); ``workers`` local processes (default: all cores), or
    ``scheduler`` the address of a Dask distributed scheduler (``tcp://host:8786``).

    Returns a pandas DataFrame (a list of dicts only where pandas is missing from the environment). Each row holds ``key``, ``point``, ``status`` (ok|error), ``error``,
    ``elapsed_s``, the point's inputs and the flattened result (``step_time_s``, ``mfu``,
    ``memory.peak_gib``, ``cost.usd_per_hour``, ``breakdown.compute_s``, ``strategy.dp``, ...).

    >>> rows = sweep({"base": {"model": "gpt3-1.7b", "accelerator": "a100-sxm-80gb", "global_batch": 64},
    ...               "axes": {"gpus": [8, 16], "micro_batch": [1, 2]}}, out="s.db")  # doctest: +SKIP
    """
    _, rows = run_sweep(spec, out=out, workers=workers, progress=progress, scheduler=scheduler, calibration=calibration)
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows, columns=_columns(rows))
