"""Speed of ``planner sweep``: points per second for a 1000-point sweep with 1 and 2 local worker
processes, into a fresh SQLite store each time (every point committed as it finishes).

    .venv/bin/python benchmarks/bench_sweep.py [--json] [--workers 1,2]

The points are cheap: GPT-3 1.7B on A100 80GB, gpus 8..128 x micro-batch 1..8 x tp 1..16 x global
batch 128..1280 (product, 1000 points; those that break a layout rule are recorded as errors, as
a sweep does). Timed in-process through ``planner.sweep.run_sweep`` after one warm-up point.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from planner.sweep import run_sweep

SPEC = {
    "base": {"model": "gpt3-1.7b", "accelerator": "a100-sxm-80gb"},
    "axes": {
        "gpus": [8, 16, 32, 64, 128],
        "micro_batch": [1, 2, 4, 8],
        "tp": [1, 2, 4, 8, 16],
        "global_batch": [128 * k for k in range(1, 11)],
    },
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    a = ap.parse_args()
    run_sweep({"base": {**SPEC["base"], "gpus": 8, "global_batch": 64}}, workers=1)  # warm-up
    out = []
    for w in [int(x) for x in a.workers.split(",")]:
        with tempfile.TemporaryDirectory() as d:
            rep, _ = run_sweep(SPEC, out=Path(d) / "bench.db", workers=w)
        out.append(
            {"workers": w, "points": rep.points, "errors": rep.errors, "wall_s": round(rep.wall_s, 2),
             "points_per_s": round(rep.points / rep.wall_s, 1)}
        )  # fmt: skip
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{'workers':>8} {'points':>7} {'errors':>7} {'wall s':>8} {'points/s':>9}")
        for r in out:
            print(f"{r['workers']:>8} {r['points']:>7} {r['errors']:>7} {r['wall_s']:>8} {r['points_per_s']:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
