"""Batch what-if sweeps: a grid of scenarios, one simulation (or layout search) per point.

A spec (YAML file or dict) holds ``base`` (one scenario: ``model``, ``accelerator`` | ``instance``
| ``cluster``, ``gpus`` and any strategy field), ``axes`` (input name -> list of values), ``mode``
(``product``, the default: the cartesian product of the axes; ``zip``: the i-th value of every
axis together) and ``search`` (``true``: search the best layout at each point with
:func:`planner.search.search` instead of simulating the given one)::

    base: {model: gpt3-1.7b, accelerator: a100-sxm-80gb, global_batch: 64}
    axes: {gpus: [8, 16], micro_batch: [1, 2]}

The spec is checked and its points counted before anything runs (more than ``max_points``,
default 100,000, is refused); points are then streamed, never held in a list. Results go to a SQLite file (one row per point, committed as each point finishes, WAL mode),
keyed by a stable hash of the point's inputs, so rerunning the same sweep after an interruption
(Ctrl-C, kill -9) skips the finished points. Points run in local processes (:mod:`planner.pool`: they die with
the sweep) or on a Dask cluster; only the parent writes. A point that meets an error (an invalid
layout, say) or runs past its time limit (``point_timeout_s``, default 300 s) records the message
and the sweep goes on.

Modules, in data-flow order: :mod:`~planner.sweep.spec` (the spec, its count and points),
:mod:`~planner.sweep.store` (the SQLite store, export), :mod:`~planner.sweep.executors` (one point;
local processes, Dask), :mod:`~planner.sweep.run` (run_sweep, sweep, progress).
"""

from planner.sweep.executors import POINT_TIMEOUT_S, DaskScheduler, LocalProcesses, flatten, run_point
from planner.sweep.run import SweepReport, run_sweep, sweep
from planner.sweep.spec import (
    HARDWARE_INPUTS,
    MAX_POINTS,
    SEARCH_INPUTS,
    SIMULATE_INPUTS,
    SweepSpec,
    check_count,
    load_spec,
    point_key,
)
from planner.sweep.store import EXPORT_SUFFIXES, FIXED_COLUMNS, STORE_SUFFIXES, Store, export, store_path

__all__ = [
    "EXPORT_SUFFIXES",
    "FIXED_COLUMNS",
    "HARDWARE_INPUTS",
    "MAX_POINTS",
    "POINT_TIMEOUT_S",
    "SEARCH_INPUTS",
    "SIMULATE_INPUTS",
    "STORE_SUFFIXES",
    "DaskScheduler",
    "LocalProcesses",
    "Store",
    "SweepReport",
    "SweepSpec",
    "check_count",
    "export",
    "flatten",
    "load_spec",
    "point_key",
    "run_point",
    "run_sweep",
    "store_path",
    "sweep",
]
