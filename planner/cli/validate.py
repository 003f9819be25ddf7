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
    """``--cross-validate BY``: refit without each group and predict it (planner.validate.crossval)."""
    from planner.errors import PlannerInputError
    from planner.validate.crossval import cross_validate, format_crossval, write_uncertainty

    if not a.cross_validate:
        raise PlannerInputError("write-uncertainty", "needs --cross-validate (accelerator is the band's grouping)")
    refuse_input_as_output("--write-uncertainty", a.write_uncertainty, [*a.file, a.calibration])
    rep = cross_validate(a.file, a.cross_validate, max_rows_per_fit=a.max_rows_per_fit)
    if a.write_uncertainty:
        cmd = (
            f"planner validate --cross-validate {a.cross_validate} --max-rows-per-fit {a.max_rows_per_fit} "
            + " ".join(a.file)
        )
        write_uncertainty(rep, a.write_uncertainty, cmd + f" --write-uncertainty {a.write_uncertainty}")
    print(rep.model_dump_json(indent=2) if a.json else format_crossval(rep))
    return 0


def add_command(sub: Any) -> None:
    """The ``validate`` subcommand."""
    val = sub.add_parser("validate", help="predict published runs and report the error")
    val.add_argument("file", nargs="+", help="CSV file(s) in the schema of shared/validation/README.md")
    val.add_argument("--markdown", metavar="OUT", help="also write the validation report (docs/validation.md)")
    add_json_arg(val, "the report")
    val.add_argument("--verbose", "-v", action="store_true", help="print every row")
    add_calibration_arg(val)
    val.add_argument("--cross-validate", choices=("accelerator", "framework", "source"), metavar="BY",
                     help="refit the global constants without each group (accelerator, framework or source) and "
                     "predict it: how planner does on what it was not fitted on")  # fmt: skip
    val.add_argument("--max-rows-per-fit", type=positive_int("--max-rows-per-fit"), default=60, metavar="N",
                     help="with --cross-validate: fit each refit on at most N rows, sampled across sources "
                     "(default 60; more is slower and steadier)")  # fmt: skip
    val.add_argument("--write-uncertainty", metavar="OUT",
                     help="with --cross-validate: write the error-band table (planner/data/uncertainty.json) "
                     "from the held-out residuals")  # fmt: skip
    val.set_defaults(func=run)
