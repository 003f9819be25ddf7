"""One process pool for every parallel part: the search's full simulations, validate, calibrate and sweep.

Why one helper: a worker must never outlive the command that started it. Each worker, on start,

* asks Linux to SIGKILL it when its parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), which covers
  ``kill -9`` of the parent, and watches ``os.getppid()`` once a second as a fallback (other systems,
  or a parent thread that ended);
* ignores SIGINT (a Ctrl-C reaches the whole process group; the parent decides) and takes SIGTERM's
  default action.

The parent, while a pool is open in its main thread, turns SIGTERM into ``SystemExit(143)`` so the
pool's exit path kills its workers and every ``finally`` (a results store's close) runs; any
exception (Ctrl-C's KeyboardInterrupt included) leaving a pool kills its workers instead of waiting
for them. Workers start with ``fork`` on Linux (measured on 2 loaded cores: 0.7-2 s to start two
workers and run a point each, against 8.3 s with ``spawn``, which re-imports planner in each),
``spawn`` elsewhere; not ``forkserver``, whose workers are the server's children, not ours.
PR_SET_PDEATHSIG fires when the *thread* that started a worker ends, so a pool is used within the
thread that opened it (every caller does: a ``with`` block).

:func:`process_pool` gives a :class:`~concurrent.futures.ProcessPoolExecutor` (search, validate,
calibrate); :func:`imap_unordered` runs jobs one per worker with a time limit per job, replacing a
worker that runs past it (sweep); :func:`time_limit` bounds work done in the calling process.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_any
from typing import Any, TypeVar

PR_SET_PDEATHSIG = 1
"""prctl option: the signal a process gets when its parent dies (linux/prctl.h)."""

PARENT_CHECK_S = 1.0
"""How often a worker checks that its parent is still alive (the fallback to PR_SET_PDEATHSIG)."""

T = TypeVar("T")


def context() -> Any:
    """The start method: ``fork`` on Linux (fast start, imports inherited), ``spawn`` elsewhere."""
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def guard_worker(parent_pid: int) -> None:
    """Worker initializer: die with the parent (see the module doc)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _forking[0] = 0  # the parent's count, copied by fork
    if _deferred:  # a SIGTERM this process took between its fork and here: take it now
        os.kill(os.getpid(), signal.SIGTERM)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="planner-watch-parent", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent_pid:
            os._exit(1)


# ------------------------------------------------------------------------- the parent's side

_killers: dict[int, Callable[[], None]] = {}
_lock = threading.Lock()
_installed: list[Any] = []  # the SIGTERM handler ours replaced, while ours is installed
_terminated: list[int] = []  # the signal our handler acted on, once it has
_deferred: list[int] = []  # a signal that came while workers were being forked
_forking = [0]  # how many process starts are under way in the main thread


def _on_sigterm(signum: int, frame: Any) -> None:
    if _forking[0]:  # see _starting_processes: act once the fork is done
        _deferred.append(signum)
        return
    _terminated.append(signum)
    kill_all_workers()
    raise SystemExit(128 + signum)


def _exit_if_terminated() -> None:
    """Exit as SIGTERM asked if its ``SystemExit`` was swallowed (Python runs a pending handler
    inside finalizers and at-fork hooks, which print an exception and drop it)."""
    if _terminated:
        raise SystemExit(128 + _terminated[-1])


