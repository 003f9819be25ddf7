"""Speed of ``planner calibrate`` on vtrain_multi: the whole file as the CLI fits it, and a hold-out split.

    .venv/bin/python benchmarks/bench_calibrate.py            # a table
    .venv/bin/python benchmarks/bench_calibrate.py --json     # the same figures as JSON

Reads ``../shared/validation/vtrain_multi.csv`` (not copied into the project) and runs, in process,
on all cores, once each:

* ``file``: what ``planner calibrate vtrain_multi.csv`` does: every row, every constant of
  ``planner.calibrate.fit.BOUNDS``, the default grid and rounds, 5-fold cross-validation;
* ``holdout``: the even-position rows are the user's "measured runs", the odd-position rows the
  hold-out.

Prints, per run, the wall time, the CPU time of this process and its workers together, the
predictions made, the fitted constants and the error before and after. Target: each run under
20 s on 2 cores (the whole file took about 90 s on a quiet machine before calibration re-timed
compiled graphs from arrays, issue 13); exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from planner.calibrate.fit import calibrate_rows, load_rows

DATA = Path(__file__).resolve().parents[2] / "shared" / "validation" / "vtrain_multi.csv"
TARGET_S = 20.0


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished workers."""
    return sum(
        r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def run(name: str, train: list, holdout: list | None) -> dict:
    """One calibration, timed: its figures."""
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    rep = calibrate_rows(train, name="bench", holdout=holdout)
    wall = time.perf_counter() - wall0
    return {
        "run": name,
        "rows": len(train),
        "holdout_rows": len(holdout or []),
        "validation": rep.validation,
        "wall_s": wall,
        "cpu_s": _cpu_s() - cpu0,
        "predictions": rep.predictions,
        "fitted": {c.name: c.value for c in rep.constants if c.fitted},
        "before": rep.before.model_dump(),
        "after": rep.after.model_dump(),
        "target_met": wall < TARGET_S,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--data", default=str(DATA), help="a validation CSV (default: shared vtrain_multi.csv)")
    a = ap.parse_args()
    rows = load_rows([a.data])
    runs = [run("file", rows, None), run("holdout", rows[0::2], rows[1::2])]
    if a.json:
        print(json.dumps(runs, indent=2))
    else:
        print(f"planner calibrate on {Path(a.data).name} (target: each run under {TARGET_S:.0f} s)")
        for f in runs:
            seen = f"{f['rows']} rows" + (f", hold-out {f['holdout_rows']}" if f["holdout_rows"] else "")
            print(f"  {f['run']:8s} {seen}, {f['validation']}")
            print(
                f"    wall {f['wall_s']:6.1f} s  [{'ok' if f['target_met'] else 'MISSED'}]   cpu {f['cpu_s']:6.1f} s"
                f"   predictions {f['predictions']} ({f['predictions'] / f['wall_s']:.0f}/s)"
            )
            print(f"    fitted {f['fitted'] or 'nothing (defaults kept)'}")
            for label in ("before", "after"):
                s = f[label]
                print(
                    f"    {label:6s} median {s['median_abs_error']:6.1%}  mean {s['mean_abs_error']:6.1%}"
                    f"  max {s['max_abs_error']:6.1%}"
                )
    return 0 if all(f["target_met"] for f in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
