"""planner sweep: grid/zip points, the SQLite store, resume after kill -9, bad specs, errors per point."""

from __future__ import annotations

import csv
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from planner.cli import main
from planner.errors import PlannerInputError
from planner.sweep import load_spec, point_key, run_sweep, sweep

BASE = {"model": "gpt3-1.7b", "accelerator": "a100-sxm-80gb", "global_batch": 64}


def _records(rows: object) -> list[dict]:
    """sweep() returns a DataFrame when pandas is installed, else a list of dicts: compare as dicts
    (NaN, pandas' missing value, back to None)."""
    if isinstance(rows, list):
        return rows
    out = []
    for r in rows.to_dict("records"):  # type: ignore[attr-defined]
        out.append({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()})
    return out


def test_small_grid_writes_four_rows(tmp_path: Path) -> None:
    out = tmp_path / "r.db"
    rows = _records(sweep({"base": BASE, "axes": {"gpus": [8, 16], "micro_batch": [1, 2]}}, out=out, workers=1))
    assert len(rows) == 4
    assert [(r["gpus"], r["micro_batch"]) for r in rows] == [(8, 1), (8, 2), (16, 1), (16, 2)]
    for r in rows:
        assert r["status"] == "ok" and r["step_time_s"] > 0 and 0 < r["mfu"] < 1
        for col in ("hfu", "tokens_per_s", "samples_per_s", "memory.peak_gib", "memory.fits", "breakdown.compute_s"):
            assert col in r
    n = sqlite3.connect(out).execute("SELECT COUNT(*) FROM points WHERE status = 'ok'").fetchone()[0]
    assert n == 4
    # rerun: nothing runs again
    rep, rows2 = run_sweep({"base": BASE, "axes": {"gpus": [8, 16], "micro_batch": [1, 2]}}, out=out, workers=1)
    assert rep.ran == 0 and rep.skipped == 4 and rows2 == rows


def test_zip_mode_and_cli_csv(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        yaml.safe_dump({"base": BASE, "axes": {"gpus": [8, 16, 32], "micro_batch": [1, 2, 1]}, "mode": "zip"})
    )
    out = tmp_path / "r.csv"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "2"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["gpus"], r["micro_batch"]) for r in rows] == [("8", "1"), ("16", "2"), ("32", "1")]
    assert all(r["status"] == "ok" and float(r["step_time_s"]) > 0 for r in rows)
    assert "cost.usd_per_hour" in rows[0] and "memory.peak_gib" in rows[0]
    assert (tmp_path / "r.csv.sqlite").exists()


def test_invalid_point_records_error_and_goes_on(tmp_path: Path) -> None:
    rows = _records(sweep({"base": BASE, "axes": {"gpus": [8], "tp": [1, 3, 2]}}, out=tmp_path / "r.db", workers=1))
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert "tp" in rows[1]["error"] and rows[1]["step_time_s"] is None
    assert rows[2]["step_time_s"] > 0


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"base": BASE, "axis": {"gpus": [8]}}, "spec.axis"),
        ({"base": BASE, "axes": {"gpus": 8}}, "spec.axes.gpus"),
        ({"base": {**BASE, "tpp": 2}}, "spec.base.tpp"),
        ({"base": BASE, "axes": {"micro_batch": [1, "two"]}}, "spec.axes.micro_batch[1]"),
        ({"base": {**BASE, "gpus": "eight"}}, "spec.base.gpus"),
        ({"base": BASE, "search": "maybe"}, "spec.search"),
        ({"base": BASE, "axes": {"gpus": [8, 16], "tp": [1]}, "mode": "zip"}, "spec.axes"),
        ({"base": BASE, "axes": {"gpus": [8], "tp": [1]}, "search": True}, "spec.axes.tp"),
    ],
)
def test_bad_spec_names_the_key(spec: dict, named: str) -> None:
    with pytest.raises(PlannerInputError) as e:
        load_spec(spec)
    assert str(e.value).startswith(named + ":")


