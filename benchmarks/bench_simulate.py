"""Speed of one simulated step: GPT-3 175B on 1024 and 16384 A100 (tp 8, pp 16, 96 micro-batches
per replica). The step graph holds one rank per pipeline stage, so its size, and the time to
simulate it, should not grow with the number of data-parallel replicas.

    .venv/bin/python benchmarks/bench_simulate.py

Targets: each in-process simulation under 1 s; the 16384-GPU one at most 1.3x the 1024-GPU one.
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import planner
from planner.transformer.result import StepResult

TARGET_S = 1.0
TARGET_RATIO = 1.3
MICRO_BATCHES = 96


def scenario(gpus: int) -> dict:
    return dict(
        accelerator="a100-sxm-80gb",
        gpus=gpus,
        tp=8,
        pp=16,
        micro_batch=1,
        global_batch=MICRO_BATCHES * gpus // 128,  # dp = gpus / 128, 96 micro-batches per replica
        recompute="full",
    )


def timed(gpus: int) -> tuple[float, StepResult]:
    gc.collect()  # start each run from a clean heap so collections triggered by earlier runs don't land in it
    t0 = time.perf_counter()
    result = planner.simulate("gpt3-175b", **scenario(gpus))
    return time.perf_counter() - t0, result


def best_of(sizes: tuple[int, ...], repeats: int) -> dict[int, tuple[float, StepResult]]:
    """Best wall time per size; one warm-up run each (catalog, presets, imports), then the sizes
    alternate so that neither one always runs first."""
    for g in sizes:
        timed(g)
    best: dict[int, tuple[float, StepResult]] = {}
    for _ in range(repeats):
        for g in sizes:
            dt, r = timed(g)
            if g not in best or dt < best[g][0]:
                best[g] = (dt, r)
    return best


def cli_time(gpus: int, repeats: int) -> float:
    exe = Path(sys.executable).with_name("planner")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "planner.cli"]
    sc = scenario(gpus)
    cmd += [
        "simulate", "--model", "gpt3-175b", "--accelerator", sc["accelerator"], "--gpus", str(gpus),
        "--tp", "8", "--pp", "16", "--micro-batch", "1", "--global-batch", str(sc["global_batch"]),
        "--recompute", "full", "--json",
    ]  # fmt: skip
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"CLI failed: {p.stderr.strip()}")
        json.loads(p.stdout)
        best = min(best, dt)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per case; the best is kept (default 3)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    a = ap.parse_args()
    best = best_of((1024, 16384), a.repeats)
    small, r_small = best[1024]
    large, r_large = best[16384]
    ratio = large / small
    cli = cli_time(1024, a.repeats)
    ok_small, ok_large, ok_ratio = small < TARGET_S, large < TARGET_S, ratio <= TARGET_RATIO
    figures = {
        "simulate_1024_s": small,
        "simulate_16384_s": large,
        "ratio_16384_over_1024": ratio,
        "tasks_1024": r_small.tasks,
        "tasks_16384": r_large.tasks,
        "cli_1024_s": cli,
        "targets": {
            "simulate_1024_under_1s": ok_small,
            "simulate_16384_under_1s": ok_large,
            "ratio_at_most_1.3": ok_ratio,
        },
    }
    if a.json:
        print(json.dumps(figures, indent=2))
    else:
        mark = {True: "ok", False: "MISSED"}
        head = f"gpt3-175b, a100-sxm-80gb, tp 8, pp 16, {MICRO_BATCHES} micro-batches per replica"
        print(f"{head}, best of {a.repeats}")
        for label, t, r, ok in (
            ("1024 GPUs  (dp 8):  ", small, r_small, ok_small),
            ("16384 GPUs (dp 128):", large, r_large, ok_large),
        ):
            print(f"  {label} {t:7.3f} s   {r.tasks} tasks   [< {TARGET_S:g} s: {mark[ok]}]")
        print(f"  ratio 16384/1024:    {ratio:7.3f}            [<= {TARGET_RATIO:g}: {mark[ok_ratio]}]")
        print(f"  CLI end to end, 1024 GPUs (subprocess, imports included): {cli:.3f} s")
    return 0 if (ok_small and ok_large and ok_ratio) else 1


if __name__ == "__main__":
    sys.exit(main())
