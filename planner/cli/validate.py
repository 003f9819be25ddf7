"""``planner validate``: predict published runs and report the error (planner.validate)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from planner.cli.common import (
    add_calibration_arg,
    add_json_arg,
    calibration,
    positive_int,
    refuse_input_as_output,
)


def run(a: argparse.Namespace) -> int:
    """Validate every file; write the Markdown report (atomically, never over an input) if asked; print."""
    from planner.calibration import DEFAULT
    from planner.io import atomic_write_text
    from planner.validate import GLOBAL_FITTED, format_report, markdown_report, validate_file

    refuse_input_as_output("--markdown", a.markdown, [*a.file, a.calibration])
    if a.cross_validate or a.write_uncertainty:
        return run_crossval(a)
    calib = calibration(a) or DEFAULT
    reports = [validate_file(f, calib) for f in a.file]
    if a.markdown:
        cmd = "planner validate " + " ".join(a.file) + f" --markdown {a.markdown}"
        text = markdown_report(reports, cmd, {k: getattr(calib, k) for k in GLOBAL_FITTED})
        atomic_write_text(a.markdown, text, field="markdown")
    if a.json:
        if len(reports) == 1:
            print(reports[0].model_dump_json(indent=2))
        else:
            print(json.dumps({"reports": [r.model_dump() for r in reports]}, indent=2))
    else:
        print("\n\n".join(format_report(r, verbose=a.verbose) for r in reports))
    return 0


def run_crossval(a: argparse.Namespace) -> int:
    """``--cross-validate BY[,BY...]``: refit without each group and predict it (planner.validate.crossval);
    with ``--markdown``, the validation page led by these tables; with ``--write-uncertainty``, the band's table."""
    from planner.errors import PlannerInputError
    from planner.io import atomic_write_text
    from planner.validate import GLOBAL_FITTED, markdown_report, validate_file
    from planner.validate.crossval import cross_validate_many, format_crossval, markdown_lead, write_uncertainty

    if not a.cross_validate:
        raise PlannerInputError("write-uncertainty", "needs --cross-validate (accelerator is the band's grouping)")
    if a.calibration:
        raise PlannerInputError("calibration", "--cross-validate refits from planner's default constants; drop it")
    if a.write_uncertainty and "accelerator" not in a.cross_validate:
        raise PlannerInputError("write-uncertainty", "the band is made of leave-one-accelerator-out residuals: "
                                "--cross-validate must include accelerator")  # fmt: skip
    refuse_input_as_output("--write-uncertainty", a.write_uncertainty, [*a.file, a.markdown])
    reps = cross_validate_many(a.file, a.cross_validate, max_rows_per_fit=a.max_rows_per_fit, rounds=a.fit_rounds,
                               max_rows_per_file=a.max_rows_per_file, workers=a.workers)  # fmt: skip
    cmd = (f"planner validate {' '.join(a.file)} --cross-validate {','.join(a.cross_validate)} "
           f"--max-rows-per-fit {a.max_rows_per_fit} --fit-rounds {a.fit_rounds}"
           + (f" --max-rows-per-file {a.max_rows_per_file}" if a.max_rows_per_file else ""))  # fmt: skip
    if a.write_uncertainty:
        acc = next(r for r in reps if r.by == "accelerator")
        write_uncertainty(acc, a.write_uncertainty, cmd + f" --write-uncertainty {a.write_uncertainty}")
    if a.markdown:
        from planner.calibration import DEFAULT

        reports = [validate_file(f, DEFAULT) for f in a.file]
        lead = markdown_lead(reps)
        page = markdown_report(reports, cmd + f" --markdown {a.markdown}" + (f" --write-uncertainty {a.write_uncertainty}" if a.write_uncertainty else ""),
                               {k: getattr(DEFAULT, k) for k in GLOBAL_FITTED}, lead=lead)  # fmt: skip
        atomic_write_text(a.markdown, page, field="markdown")
    if a.json:
        print(json.dumps({"cross_validation": [r.model_dump() for r in reps]}, indent=2) if len(reps) > 1
              else reps[0].model_dump_json(indent=2))  # fmt: skip
    else:
        print("\n\n".join(format_crossval(r) for r in reps))
    return 0


def _groupings(text: str) -> list[str]:
    """argparse type of --cross-validate: accelerator, framework, source, or a comma-separated list."""
    from planner.validate.crossval import GROUPINGS

    out = [t.strip() for t in text.split(",") if t.strip()]
    if not out or any(t not in GROUPINGS for t in out):
        raise argparse.ArgumentTypeError(
            f"--cross-validate takes {', '.join(GROUPINGS)} or a comma-separated list, got '{text}'"
        )
    return list(dict.fromkeys(out))


def add_command(sub: Any) -> None:
    """The ``validate`` subcommand."""
    val = sub.add_parser("validate", help="predict published runs and report the error")
    val.add_argument("file", nargs="+", help="CSV file(s) in the schema of shared/validation/README.md")
    val.add_argument("--markdown", metavar="OUT", help="also write the validation report (docs/validation.md)")
    add_json_arg(val, "the report")
    val.add_argument("--verbose", "-v", action="store_true", help="print every row")
    add_calibration_arg(val)
    val.add_argument("--cross-validate", type=_groupings, metavar="BY",
                     help="refit the global constants without each group (accelerator, framework or source) and "
                     "predict it: how planner does on what it was not fitted on (several: accelerator,framework,source)")  # fmt: skip
    val.add_argument("--max-rows-per-fit", type=positive_int("--max-rows-per-fit"), default=60, metavar="N",
                     help="with --cross-validate: fit each refit on at most N rows, sampled across sources "
                     "(default 60; more is slower and steadier)")  # fmt: skip
    val.add_argument("--fit-rounds", type=positive_int("--fit-rounds"), default=2, metavar="N",
                     help="with --cross-validate: rounds of each refit's coordinate search (default 2; 1 is coarser)")  # fmt: skip
    val.add_argument("--max-rows-per-file", type=positive_int("--max-rows-per-file"), metavar="N",
                     help="with --cross-validate: predict at most N rows of each file, evenly spaced (a reduced setting)")  # fmt: skip
    val.add_argument("--workers", type=positive_int("--workers"),
                     help="with --cross-validate: processes for the predictions (default: cores)")  # fmt: skip
    val.add_argument("--write-uncertainty", metavar="OUT",
                     help="with --cross-validate: write the error-band table (planner/data/uncertainty.json) "
                     "from the held-out residuals")  # fmt: skip
    val.set_defaults(func=run)
