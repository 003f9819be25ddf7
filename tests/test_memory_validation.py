"""validation/memory.csv: published peak-memory figures, and ``planner validate`` reporting the
memory error (the predicted figure of each row's quantity / measured GiB - 1) on them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from planner.hardware import RUNTIME_RESERVE_GIB
from planner.transformer.memory import ALLOCATOR_FRAGMENTATION
from planner.validate import format_report, read_rows, validate_rows
from planner.validate.rows import schema_of

MEMORY_CSV = Path(__file__).resolve().parent.parent / "validation" / "memory.csv"


def test_memory_rows_are_sourced_and_say_what_was_measured() -> None:
    rows = read_rows(MEMORY_CSV)
    assert schema_of(rows[0]).measured == "measured_peak_gib"
    for r in rows:
        assert r["source"].strip() and r["derivation"].strip(), r["id"]
        assert r["quantity"] in {"max_reserved_gib", "max_allocated_gib", "activations_gib"}, r["id"]
        v = float(r["measured_peak_gib"])
        assert math.isfinite(v) and 0 < v < 200, r["id"]


def test_validate_reports_the_memory_error() -> None:
    rows = [r for r in read_rows(MEMORY_CSV) if r["id"].endswith(("t1-1", "t3-1"))]
    rep = validate_rows(rows, file="memory.csv", workers=1)
    assert len(rep.rows) == 2
    for r in rep.rows:
        assert r.measured_step_time_s is None and r.measured_peak_gib is not None and r.peak_gib is not None
        # a max_reserved_gib row: the allocated peak (the peak less the runtime reserve outside the
        # allocator) plus the caching allocator's free blocks
        reserved = (r.peak_gib - RUNTIME_RESERVE_GIB) / (1 - ALLOCATOR_FRAGMENTATION)
        assert r.error == pytest.approx(reserved / r.measured_peak_gib - 1)
    assert rep.median_abs_error == pytest.approx(sorted(abs(r.error) for r in rep.rows)[0] / 2
                                                 + sorted(abs(r.error) for r in rep.rows)[1] / 2)  # fmt: skip
    text = format_report(rep, verbose=True)
    assert "peak memory per GPU" in text and "GiB" in text


def test_memory_error_on_the_torchtitan_tables_stays_small() -> None:
    """Every row is predicted, the pipeline ones (FSDP with pp 8) included, and the issue's targets
    hold: median |error| at most 10 %, max at most 25 % (issue 15; 10.5 % and 27 % on 12 rows before
    FSDP with pipeline stages and the allocator's reserve were modelled)."""
    rep = validate_rows(read_rows(MEMORY_CSV), file="memory.csv", workers=1)
    errors = [r.error for r in rep.rows if r.error is not None]
    assert len(errors) == len(rep.rows) == 18
    assert rep.median_abs_error is not None and rep.median_abs_error <= 0.10
    assert rep.max_abs_error is not None and rep.max_abs_error <= 0.25


def test_the_measured_quantity_picks_the_predicted_figure() -> None:
    """One layout read three ways: reserved > allocated > activations; an unknown quantity is a
    one-line input error, not a traceback."""
    row = next(r for r in read_rows(MEMORY_CSV) if r["id"].endswith("t1-1"))
    got = {}
    for q in ("max_reserved_gib", "max_allocated_gib", "activations_gib"):
        rep = validate_rows([{**row, "quantity": q}], file="memory.csv", workers=1)
        got[q] = rep.rows[0].error
    assert got["max_reserved_gib"] > got["max_allocated_gib"] > got["activations_gib"]
    bad = validate_rows([{**row, "quantity": "nvidia_smi_gib"}], file="memory.csv", workers=1)
    assert bad.rows[0].error is None and "quantity" in (bad.rows[0].problem or "")
