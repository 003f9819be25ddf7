"""A non-editable install works from any folder: the wheel carries the hardware catalog and the presets.

The test builds the wheel from a copy of the source (so no stale ``build/`` folder can leak into it),
installs it with ``--no-deps`` into a fresh virtual environment whose dependencies come from the test's
own environment through a ``.pth`` line (no network for the install; the build itself runs pip's usual
isolated build, as ``pip install .`` does), and runs ``planner simulate --json`` from an empty folder
with no ``PLANNER_SPECS``: the catalog must come from inside the installed package.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "planner", "hardware_specs")
"""What a build reads: the metadata, the build hook and the two folders it packages."""


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 300) -> str:
    """Run ``cmd``; on failure fail the test with its output (not a bare CalledProcessError)."""
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if p.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean copy of what the build reads (no build/, no __pycache__), fixed for this module's tests."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    return src


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the copy."""
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)], cwd=source)
    (whl,) = out.glob("planner-*.whl")
    return whl


def test_wheel_holds_the_catalog_presets_and_only_current_modules(source: Path, wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    catalog = sorted((source / "hardware_specs").glob("*.yaml"))
    assert catalog, "no hardware_specs/*.yaml in the source"
    for yaml_file in catalog:
        assert f"planner/hardware_specs/{yaml_file.name}" in names
    for preset in sorted((source / "planner" / "presets").glob("*.yaml")):
        assert f"planner/presets/{preset.name}" in names
    assert "planner/data/uncertainty.json" in names  # the error band's table (planner.uncertainty)
    shipped = {n for n in names if n.startswith("planner/") and n.endswith(".py")}
    assert shipped == {p.relative_to(source).as_posix() for p in (source / "planner").rglob("*.py")}


def test_installed_wheel_simulates_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip())
    # the dependencies (pydantic, simpy, ...) from this environment, after the fresh site-packages;
    # its editable planner is not picked up (a .pth path line does not run that folder's own .pth files)
    (site / "zz_planner_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index", str(wheel)],
         cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PLANNER_SPECS", "PYTHONPATH")}
    where = _run([str(py), "-c", "import planner.hardware as h; print(h.__file__); print(h.specs_dir())"],
                 cwd=elsewhere, env=env).split()
    assert Path(where[0]).is_relative_to(venv) and Path(where[1]).is_relative_to(venv), where

    report = json.loads(_run([str(venv / "bin" / "planner"), "simulate", "--json"], cwd=elsewhere, env=env))
    assert math.isfinite(report["step_time_s"]) and report["step_time_s"] > 0
