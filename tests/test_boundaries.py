"""The declared import contracts hold (pyproject.toml, [tool.importlinter]): core -> families -> stages and faces.

Runs import-linter's ``lint-imports`` from this environment, so the README's test command checks the
boundaries: the engine and the rest of the core import no workload family, the families import nothing
above them and not each other, the cost models do not import the engine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

REQUIRED_CONTRACTS = ("engine-no-family", "core-no-family", "families-below-stages", "costs-no-engine",
                      "families-independent")
"""The boundaries issue 13 asks for; a contract dropped from pyproject.toml would otherwise pass silently."""


def _lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` from the running environment, in the project root, without a cache folder."""
    lint = Path(sys.executable).parent / "lint-imports"
    return subprocess.run([str(lint), "--no-cache", "--no-logo", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_import_contracts_hold() -> None:
    p = _lint_imports()
    assert p.returncode == 0, f"lint-imports exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    assert "0 broken" in p.stdout, p.stdout


def test_every_required_contract_is_declared() -> None:
    # naming a contract id that is not declared makes lint-imports fail
    p = _lint_imports(*(arg for cid in REQUIRED_CONTRACTS for arg in ("--contract", cid)))
    assert p.returncode == 0, f"lint-imports exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    assert f"Contracts: {len(REQUIRED_CONTRACTS)} kept, 0 broken" in p.stdout, p.stdout
