"""``planner validate --cross-validate``: grouping, the fit sample, the held-out bookkeeping (with the refit
replaced by a known calibration, so it is fast and checkable by hand), one small real refit, the band
table it writes, and the CLI's refusals (exit 2, one line)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import planner.validate.crossval as cv
from planner.calibration import DEFAULT
from planner.cli import main
from planner.uncertainty import band
from planner.validate import validate_rows

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "validation" / "published.csv"

# small Megatron/MosaicML rows of published.csv: 3 on A100 80 GB (megatron), 3 on A100 40 GB (mosaic), 1 on H100
IDS = ["megatron_sc21_t1-1", "megatron_sc21_t1-2", "megatron_sc21_t1-3",
       "mosaic_llmfoundry-290", "mosaic_llmfoundry-291", "mosaic_llmfoundry-289",
       "megatron_examples_llama_fp8-56"]  # fmt: skip


def _published_rows() -> list[dict[str, str]]:
    if not PUBLISHED.exists():
        pytest.skip("../shared/validation/published.csv is not beside the project")
    with open(PUBLISHED, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven rows: groups a100-sxm-80gb (3), a100-sxm-40gb (3), h100-sxm-80gb (1)."""
    by_id = {r["id"]: r for r in _published_rows()}
    rows = [by_id[i] for i in IDS]
    out = tmp_path_factory.mktemp("cv") / "small.csv"
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def test_group_of_reads_the_row() -> None:
    row = {"accelerator": " a100-sxm-80gb ", "framework": "Megatron", "source": "Narayanan et al.; Table 1"}
    assert cv.group_of(row, "accelerator") == "a100-sxm-80gb"
    assert cv.group_of(row, "framework") == "megatron"
    assert cv.group_of(row, "source") == "Narayanan et al."
    assert cv.group_of({}, "framework") == "unspecified"


def test_fit_sample_gives_every_source_a_turn() -> None:
    keys = ["big"] * 10 + ["small"] * 2 + ["one"]
    s = cv.fit_sample(keys, 5)
    assert len(s) == 5 and s == sorted(s)
    assert {10, 11, 12} <= set(s)  # both "small" rows and the "one" row before a third "big" row
    assert cv.fit_sample(keys, 100) == list(range(13))
    # with sizes, each source's smallest runs first (cheapest to re-cost): 8 and 16 GPUs, not 1024
    assert cv.fit_sample(["s", "s", "s", "t"], 3, sizes=[1024, 8, 16, 4096]) == [1, 2, 3]


def test_held_out_bookkeeping_by_hand(small_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the refit replaced by a known calibration, 'after' is that calibration's error on each group."""
    other = DEFAULT.model_copy(update={"gemm_mamf_fraction": 0.8, "name": "other"})
    seen: list[list[int]] = []
    monkeypatch.setattr(cv, "refit", lambda ev, train, measured, gp, rounds: seen.append(train) or other)
    rep = cv.cross_validate([small_csv], "accelerator", max_rows_per_fit=10, workers=1, log=lambda _: None)
    assert [(g.group, g.rows, g.refit) for g in rep.groups] == [
        ("a100-sxm-40gb", 3, True), ("a100-sxm-80gb", 3, True), ("h100-sxm-80gb", 1, False)]  # fmt: skip
    assert "fewer than the fit's minimum" in (rep.groups[2].note or "")
    assert sorted(len(t) for t in seen) == [4, 4]  # each refit sees the other 3 + the H100 row, never its own
    rows = list(csv.DictReader(open(small_csv)))
    d = {r.id: r.error for r in validate_rows(rows, DEFAULT, workers=1).rows}
    o = {r.id: r.error for r in validate_rows(rows, other, workers=1).rows}
    for r in rep.results:
        assert r.before_error == pytest.approx(d[r.id], rel=1e-9)
        assert r.after_error == pytest.approx(d[r.id] if r.group == "h100-sxm-80gb" else o[r.id], rel=1e-9)
    g = rep.groups[1]
    errs = [abs(o[i]) for i in IDS[:3]]
    assert g.after.median_abs_error == pytest.approx(sorted(errs)[1])
    assert g.after.max_abs_error == pytest.approx(max(errs))
    assert g.constants == {"gemm_mamf_fraction": 0.8}


def test_one_small_real_refit(small_csv: Path, tmp_path: Path) -> None:
    """The real fit on three rows per group: it runs, moves only fitted constants within their bounds,
    and the band table written from it gives a band."""
    rep = cv.cross_validate([small_csv], "accelerator", max_rows_per_fit=6, grid_points=2, rounds=1, workers=1,
                            log=lambda _: None)  # fmt: skip
    assert rep.rows == 7 and all(g.after.rows == g.rows for g in rep.groups)
    for g in rep.groups:
        for name, v in g.constants.items():
            b = cv.BOUNDS[name]
            assert b.low <= v <= b.high
        assert len(g.constants) <= max(1, g.train_rows // cv.ROWS_PER_CONSTANT)
    out = tmp_path / "u.json"
    data = cv.write_uncertainty(rep, out, "planner validate --cross-validate accelerator small.csv")
    assert json.loads(out.read_text()) == data and data["groups"]["transformer|*"]["rows"] == 7
    assert band("transformer", "h100-sxm-80gb", None, 1.0, out) is not None


@pytest.mark.parametrize(
    "extra",
    [
        ["--cross-validate", "gpu"],
        ["--cross-validate", "accelerator", "--max-rows-per-fit", "0"],
        ["--cross-validate", "accelerator", "--max-rows-per-fit", "2"],
        ["--cross-validate", "accelerator", "--max-rows-per-fit", "many"],
        ["--write-uncertainty", "out.json"],
    ],
)
def test_cli_refuses_bad_values_with_exit_2(
    extra: list[str], small_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        rc = main(["validate", str(small_csv), *extra])
        raise SystemExit(rc)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_refuses_to_write_the_band_over_an_input(small_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(["validate", str(small_csv), "--cross-validate", "source",
                               "--write-uncertainty", str(small_csv)]))  # fmt: skip
    assert e.value.code == 2
