"""Regression guard on accuracy: a fixed sample of each validation file must stay within bounds.

The bounds are the targets of the validation issue (median |error|: vtrain_multi 5 %, vtrain_single
8 %, published fully specified rows 10 %). They guard against regressions; they are not tuned here.
The data is read from ../shared/validation (it is not copied into the project).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from planner.cli import main
from planner.validate import read_rows, validate_rows

SHARED = Path(__file__).resolve().parents[2] / "shared" / "validation"
pytestmark = pytest.mark.skipif(not SHARED.exists(), reason="../shared/validation is not beside the project")


def _median_abs(rows: list[dict[str, str]]) -> tuple[float, int]:
    rep = validate_rows(rows)
    errs = [abs(r.error) for r in rep.rows if r.error is not None]
    return statistics.median(errs), len(errs)


def test_vtrain_multi_median_within_5_percent() -> None:
    rows = read_rows(SHARED / "vtrain_multi.csv")
    med, n = _median_abs(rows)
    assert n >= 50
    assert med <= 0.05, f"vtrain_multi median |error| {med:.1%} > 5 %"


def test_vtrain_single_median_within_8_percent() -> None:
    rows = read_rows(SHARED / "vtrain_single.csv")[::3]  # a fixed sample of 240 rows
    med, n = _median_abs(rows)
    assert n >= 200
    assert med <= 0.08, f"vtrain_single median |error| {med:.1%} > 8 %"


@pytest.mark.slow  # simulates every published row: the longest test here
def test_published_fully_specified_median_within_10_percent() -> None:
    rep = validate_rows(read_rows(SHARED / "published.csv"))
    full = rep.fully_specified
    assert full.rows >= 100
    assert full.median_abs_error is not None and full.median_abs_error <= 0.10, (
        f"published fully specified median |error| {full.median_abs_error:.1%} > 10 %"
    )
    # rows with blank fields are reported apart, and name the fields they defaulted
    assert rep.with_defaults.rows > 0
    assert all(r.defaulted for r in rep.rows if r.error is not None and r.id.startswith("megatron_readme"))


def test_validate_json_contract(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sample = tmp_path / "sample.csv"
    lines = (SHARED / "vtrain_multi.csv").read_text().splitlines()
    sample.write_text("\n".join(lines[:6]) + "\n")
    md = tmp_path / "report.md"
    assert main(["validate", str(sample), "--json", "--markdown", str(md)]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("rows", "median_abs_error", "mean_abs_error", "max_abs_error"):
        assert key in out
    row = out["rows"][0]
    for key in ("id", "predicted_step_time_s", "measured_step_time_s", "error"):
        assert key in row
    assert row["error"] == pytest.approx(row["predicted_step_time_s"] / row["measured_step_time_s"] - 1)
    text = md.read_text()
    assert "| sample.csv |" in text and "Hold-out" in text
