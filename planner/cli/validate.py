"""``planner validate``: predict published runs and report the error (planner.validate)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from planner.cli.common import add_calibration_arg, add_json_arg, calibration, refuse_input_as_output


def run(a: argparse.Namespace) -> int:
    """Validate every file; write the Markdown report (atomically, never over an input) if asked; print."""
    from planner.calibration import DEFAULT
    from planner.io import atomic_write_text
    from planner.validate import GLOBAL_FITTED, format_report, markdown_report, validate_file

    refuse_input_as_output("--markdown", a.markdown, [*a.file, a.calibration])
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


def add_command(sub: Any) -> None:
    """The ``validate`` subcommand."""
    val = sub.add_parser("validate", help="predict published runs and report the error")
    val.add_argument("file", nargs="+", help="CSV file(s) in the schema of shared/validation/README.md")
    val.add_argument("--markdown", metavar="OUT", help="also write the validation report (docs/validation.md)")
    add_json_arg(val, "the report")
    val.add_argument("--verbose", "-v", action="store_true", help="print every row")
    add_calibration_arg(val)
    val.set_defaults(func=run)