@contextlib.contextmanager
def _starting_processes() -> Iterator[None]:
    """Hold SIGTERM's handler while worker processes are forked.

    ``os.fork`` runs the at-fork hooks (logging's lock release) as Python code; a handler run there
    raises its ``SystemExit`` into a hook, which drops it: the workers were killed, yet the command
    went on without them (and then failed on the broken pool, exit 1). The signal is acted on when
    the fork is done instead. Only the main thread's forks hold it: a handler runs in the main thread
    alone, so one that another thread's fork held would be acted on in that thread, not the main one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _forking[0] += 1
    try:
        yield
    finally:
        _forking[0] -= 1
        if not _forking[0] and _deferred:
            _on_sigterm(_deferred.pop(), None)


def kill_all_workers() -> None:
    """Kill the workers of every pool this process has open (SIGTERM handler; a last resort)."""
    with _lock:
        killers = list(_killers.values())
    for kill in killers:
        with contextlib.suppress(Exception):
            kill()


@contextlib.contextmanager
def _tracked(kill: Callable[[], None]) -> Iterator[None]:
    """Register ``kill`` (kills one pool's workers) while the block runs; SIGTERM calls it."""
    token = id(kill)
    with _lock:
        _killers[token] = kill
        main = threading.current_thread() is threading.main_thread()
        if main and not _installed and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            _terminated.clear()
            _deferred.clear()
            _installed.append(signal.signal(signal.SIGTERM, _on_sigterm))
    try:
        yield
        if main and _installed:  # ours handles SIGTERM: a dropped exit still ends the command here
            _exit_if_terminated()
    finally:
        with _lock:
            _killers.pop(token, None)
            if main and _installed and not _killers:
                signal.signal(signal.SIGTERM, _installed.pop())


def _kill_executor(pool: ProcessPoolExecutor) -> None:
    for p in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            p.kill()


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers die with this process; on an exception they are killed at once."""
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context(), initializer=guard_worker, initargs=(os.getpid(),)
    )
    with _tracked(lambda: _kill_executor(pool)):
        try:
            with _starting_processes():
                pool.submit(int)  # with fork, the first submit starts every worker: start them here
            yield pool
        except BaseException as e:
            _kill_executor(pool)
            pool.shutdown(wait=False, cancel_futures=True)
            if not isinstance(e, SystemExit):
                _exit_if_terminated()  # a broken pool after SIGTERM killed the workers
            raise
        pool.shutdown(wait=True)


# ------------------------------------------------------------------------- one job per worker, timed


def _serve(conn: Connection, fn: Callable[..., Any], parent_pid: int) -> None:
    """A worker's loop: run ``fn(*args)`` for each message until None or the pipe closes."""
    guard_worker(parent_pid)
    while True:
        try:
            args = conn.recv()
        except (EOFError, OSError):
            return
        if args is None:
            return
        try:
            out: tuple[bool, Any] = (True, fn(*args))
        except Exception as e:  # the caller decides what a failed job means
            out = (False, f"{type(e).__name__}: {e}")
        conn.send(out)


_END: Any = object()
DEPTH = 2
"""Jobs queued per worker: the next one is already there when one finishes, so a worker does not
sit idle for the parent's round trip (the store's commit) between cheap jobs."""


class _Worker:
    """One process with a pipe; runs the jobs sent to it in order. A job's time counts from when the
    one before it came back (or from its sending, for the first)."""

    def __init__(self, ctx: Any, fn: Callable[..., Any]) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, fn, os.getpid()), name="planner-worker")
        with _starting_processes():
            self.proc.start()
        child.close()
        self.queue: deque[Any] = deque()
        self.started = 0.0

    def send(self, job: Any, args: tuple[Any, ...]) -> None:
        if not self.queue:
            self.started = time.monotonic()
        self.queue.append(job)
        self.conn.send(args)

    def finished(self) -> Any:
        """The job whose result just came back; the next one starts now."""
        self.started = time.monotonic()
        return self.queue.popleft()

    def deadline(self, timeout_s: float | None) -> float:
        return self.started + timeout_s if timeout_s and self.queue else math.inf

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.kill()
            self.proc.join(1.0)
            self.conn.close()

    def stop(self) -> None:
        """Ask an idle worker to exit; kill it if it does not within a second."""
        with contextlib.suppress(Exception):
            self.conn.send(None)
            self.proc.join(1.0)
        self.kill()


def imap_unordered(
    fn: Callable[..., Any],
    jobs: Iterable[T],
    args_of: Callable[[T], tuple[Any, ...]],
    workers: int,
    timeout_s: float | None = None,
) -> Iterator[tuple[T, bool, Any]]:
    """Run ``fn(*args_of(job))`` for each job on ``workers`` processes (:data:`DEPTH` jobs queued
    per worker); yields ``(job, ok, result or error message)`` as jobs finish. A job past
    ``timeout_s`` seconds (or whose worker died) comes back not ok and its worker is replaced (the
    jobs queued behind it go to other workers), so one bad job cannot stall the rest. ``jobs`` is
    read lazily; closing the iterator kills the workers."""
    ctx = context()
    it = iter(jobs)
    retry: deque[T] = deque()
    pool: list[_Worker] = []

    def kill() -> None:
        for w in list(pool):
            w.kill()

    def feed() -> None:
        for w in pool:
            while len(w.queue) < DEPTH:
                job = retry.popleft() if retry else next(it, _END)
                if job is _END:
                    return
                w.send(job, args_of(job))

    def lost(w: _Worker) -> T:
        """Replace a worker that hung or died; its first job is lost, the rest are run again."""
        job = w.queue.popleft()
        retry.extendleft(reversed(w.queue))
        w.kill()
        pool[pool.index(w)] = _Worker(ctx, fn)
        return job

    with _tracked(kill):
        try:
            pool.extend(_Worker(ctx, fn) for _ in range(max(1, workers)))
            feed()
            while active := {w.conn: w for w in pool if w.queue}:
                _exit_if_terminated()
                soonest = min(w.deadline(timeout_s) for w in active.values())
                wait_s = None if soonest == math.inf else max(0.0, soonest - time.monotonic())
                for conn in wait_any(list(active), timeout=wait_s):
                    w = active[conn]  # type: ignore[index]
                    try:
                        ok, res = w.conn.recv()
                        job = w.finished()
                    except (EOFError, OSError):
                        job = lost(w)  # joins the dead process, so its exit status is known
                        ok, res = False, f"its worker process died (exit status {w.proc.exitcode}) and was replaced"
                    yield job, ok, res
                now = time.monotonic()
                for w in list(pool):
                    if w.deadline(timeout_s) <= now:
                        yield lost(w), False, f"ran past its time limit of {timeout_s:g} s; its worker was replaced"
                feed()
            for w in pool:
                w.stop()
        finally:
            kill()


class TimeLimit(BaseException):
    """Raised by :func:`time_limit` in the calling thread (a BaseException, so a job's own
    ``except Exception`` does not swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TimeLimit` in the block after ``seconds`` (SIGALRM: main thread on Unix only;
    elsewhere, or with ``seconds`` None, no limit). Interrupts Python code, not a long C call."""
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeLimit(f"ran past its time limit of {seconds:g} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
