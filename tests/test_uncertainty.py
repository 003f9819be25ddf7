"""The error band (planner.uncertainty): its arithmetic by hand, its widening, the shipped table, and its
presence in simulate, search and compare output (JSON and text)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.cli import main
from planner.search import compare
from planner.uncertainty import DATA_FILE, MIN_ROWS, band, band_table, generation, group_keys, percentile


def test_generation_groups_chips_of_one_architecture() -> None:
    assert generation("a100-sxm-80gb") == generation("a100-sxm-40gb") == "ampere"
    assert generation("h800-sxm-80gb") == generation("h100-sxm-96gb-hbm2e") == "hopper"
    assert generation("tpu-v5p") == "tpu-v5p" and generation("tpu-v4") == "tpu-v4"
    assert generation("mystery-9000") == "mystery"


def test_percentile_by_hand() -> None:
    # numpy's linear method on 0..10: the 10th percentile is 1, the 90th 9; on [1, 2]: 1.1 and 1.9
    assert percentile([float(v) for v in range(11)], 10) == pytest.approx(1.0)
    assert percentile([float(v) for v in range(11)], 90) == pytest.approx(9.0)
    assert percentile([2.0, 1.0], 10) == pytest.approx(1.1) and percentile([2.0, 1.0], 90) == pytest.approx(1.9)


def _residuals() -> list[tuple[str, str, str | None, float]]:
    """11 megatron runs on A100 with errors -0.10, -0.08, ..., +0.10; 3 nemo runs on A100; 2 recsys rows."""
    rows = [("transformer", "a100-sxm-80gb", "megatron", round(-0.10 + 0.02 * k, 4)) for k in range(11)]
    rows += [("transformer", "a100-sxm-40gb", "nemo", e) for e in (0.3, 0.3, 0.3)]
    rows += [("recsys", "v100-sxm2-32gb", None, e) for e in (-0.2, 0.2)]
    return rows


def test_band_table_keeps_groups_with_enough_rows_and_always_the_family() -> None:
    t = band_table(_residuals(), min_rows=MIN_ROWS)
    assert t["transformer|ampere|megatron"] == {"rows": 11, "p10": pytest.approx(-0.08), "p90": pytest.approx(0.08)}
    assert "transformer|ampere|nemo" not in t  # 3 rows < 10: widened
    assert t["transformer|ampere"]["rows"] == 14
    assert t["transformer|*"]["rows"] == 14
    assert t["recsys|*"] == {"rows": 2, "p10": pytest.approx(-0.16), "p90": pytest.approx(0.16)}
    assert "recsys|volta" not in t


def test_band_applies_the_percentiles_to_the_prediction(tmp_path: Path) -> None:
    f = tmp_path / "u.json"
    f.write_text(json.dumps({"groups": {
        "transformer|ampere|megatron": {"rows": 12, "p10": -0.1, "p90": 0.25},
        "transformer|ampere": {"rows": 20, "p10": -0.2, "p90": 0.0},
        "transformer|*": {"rows": 40, "p10": -0.5, "p90": 0.5},
        "recsys|*": {"rows": 9, "p10": -0.1, "p90": 0.25},
    }}))  # fmt: skip
    # predicted 10 s, 10th..90th percentile of predicted/measured - 1 = -0.1..+0.25: measured 8 .. 11.1 s
    u = band("transformer", "a100-sxm-80gb", "Megatron", 10.0, f)
    assert u is not None and (u.low_s, u.high_s) == (pytest.approx(8.0), pytest.approx(10 / 0.9))
    assert (u.rows, u.group) == (12, "ampere, megatron")
    w = band("transformer", "a100-sxm-40gb", "nemo", 10.0, f)  # no nemo group: the generation
    assert w is not None and (w.low_s, w.high_s, w.group) == (pytest.approx(10.0), pytest.approx(12.5), "ampere")
    x = band("transformer", "b200-sxm-180gb", None, 10.0, f)  # no blackwell rows: all
    assert x is not None and x.group == "all" and x.rows == 40
    r = band("recsys", "a100-sxm-80gb", None, 10.0, f)  # residuals on samples/s: measured step = t (1 + e)
    assert r is not None and (r.low_s, r.high_s) == (pytest.approx(9.0), pytest.approx(12.5))
    assert band("other", "a100-sxm-80gb", None, 10.0, f) is None
    assert group_keys("transformer", "h100-sxm-80gb", "") == ["transformer|hopper", "transformer|*"]


def test_shipped_table_is_complete_and_ordered() -> None:
    data = json.loads(DATA_FILE.read_text())
    assert "percentile" in data["definition"] and "--cross-validate" in data["generated_by"]
    groups = data["groups"]
    assert {"transformer|*", "recsys|*"} <= set(groups)
    for key, g in groups.items():
        assert g["p10"] <= g["p90"], key
        assert g["rows"] >= MIN_ROWS or key.endswith("|*"), key


def _check(u: dict, step_s: float) -> None:
    assert set(u) == {"low_s", "high_s", "rows", "group"}
    assert 0 < u["low_s"] <= u["high_s"] and u["rows"] >= 1
    # the band is the prediction scaled by 1 / (1 + percentile): within a factor 3 of it either way
    assert step_s / 3 < u["low_s"] and u["high_s"] < 3 * step_s


def test_simulate_json_and_text_carry_the_band(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--accelerator", "a100-sxm-80gb", "--gpus", "8"]
    assert main([*args, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    _check(r["uncertainty"], r["step_time_s"])
    assert r["uncertainty"]["group"].startswith("ampere")
    want = band("transformer", "a100-sxm-80gb", None, r["step_time_s"])
    assert want is not None and r["uncertainty"]["low_s"] == pytest.approx(want.low_s)
    assert main(args) == 0
    step_line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("step time"))
    assert f"from {want.rows} comparable published runs: {want.group})" in step_line


def test_recsys_simulate_carries_the_band(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--model", "dlrm-dcnv2-mlperf", "--accelerator", "a100-sxm-80gb", "--gpus", "8"]
    assert main([*args, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    _check(r["uncertainty"], r["step_time_s"])
    assert main(args) == 0
    assert "ms from" in capsys.readouterr().out


def test_search_and_compare_json_carry_the_band(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["search", "--model", "gpt3-1.7b", "--accelerator", "h100-sxm-80gb", "--gpus", "8",
               "--global-batch", "32", "--top", "2", "--json", "--workers", "1"])  # fmt: skip
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    for x in r["results"]:
        _check(x["uncertainty"], x["step_time_s"])
    c = compare("gpt3-1.7b", instances=["p5.48xlarge"], gpus=8, tokens=1e9, global_batch=32, workers=1)
    row = c.results[0]
    assert row.uncertainty is not None and row.step_time_s is not None
    _check(row.uncertainty.model_dump(), row.step_time_s)
