"""Evaluate a calibration on validation files in parallel (a developer tool for the global fit).

    .venv/bin/python tools/evaluate.py [--set key=value ...] [--calibration PROFILE.yaml] [--half train|test|all] FILE...

Prints median / mean / max absolute error per file. ``--half`` keeps every other row (by position:
train = even, test = odd), the split used to fit the few global constants in planner/calibration.py.
Predictions go through :class:`planner.calibrate.fit.Evaluator` (the prediction of ``planner validate``).
"""

from __future__ import annotations

import argparse
import statistics

from planner.calibrate.fit import Evaluator
from planner.calibration import Calibration, resolve_calibration
from planner.validate import read_rows


def evaluate(
    files: list[str], calib: Calibration, half: str = "all", workers: int | None = None
) -> dict[str, list[float]]:
    """Per file, the errors (predicted / measured - 1) of its rows in ``half`` that could be simulated."""
    out = {}
    for f in files:
        rows = [(r, i + 2) for i, r in enumerate(read_rows(f)) if half == "all" or (i % 2 == 0) == (half == "train")]
        with Evaluator(rows, workers) as ev:
            preds = ev.predict([calib], list(range(len(rows))))[0]
        out[f] = [
            p / float(r["measured_step_time_s"]) - 1 for (r, _), p in zip(rows, preds, strict=True) if p is not None
        ]
    return out


def summary(errs: list[float]) -> str:
    a = [abs(e) for e in errs]
    return f"n={len(a):4d} median {statistics.median(a):6.1%} mean {statistics.fmean(a):6.1%} max {max(a):6.1%} bias {statistics.median(errs):+6.1%}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--calibration", help="a profile (planner calibrate) to start from")
    ap.add_argument("--half", default="all", choices=("all", "train", "test"))
    a = ap.parse_args()
    calib = resolve_calibration(a.calibration)
    calib = calib.model_copy(update={k: float(v) for k, v in (kv.split("=") for kv in a.set)})
    for f, errs in evaluate(a.files, Calibration.model_validate(calib.model_dump()), a.half).items():
        print(f"{f.split('/')[-1]:24s} {summary(errs)}")


if __name__ == "__main__":
    main()
