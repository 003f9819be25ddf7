"""``planner sweep``: a grid of scenarios from a YAML spec into a resumable results store (planner.sweep)."""

from __future__ import annotations

import argparse
from typing import Any

from planner.cli.common import add_calibration_arg, positive_float, positive_int, refuse_input_as_output


def run(a: argparse.Namespace) -> int:
    """Run the sweep (never writing over the spec or the profile), then print one summary line."""
    from planner.sweep import run_sweep

    refuse_input_as_output("--out", a.out, [a.spec, a.calibration])
    rep, _ = run_sweep(
        a.spec, out=a.out, workers=a.workers, progress=True, scheduler=a.scheduler, calibration=a.calibration,
        max_points=a.max_points, point_timeout_s=a.point_timeout,
    )  # fmt: skip
    where = rep.store + (f", exported to {rep.export}" if rep.export else "")
    print(
        f"sweep: {rep.points} points ({rep.ran} run now, {rep.skipped} already in the store),"
        f" {rep.errors} with an error, {rep.wall_s:.1f} s; results in {where}"
    )
    return 0


def add_command(sub: Any) -> None:
    """The ``sweep`` subcommand."""
    sw = sub.add_parser(
        "sweep",
        help="run a grid of scenarios from a YAML spec into a results store (resumable)",
        description=(
            "Run every point of SPEC.yaml (base: a scenario; axes: input -> list of values; mode: product|zip;"
            " search: true to search the best layout at each point). Each point is committed to a SQLite"
            " store as it finishes, keyed by a hash of its inputs: rerunning the same command resumes."
        ),
    )
    sw.add_argument("spec", help="sweep spec (YAML)")
    sw.add_argument(
        "--out",
        required=True,
        help="results: .db/.sqlite (the store) or .csv/.parquet (exported; the store is OUT.sqlite)",
    )
    sw.add_argument("--workers", type=positive_int("--workers"), help="local processes (default: cores)")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask distributed cluster (tcp://host:8786)")
    sw.add_argument(
        "--max-points", type=positive_int("--max-points"), help="refuse a spec with more points (default 100,000)"
    )
    sw.add_argument(
        "--point-timeout", type=positive_float("--point-timeout"), default=300.0, metavar="SECONDS",
        help="one point's time limit; past it the point is an error row and its worker is replaced (default 300)",
    )  # fmt: skip
    add_calibration_arg(sw)
    sw.set_defaults(func=run)
