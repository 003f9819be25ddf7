"""Issue 16 in sweeps: bounded work (point count, a time limit per point), concurrent writers, files that
are not what they claim, a full disk, read-only opening of a store. Each ends in a row or one line."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from planner.cli import main
from planner.errors import PlannerInputError
from planner.sweep import Store, executors, load_spec, run_sweep
from planner.sweep import run as run_mod

BASE = {"model": "gpt3-1.7b", "accelerator": "a100-sxm-80gb", "global_batch": 64}
HUGE = {"base": BASE, "axes": {"gpus": list(range(1, 1001)), "micro_batch": list(range(1, 1001)),
                               "tp": list(range(1, 1001))}}  # fmt: skip


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str], *words: str) -> str:
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("sweep: ")]
    assert len(err) == 1, err  # one line besides the progress lines
    assert all(w in err[0] for w in words), err[0]
    return err[0]


def test_points_are_counted_not_expanded() -> None:
    spec = load_spec(HUGE)
    assert spec.count() == 10**9 == len(spec.points())
    assert next(iter(spec.points())) == {**BASE, "gpus": 1, "micro_batch": 1, "tp": 1}
    zipped = load_spec({"base": BASE, "axes": {"gpus": [8, 16, 32], "tp": [1, 2, 4]}, "mode": "zip"})
    assert zipped.count() == 3 and [p["tp"] for p in zipped.points()] == [1, 2, 4]
    assert load_spec({"base": {**BASE, "gpus": 8}}).count() == 1


def test_too_many_points_refused_before_anything_runs(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    with pytest.raises(PlannerInputError, match=r"1,000,000,000 points.*--max-points"):
        run_sweep(HUGE, out=tmp_path / "r.db")
    assert time.perf_counter() - t0 < 10 and not (tmp_path / "r.db").exists()
    small = {"base": BASE, "axes": {"gpus": [8, 16], "micro_batch": [1, 2]}}
    with pytest.raises(PlannerInputError, match="4 points, more than the limit of 3"):
        run_sweep(small, max_points=3)
    rep, _ = run_sweep(small, max_points=4, workers=1)
    assert rep.points == 4


def test_cli_max_points_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("base: {model: gpt3-1.7b, accelerator: a100-sxm-80gb, global_batch: 64}\naxes: {gpus: [8, 16]}\n")
    _one_line_exit_2(["sweep", str(spec), "--out", str(tmp_path / "r.db"), "--max-points", "1"], capsys, "limit of 1")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "r.db"), "--max-points", "2", "--workers", "1"]) == 0


def _hang_at_16(inputs: dict[str, Any], search: bool) -> Any:
    """A point that never returns (at 16 GPUs); the others run as usual."""
    if inputs.get("gpus") == 16:
        while True:
            time.sleep(0.05)
    return _real_run_point(inputs, search)


_real_run_point = executors.run_point


@pytest.mark.parametrize("workers", [1, 2])
def test_a_point_past_its_time_limit_is_an_error_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """One hanging point becomes an error row; the others still run (workers 2: its worker is replaced)."""
    monkeypatch.setattr(executors, "run_point", _hang_at_16)
    spec = {"base": BASE, "axes": {"gpus": [8, 16, 32, 64]}}
    t0 = time.perf_counter()
    rep, rows = run_sweep(spec, out=tmp_path / "r.db", workers=workers, point_timeout_s=1.0)
    assert time.perf_counter() - t0 < 30
    assert [r["status"] for r in rows] == ["ok", "error", "ok", "ok"]
    assert "time limit of 1 s" in rows[1]["error"] and rep.errors == 1


def test_non_finite_axis_value_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "nan.yaml"
    spec.write_text(
        "base: {model: gpt3-1.7b, accelerator: a100-sxm-80gb, gpus: 16}\naxes: {inter_node_gbps_per_gpu: [.nan, 100]}\n"
    )
    _one_line_exit_2(["sweep", str(spec), "--out", str(tmp_path / "r.db"), "--workers", "1"], capsys,
                     "spec.axes.inter_node_gbps_per_gpu[0]", "finite")  # fmt: skip
    with pytest.raises(PlannerInputError, match="finite"):
        load_spec({"base": {**BASE, "inter_node_gbps_per_gpu": float("inf")}})


def test_two_writers_on_one_new_store(tmp_path: Path) -> None:
    """Both writers open the new store before either adds a column: the second used to fail with
    'duplicate column name'."""
    path = tmp_path / "r.db"
    a, b = Store(path), Store(path)
    a.put("k1", 0, {"gpus": 8}, {"step_time_s": 1.0}, None, 0.1)
    b.put("k2", 1, {"gpus": 16}, {"step_time_s": 2.0, "mfu": 0.5}, None, 0.1)
    a.put("k3", 2, {"gpus": 32}, {"mfu": 0.4}, None, 0.1)
    assert [(r["gpus"], r["mfu"]) for r in a.rows()] == [(8, None), (16, 0.5), (32, 0.4)]
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"base: {model: gpt3-1.7b}\n# caf\xe9\n", ("not UTF-8",)),
        (b"base: " + b"[" * 3000 + b"]" * 3000 + b"\n", ("nested too deeply",)),
    ],
)
def test_spec_files_that_are_not_what_they_claim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: bytes, words: tuple[str, ...]
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_bytes(text)
    _one_line_exit_2(["sweep", str(spec), "--out", str(tmp_path / "r.db")], capsys, "spec", *words)


def test_malformed_scheduler_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("base: {model: gpt3-1.7b, accelerator: a100-sxm-80gb}\naxes: {gpus: [8]}\n")
    _one_line_exit_2(["sweep", str(spec), "--out", str(tmp_path / "r.db"), "--scheduler", "notaurl"], capsys,
                     "scheduler", "tcp://host:8786")  # fmt: skip


class _SmallDisk(Store):
    """A store on a 'disk' that fills after a few pages (SQLite's max_page_count gives SQLITE_FULL)."""

    def __init__(self, path: str, readonly: bool = False) -> None:
        super().__init__(path, readonly)
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        self.db.execute(f"PRAGMA max_page_count={pages + 3}")


def test_full_disk_is_one_line_and_keeps_committed_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run_mod, "Store", _SmallDisk)
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "base: {model: gpt3-1.7b, accelerator: a100-sxm-80gb, global_batch: 512}\n"
        "axes: {gpus: [8, 16, 32, 64, 128, 256], micro_batch: [1, 2, 4, 8]}\n"
    )
    out = tmp_path / "r.db"
    _one_line_exit_2(["sweep", str(spec), "--out", str(out), "--workers", "1"], capsys, "full", "kept")
    kept = sqlite3.connect(out).execute("SELECT COUNT(*) FROM points").fetchone()[0]
    assert 0 < kept < 24
    monkeypatch.undo()
    rep, _ = run_sweep(spec, out=out, workers=1)  # resumes: nothing committed was lost
    assert rep.skipped == kept and rep.points == 24


