"""Fit the few global constants of planner/calibration.py on the train half of the validation data.

    .venv/bin/python tools/fit_global.py [--rounds 2]

Coordinate search over a small grid per constant; the objective is the mean over the three files
(vtrain_multi, vtrain_single, published) of each file's median absolute error on the TRAIN half
(even rows). The test half (odd rows) is never looked at here; tools/evaluate.py --half test reports it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
from pathlib import Path

from planner.calibration import DEFAULT, Calibration
from tools.evaluate import evaluate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "validation"
FILES = [str(SHARED / f) for f in ("vtrain_multi.csv", "vtrain_single.csv", "published.csv")]

GRID = {
    "gemm_mamf_fraction": [0.8, 0.85, 0.9, 0.95],
    "attention_fraction": [0.3, 0.4, 0.5, 0.6],
    "layer_host_s": [600e-6, 800e-6, 900e-6, 1000e-6],
    "gemm_ramp_s": [2.2e-6, 5e-6, 10e-6],
    "hbm_efficiency": [0.7, 0.8, 0.85, 0.9],
    "nic_efficiency": [0.6, 0.75, 0.85],
}


def objective(res: dict[str, list[float]]) -> float:
    return statistics.fmean(statistics.median([abs(e) for e in v]) for v in res.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    best = DEFAULT.model_dump()
    with mp.Pool(2) as pool:
        score = objective(evaluate(FILES, Calibration(**best), "train", pool))
        print(f"start {score:.4f}", flush=True)
        for rnd in range(a.rounds):
            for key, values in GRID.items():
                for v in values:
                    if v == best[key]:
                        continue
                    trial = {**best, key: v}
                    s = objective(evaluate(FILES, Calibration(**trial), "train", pool))
                    print(f"round {rnd} {key}={v}: {s:.4f}", flush=True)
                    if s < score - 1e-4:
                        score, best = s, trial
                        print(f"  -> best {score:.4f}", flush=True)
        print("best", {k: best[k] for k in GRID}, f"{score:.4f}")


if __name__ == "__main__":
    main()
