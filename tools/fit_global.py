"""Fit the few global constants of planner/calibration.py on the train half of the validation data.

    .venv/bin/python tools/fit_global.py [--rounds 2] [--grid-points 5]

A thin caller of :func:`planner.calibrate.fit.coordinate_search` (the same search ``planner
calibrate`` runs on a user's rows): the rows are the even-position (train) rows of the three
transformer files, across accelerators (the global default is one calibration for all of them),
and the objective is the mean over the files of each file's median absolute error. The test half
(odd rows) is never looked at here; tools/evaluate.py --half test reports it.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from planner.calibrate.fit import BOUNDS, Bound, Evaluator, coordinate_search
from planner.calibration import DEFAULT
from planner.validate import read_rows

SHARED = Path(__file__).resolve().parents[2] / "shared" / "validation"
FILES = [str(SHARED / f) for f in ("vtrain_multi.csv", "vtrain_single.csv", "published.csv")]

GLOBAL_BOUNDS = {
    **{
        k: BOUNDS[k]
        for k in ("gemm_mamf_fraction", "attention_fraction", "layer_host_s", "hbm_efficiency", "nic_efficiency")
    },
    "gemm_ramp_s": Bound(2.2e-6, 10e-6, True, "rows with many small GEMMs"),
}
"""The constants fitted globally, with their physical ranges (planner.calibrate.fit.BOUNDS)."""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--grid-points", type=int, default=5)
    a = ap.parse_args()
    rows, file_of, measured = [], [], []
    for fi, f in enumerate(FILES):
        for i, r in enumerate(read_rows(f)):
            if i % 2 == 0:  # train half
                rows.append((r, i + 2))
                file_of.append(fi)
                measured.append(float(r["measured_step_time_s"]))
    idx = list(range(len(rows)))

    def objective(preds: list[float | None]) -> float:
        per_file: dict[int, list[float]] = {}
        for i, p in zip(idx, preds, strict=True):
            if p is not None:
                per_file.setdefault(file_of[i], []).append(abs(p / measured[i] - 1))
        return statistics.fmean(statistics.median(v) for v in per_file.values())

    with Evaluator(rows) as ev:
        best, score = coordinate_search(
            ev, idx, objective, list(GLOBAL_BOUNDS), bounds=GLOBAL_BOUNDS, grid_points=a.grid_points,
            rounds=a.rounds, start=DEFAULT, log=lambda s: print(s, flush=True),
        )  # fmt: skip
    print("best", {k: getattr(best, k) for k in GLOBAL_BOUNDS}, f"{score:.4f}")


if __name__ == "__main__":
    main()