def test_read_only_store_changes_no_file(tmp_path: Path) -> None:
    """Opening a file as a store read-only (the app's Sweeps page) neither turns a text file into a
    database nor adds a table or WAL mode to another program's database."""
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"")
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = {p: p.read_bytes() for p in (notes, other)}
    for p in (notes, other):
        with pytest.raises(sqlite3.Error):
            s = Store(p, readonly=True)
            try:
                s.rows()
            finally:
                s.close()
    assert {p: p.read_bytes() for p in (notes, other)} == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["notes.txt", "other.db"]
    store = tmp_path / "r.db"
    run_sweep({"base": BASE, "axes": {"gpus": [8, 16]}}, out=store, workers=1)
    ro = Store(store, readonly=True)
    assert [r["gpus"] for r in ro.rows()] == [8, 16]
    ro.close()


def test_time_limit_holds_outside_the_main_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app runs a sweep (workers=1) in a script thread, where SIGALRM cannot time a point: the point
    then runs in a worker process, and a hanging one still becomes an error row."""
    monkeypatch.setattr(executors, "run_point", _hang_at_16)
    out: list[Any] = []
    t = threading.Thread(
        target=lambda: out.append(
            run_sweep({"base": BASE, "axes": {"gpus": [8, 16]}}, workers=1, point_timeout_s=1.0)[1]
        ),
        daemon=True,  # without the limit it would hang: do not hang pytest's exit too
    )
    t.start()
    t.join(60)
    assert not t.is_alive() and [r["status"] for r in out[0]] == ["ok", "error"]
