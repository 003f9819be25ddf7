"""Speed of planning and simulating the synthetic industrial recommendation model on 128 H100.

    .venv/bin/python benchmarks/bench_recsys.py

``dlrm-industrial-synthetic`` (560 embedding tables, 3.4 TB of fp32 embeddings, DCNv2) on 128
H100 SXM 80GB: the sharding plan (enumerate, estimate, propose, partition) and the simulated step,
through ``planner.simulate``. One warm-up run (catalog, presets, imports), then the best of the
timed runs. Target: under 10 s. Exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time

import planner

TARGET_S = 10.0
SCENARIO = {"accelerator": "h100-sxm-80gb", "gpus": 128}


def timed() -> tuple[float, object]:
    gc.collect()
    t0 = time.perf_counter()
    r = planner.simulate("dlrm-industrial-synthetic", **SCENARIO)
    return time.perf_counter() - t0, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; the best is kept (default 3)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    a = ap.parse_args()
    cold, r = timed()
    best = min(timed()[0] for _ in range(a.repeats))
    ok = cold < TARGET_S and best < TARGET_S
    figures = {
        "first_run_s": cold,
        "best_s": best,
        "tables": r.scenario["model"]["tables"],  # type: ignore[attr-defined]
        "embedding_gib": r.scenario["model"]["embedding_gib"],  # type: ignore[attr-defined]
        "plan": r.sharding["counts"],  # type: ignore[attr-defined]
        "proposals_tried": r.sharding["proposals_tried"],  # type: ignore[attr-defined]
        "samples_per_s": r.samples_per_s,  # type: ignore[attr-defined]
        "target_under_10s": ok,
    }
    if a.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"dlrm-industrial-synthetic ({figures['tables']} tables, {figures['embedding_gib']:,.0f} GiB) on 128 x H100"
        )
        print(
            f"  plan + simulate: first run {cold:.2f} s, best of {a.repeats} {best:.2f} s  [< {TARGET_S:g} s: {'ok' if ok else 'MISSED'}]"
        )
        print(
            f"  plan {figures['plan']} after {figures['proposals_tried']} proposals; {r.samples_per_s:,.0f} samples/s"
        )  # type: ignore[attr-defined]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