def test_bad_spec_cli_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("base: {model: gpt3-1.7b}\naxes: {gpus: 8}\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "r.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "spec.axes.gpus" in err[0]
    assert main(["sweep", str(spec), "--out", str(tmp_path / "r.json")]) == 2


def test_key_is_stable_and_order_free() -> None:
    assert point_key({"gpus": 8, "tp": 2}, False) == point_key({"tp": 2, "gpus": 8}, False)
    assert point_key({"gpus": 8}, False) != point_key({"gpus": 8}, True)


def test_search_mode(tmp_path: Path) -> None:
    spec = {"base": {"model": "gpt3-1.7b", "accelerator": "a100-sxm-80gb"}, "axes": {"gpus": [8]}, "search": True}
    rows = _records(sweep(spec, workers=1))
    assert rows[0]["status"] == "ok", rows[0]["error"]
    assert rows[0]["layout.tp"] >= 1 and rows[0]["step_time_s"] > 0


def test_resume_after_kill_9(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    # 12 points; the 512-GPU ones take a few tenths of a second each, so the kill lands midway
    spec.write_text(
        yaml.safe_dump(
            {"base": {"model": "gpt3-1.7b", "accelerator": "a100-sxm-80gb", "pp": 2},
             "axes": {"gpus": [16, 32, 64, 128, 256, 512], "micro_batch": [1, 2]}}
        )
    )  # fmt: skip
    out = tmp_path / "r.db"
    cmd = [sys.executable, "-m", "planner.cli", "sweep", str(spec), "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    n = 0
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if out.exists():
            try:
                n = sqlite3.connect(out).execute("SELECT COUNT(*) FROM points").fetchone()[0]
            except sqlite3.Error:
                n = 0
            if n >= 2:
                break
        time.sleep(0.005)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = sqlite3.connect(out).execute("SELECT COUNT(*) FROM points").fetchone()[0]
    assert 2 <= first < 12, first
    rep, rows = run_sweep(spec, out=out, workers=1)
    assert rep.points == 12 and rep.skipped == first and rep.ran == 12 - first
    keys = [r[0] for r in sqlite3.connect(out).execute("SELECT key FROM points")]
    assert len(keys) == 12 == len(set(keys))
    assert [(r["gpus"], r["micro_batch"]) for r in rows] == [
        (g, m) for g in (16, 32, 64, 128, 256, 512) for m in (1, 2)
    ]


def test_dask_local_cluster_gives_the_same_rows_as_local_processes(tmp_path: Path) -> None:
    """A sweep on a Dask LocalCluster started here matches the same sweep on local processes."""
    distributed = pytest.importorskip("distributed")
    spec = {"base": BASE, "axes": {"gpus": [8, 16], "micro_batch": [1, 2], "tp": [1, 3]}}
    _, local = run_sweep(spec, out=tmp_path / "local.db", workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        _, dask_rows = run_sweep(spec, out=tmp_path / "dask.db", scheduler=c.scheduler_address)
    keep = ("key", "status", "error", "step_time_s", "mfu", "memory.peak_gib")
    assert [{k: r.get(k) for k in keep} for r in dask_rows] == [{k: r.get(k) for k in keep} for r in local]
    assert sum(r["status"] == "error" for r in dask_rows) == 4  # tp 3 breaks a rule at every point


def test_unreachable_scheduler_is_a_user_error(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    with pytest.raises(PlannerInputError, match="scheduler"):
        run_sweep({"base": BASE, "axes": {"gpus": [8]}}, out=tmp_path / "x.db", scheduler="tcp://127.0.0.1:9")


def test_dlrm_example_runs_and_plots() -> None:
    """examples/dlrm_table_vs_row.py: one command, a table and a plot."""
    pytest.importorskip("matplotlib")
    root = Path(__file__).resolve().parents[1]
    out = root / "examples" / "out" / "dlrm_table_vs_row.png"
    out.unlink(missing_ok=True)
    p = subprocess.run(
        [sys.executable, str(root / "examples" / "dlrm_table_vs_row.py")], capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "row" in p.stdout and "M samples/s" in p.stdout
    assert out.exists() and out.stat().st_size > 10_000
