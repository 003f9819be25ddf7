"""Speed of ``planner calibrate``: fit the constants on half of vtrain_multi, report on the other half.

    .venv/bin/python benchmarks/bench_calibrate.py            # a table
    .venv/bin/python benchmarks/bench_calibrate.py --json     # the same figures as JSON

Reads ``../shared/validation/vtrain_multi.csv`` (not copied into the project): the even-position
rows are the user's "measured runs", the odd-position rows the hold-out. Runs the full fit (every
constant of ``planner.calibrate.fit.BOUNDS``, the default grid and rounds) on all cores, in
process, once. Prints the wall time, the predictions made, predictions per second, and the
hold-out error before and after. Target: under 300 s on 2 cores (a user fitting a few dozen runs
waits minutes, not hours); exits 1 when it is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from planner.calibrate.fit import calibrate_rows, load_rows

DATA = Path(__file__).resolve().parents[2] / "shared" / "validation" / "vtrain_multi.csv"
TARGET_S = 300.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--data", default=str(DATA), help="a validation CSV (default: shared vtrain_multi.csv)")
    a = ap.parse_args()
    rows = load_rows([a.data])
    train, test = rows[0::2], rows[1::2]
    rep = calibrate_rows(train, name="bench", holdout=test)
    figures = {
        "train_rows": len(train),
        "holdout_rows": len(test),
        "wall_s": rep.wall_s,
        "predictions": rep.predictions,
        "predictions_per_s": rep.predictions / rep.wall_s if rep.wall_s else None,
        "fitted": {c.name: c.value for c in rep.constants if c.fitted},
        "holdout_before": rep.before.model_dump(),
        "holdout_after": rep.after.model_dump(),
        "target_under_300s": rep.wall_s < TARGET_S,
    }
    if a.json:
        print(json.dumps(figures, indent=2))
    else:
        b, f = rep.before, rep.after
        print(f"planner calibrate on {len(train)} rows of {Path(a.data).name}, hold-out {len(test)} rows")
        print(
            f"  wall time            {rep.wall_s:8.1f} s   [< {TARGET_S:.0f} s: {'ok' if figures['target_under_300s'] else 'MISSED'}]"
        )
        print(f"  predictions          {rep.predictions:8d}     ({figures['predictions_per_s']:.1f}/s)")
        print(f"  fitted               {figures['fitted'] or 'nothing (defaults kept)'}")
        for label, s in (("hold-out before", b), ("hold-out after", f)):
            print(
                f"  {label:20s} median {s.median_abs_error:6.1%}  mean {s.mean_abs_error:6.1%}  max {s.max_abs_error:6.1%}"
            )
    return 0 if figures["target_under_300s"] else 1


if __name__ == "__main__":
    sys.exit(main())
