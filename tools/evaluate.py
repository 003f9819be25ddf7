"""Evaluate a calibration on validation files in parallel (a developer tool for the global fit).

    .venv/bin/python tools/evaluate.py [--set key=value ...] [--half train|test|all] FILE...

Prints median / mean / max absolute error per file. ``--half`` keeps every other row (by position:
train = even, test = odd), the split used to fit the few global constants in planner/calibration.py.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics

from planner.calibration import DEFAULT, Calibration
from planner.simulate import simulate_scenario
from planner.validate import read_rows, row_scenario


def _one(args: tuple[dict, int, dict]) -> tuple[str, float | None, float]:
    row, line, calib_fields = args
    calib = Calibration(**calib_fields)
    m, c, s, _ = row_scenario(row, line)
    meas = float(row["measured_step_time_s"])
    try:
        pred = simulate_scenario(m, c, s, calib).step_time_s
    except Exception:
        return row["id"], None, meas
    return row["id"], pred / meas - 1, meas


def evaluate(files: list[str], calib: Calibration, half: str = "all", pool=None) -> dict[str, list[float]]:
    out = {}
    for f in files:
        rows = read_rows(f)
        jobs = [
            (r, i + 2, calib.model_dump())
            for i, r in enumerate(rows)
            if half == "all" or (i % 2 == 0) == (half == "train")
        ]
        res = pool.map(_one, jobs, chunksize=8) if pool else list(map(_one, jobs))
        out[f] = [e for _, e, _ in res if e is not None]
    return out


def summary(errs: list[float]) -> str:
    a = [abs(e) for e in errs]
    return f"n={len(a):4d} median {statistics.median(a):6.1%} mean {statistics.fmean(a):6.1%} max {max(a):6.1%} bias {statistics.median(errs):+6.1%}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--half", default="all", choices=("all", "train", "test"))
    a = ap.parse_args()
    fields = DEFAULT.model_dump()
    for kv in a.set:
        k, v = kv.split("=")
        fields[k] = float(v)
    calib = Calibration(**fields)
    with mp.Pool(2) as pool:
        res = evaluate(a.files, calib, a.half, pool)
    for f, errs in res.items():
        print(f"{f.split('/')[-1]:24s} {summary(errs)}")


if __name__ == "__main__":
    main()
