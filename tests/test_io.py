"""planner.io: outputs are written whole or not at all, and never over one of the inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from planner.errors import PlannerInputError
from planner.io import atomic_write_bytes, atomic_write_text, check_output_path


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    p = tmp_path / "report.md"
    p.write_text("old")
    atomic_write_text(p, "new \u2014 text")
    assert p.read_text(encoding="utf-8") == "new \u2014 text"
    assert sorted(os.listdir(tmp_path)) == ["report.md"]


def test_atomic_write_keeps_the_file_mode(tmp_path: Path) -> None:
    p = tmp_path / "profile.yaml"
    p.write_text("old")
    p.chmod(0o640)
    atomic_write_bytes(p, b"new")
    assert p.stat().st_mode & 0o777 == 0o640
    fresh = tmp_path / "fresh.yaml"
    atomic_write_bytes(fresh, b"x")
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_failed_write_names_the_field_and_keeps_the_old_file(tmp_path: Path) -> None:
    with pytest.raises(PlannerInputError, match=r"^markdown: cannot write .*missing"):
        atomic_write_text(tmp_path / "missing" / "r.md", "x", field="markdown")
    target = tmp_path / "a_folder"
    target.mkdir()
    (target / "inside").write_text("kept")
    with pytest.raises(PlannerInputError, match=r"^out: cannot write"):
        atomic_write_text(target, "x")  # a folder cannot be replaced by a file
    assert (target / "inside").read_text() == "kept"
    assert sorted(os.listdir(tmp_path)) == ["a_folder"]  # no temporary left behind


def test_output_equal_to_an_input_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "runs.csv"
    src.write_text("a,b\n")
    monkeypatch.chdir(tmp_path)
    link = tmp_path / "link.csv"
    link.symlink_to(src)
    hard = tmp_path / "hard.csv"
    os.link(src, hard)
    for out in (src, "runs.csv", "./sub/../runs.csv", link, hard):
        with pytest.raises(PlannerInputError, match=r"^markdown: .* is one of the inputs"):
            check_output_path("markdown", out, [None, "other.csv", str(src)])
    assert src.read_text() == "a,b\n"


def test_other_outputs_pass(tmp_path: Path) -> None:
    src = tmp_path / "runs.csv"
    src.write_text("a,b\n")
    check_output_path("out", tmp_path / "new.yaml", [src, None])  # not there yet
    check_output_path("out", None, [src])  # no output asked
    check_output_path("out", src, [])  # no inputs
