"""Build hook: ship the repository's ``hardware_specs/*.yaml`` inside the wheel as ``planner/hardware_specs/``.

The catalog lives in one place, the top-level ``hardware_specs/`` folder (data, reviewed on its own, not
code). A non-editable install has no repository next to the package, so the wheel must carry a copy:
``build_py`` copies the YAML files into the build tree, and :func:`planner.hardware.specs_dir` looks in
the installed package first and the repository second. An editable install builds nothing and reads the
repository's folder directly. Everything else about the build is declared in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SPECS_SRC = Path("hardware_specs")
"""The catalog in the source tree (setuptools runs the build from the project root)."""

SPECS_DEST = Path("planner") / "hardware_specs"
"""Where the catalog lies inside the installed package."""


class BuildPyWithCatalog(build_py):
    """``build_py`` that also copies the hardware catalog into the package it builds."""

    def run(self) -> None:
        editable = getattr(self, "editable_mode", False)
        if not editable:
            # pip builds in the tree and reuses build/lib: a module deleted from planner/ would otherwise
            # stay there and ship in the next wheel, so each build starts from an empty package folder
            shutil.rmtree(Path(self.build_lib) / "planner", ignore_errors=True)
        super().run()
        if editable:  # the editable package reads the repository's folder
            return
        files = sorted(SPECS_SRC.glob("*.yaml"))
        if not files:
            raise SystemExit(f"no catalog to ship: {SPECS_SRC.resolve()}/*.yaml is missing")
        dest = Path(self.build_lib) / SPECS_DEST
        self.mkpath(str(dest))
        for src in files:
            self.copy_file(str(src), str(dest / src.name))


setup(cmdclass={"build_py": BuildPyWithCatalog})
