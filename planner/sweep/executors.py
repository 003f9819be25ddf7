"""Where a sweep's points run: one point (:func:`run_point`), local processes (:class:`LocalProcesses`,
through :mod:`planner.pool`: workers die with the sweep, a point past its time limit is recorded as an
error and its worker replaced) or a Dask cluster (:class:`DaskScheduler`). Only the caller writes."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from planner.errors import PlannerInputError
from planner.pool import TimeLimit, imap_unordered, time_limit

Job = tuple[int, str, dict[str, Any]]
"""(point index, point key, point inputs)."""
Outcome = tuple[dict[str, Any] | None, str | None, float]
"""(flattened results, error message, seconds)."""

POINT_TIMEOUT_S = 300.0
"""Default time limit of one point (``--point-timeout`` / ``point_timeout_s``)."""


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


def run_point(inputs: dict[str, Any], search: bool) -> Outcome:
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


def preload(search: bool) -> None:
    """Import what a point needs before workers fork, so each worker starts with it loaded."""
    if search:
        import planner.search  # noqa: F401
    import planner.simulate  # noqa: F401


class LocalProcesses:
    """Runs points in ``workers`` local processes (1: in this process), each within ``timeout_s``."""

    def __init__(self, workers: int, timeout_s: float | None = POINT_TIMEOUT_S) -> None:
        self.workers = workers
        self.timeout_s = timeout_s

    def results(self, todo: Iterable[Job], search: bool) -> Iterator[tuple[Job, Outcome]]:
        preload(search)
        # one worker runs here, timed by SIGALRM, which only the main thread has (an app's script
        # thread has not: there a point runs in a worker process, which can be replaced)
        if self.workers <= 1 and (self.timeout_s is None or threading.current_thread() is threading.main_thread()):
            for job in todo:
                t0 = time.perf_counter()
                try:
                    with time_limit(self.timeout_s):
                        out = run_point(job[2], search)
                except TimeLimit as e:
                    out = (None, f"point {e}", time.perf_counter() - t0)
                yield job, out
            return
        for job, ok, res in imap_unordered(run_point, todo, lambda j: (j[2], search), self.workers, self.timeout_s):
            yield job, res if ok else (None, f"point {res}", 0.0)


_ADDRESS = re.compile(r"^([a-z][a-z0-9+.-]*://)?[^\s:/]+(:\d{1,5})?/?$", re.IGNORECASE)


class DaskScheduler:
    """Runs points on a Dask distributed cluster (``--scheduler tcp://host:8786``): the cluster does
    the scheduling; results come back here and are committed by this process only. (The per-point time
    limit is not enforced there: Dask runs points in worker threads, which cannot be stopped.)"""

    def __init__(self, address: str, in_flight: int = 256) -> None:
        if not _ADDRESS.match(address) or ":" not in address:  # a scheme (tcp://) or a port (host:8786)
            raise PlannerInputError("scheduler", f"expected an address such as tcp://host:8786, got {address!r}")
        self.address = address
        self.in_flight = in_flight

    def results(self, todo: Iterable[Job], search: bool) -> Iterator[tuple[Job, Outcome]]:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise PlannerInputError(
                "scheduler", "Dask is not installed: pip install -e '.[cluster]' (the distributed package)"
            ) from None
        try:
            client = Client(self.address, timeout="10s")
        except (OSError, TimeoutError, ValueError, TypeError) as e:
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
