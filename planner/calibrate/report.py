"""What ``planner calibrate`` reports about a fit: each constant (fitted, or kept and why), the
error before and after on rows the fit did not see, and the profile's metadata; and its text."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from planner.calibration import Calibration
from planner.validate import Summary


class ConstantFit(BaseModel):
    """One constant: its default, fitted value and range; or why it kept its default."""

    name: str
    default: float
    value: float
    low: float
    high: float
    fitted: bool
    at_bound: bool = False
    reason: str | None = None  # why it was not fitted ("not identifiable from these rows: ...")


class RowError(BaseModel):
    id: str
    measured_step_time_s: float
    before_error: float  # default calibration
    after_error: float  # held out: predicted by a calibration fitted without this row


class FitReport(BaseModel):
    """What ``planner calibrate`` found: the constants, and the error before and after on held-out rows."""

    name: str
    accelerator: str
    sources: list[str]
    rows: int
    validation: str  # "leave-one-out", "5-fold cross-validation" or "hold-out (N rows)"
    constants: list[ConstantFit]
    before: Summary  # default calibration on the evaluated rows
    after: Summary  # fitted calibration on rows it did not see
    in_sample: Summary  # the profile's calibration on all its training rows
    held_out: list[RowError]
    skipped: list[str]  # rows that could not be simulated, with the reason
    warning: str | None = None  # when the fitted profile does worse than the default on held-out rows
    predictions: int
    wall_s: float

    def calibration(self) -> Calibration:
        return Calibration(name=self.name, **{c.name: c.value for c in self.constants})

    def metadata(self) -> dict[str, Any]:
        """The profile's metadata block."""

        def s(x: Summary) -> dict[str, Any]:
            return {"rows": x.rows, "median_abs_error": x.median_abs_error, "mean_abs_error": x.mean_abs_error,
                    "max_abs_error": x.max_abs_error}  # fmt: skip

        return {
            "method": "planner calibrate (rows)",
            "accelerator": self.accelerator,
            "sources": self.sources,
            "rows_used": self.rows,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "validation": self.validation,
            "errors_before": s(self.before),
            "errors_after": s(self.after),
            "fitted": {c.name: c.value for c in self.constants if c.fitted},
            **({"warning": self.warning} if self.warning else {}),
            "kept": {c.name: c.reason for c in self.constants if not c.fitted},
        }


def _pct(x: float | None) -> str:
    return "    -  " if x is None else f"{100 * x:6.1f}%"


def format_fit(rep: FitReport) -> str:
    """The human-readable report of a fit."""
    lines = [
        f"calibration: {rep.name}  ({rep.accelerator}, {rep.rows} rows from {', '.join(Path(s).name for s in rep.sources)})",
        "",
        f"{'constant':22s} {'default':>10s} {'fitted':>10s}  range",
    ]
    for c in rep.constants:
        val = f"{c.value:10.4g}" if c.fitted else f"{'(kept)':>10s}"
        note = "  at the bound of its range" if c.at_bound else ""
        lines.append(f"{c.name:22s} {c.default:10.4g} {val}  [{c.low:g}, {c.high:g}]{note}")
    kept = [c for c in rep.constants if not c.fitted]
    if kept:
        lines.append("")
        lines += [f"{c.name}: {c.reason}" for c in kept]
    lines += [
        "",
        f"error |predicted/measured - 1| on rows the fit did not see ({rep.validation}):",
        f"{'':28s} {'rows':>5s} {'median':>7s} {'mean':>7s} {'max':>7s}",
        f"{'before (default calibration)':28s} {rep.before.rows:5d} {_pct(rep.before.median_abs_error)} "
        f"{_pct(rep.before.mean_abs_error)} {_pct(rep.before.max_abs_error)}",
        f"{'after (' + rep.name + ')':28s} {rep.after.rows:5d} {_pct(rep.after.median_abs_error)} "
        f"{_pct(rep.after.mean_abs_error)} {_pct(rep.after.max_abs_error)}",
        f"{'in-sample (all fitted rows)':28s} {rep.in_sample.rows:5d} {_pct(rep.in_sample.median_abs_error)} "
        f"{_pct(rep.in_sample.mean_abs_error)} {_pct(rep.in_sample.max_abs_error)}",
    ]
    if rep.warning:
        lines += ["", f"warning: {rep.warning}"]
    if rep.skipped:
        lines += ["", f"{len(rep.skipped)} row(s) could not be simulated and were left out:"]
        lines += [f"  {s}" for s in rep.skipped]
    lines += ["", f"{rep.predictions} predictions in {rep.wall_s:.1f} s"]
    return "\n".join(lines)
