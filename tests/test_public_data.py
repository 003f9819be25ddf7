"""The public-run files under validation/ parse with the validator and keep their promises.

Each row must have its schema's columns, a source, a finite positive measurement and a
derivation; no row may come from the sources kept apart as the independent check (issue 14).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from planner.validate import SCHEMAS, read_rows
from planner.validate.rows import schema_of

VALIDATION = Path(__file__).resolve().parents[1] / "validation"
FILES = sorted(VALIDATION.glob("*.csv"))
KEEP_APART = (
    "mlperf training v3",
    "mlperf training v4",
    "mlperf training v5",
    "megascale",
    "llm-foundry",
    "llmfoundry",
    "performance-summary",
    "performance_summary",
    "megatron-bridge",
)
"""Sources whose rows must stay out (lower-case substrings of the ``source`` column)."""


def test_files_exist() -> None:
    names = {p.name for p in FILES}
    assert {"famous_runs.csv", "public_runs.csv"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_rows_are_sourced_and_measured(path: Path) -> None:
    rows = read_rows(path)  # raises PlannerInputError on a missing column
    schema = schema_of(rows[0])
    assert schema in SCHEMAS.values()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for r in rows:
        assert r["source"].strip(), r["id"]
        assert r["derivation"].strip(), r["id"]
        assert r["confidence"] in {"high", "medium", "low"}, r["id"]
        value = float(r[schema.measured])
        assert math.isfinite(value) and value > 0, r["id"]
        source = r["source"].lower()
        assert not any(k in source for k in KEEP_APART), f"{r['id']} cites a kept-apart source"


def test_famous_runs_cover_the_acceptance_list() -> None:
    rows = read_rows(VALIDATION / "famous_runs.csv")
    gpus = {(r["model"].split()[0].lower(), int(r["num_gpus"])) for r in rows}
    for want in [
        ("llama", 8192),
        ("llama", 16384),
        ("nemotron-4", 6144),
        ("deepseek-v3", 2048),
        ("opt-175b", 992),
        ("bloom-176b", 384),
        ("gpt", 1536),
    ]:
        assert want in gpus, want


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_layout_multiplies_to_the_gpu_count(path: Path) -> None:
    """tp x pp x dp x cp = GPUs wherever the source gave the whole layout (EP lies inside DP)."""
    for r in read_rows(path):
        parts = [r.get(c, "") for c in ("tp", "pp", "dp")]
        if all(p.strip() for p in parts):
            cp = int(r.get("cp") or 1)
            assert math.prod(int(p) for p in parts) * cp == int(r["num_gpus"]), r["id"]
