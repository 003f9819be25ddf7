"""Files planner writes: never half-written, never over one of the user's inputs.

Core (imports no family). Every output path goes through :func:`check_output_path`, which refuses a
path that is one of the run's inputs (``planner validate runs.csv --markdown runs.csv`` would
otherwise replace the measurements with the report), and through :func:`atomic_write_text` /
:func:`atomic_write_bytes`, which write a temporary file in the same folder, flush it to disk and
rename it over the target, so an interrupted or failed write leaves the old file whole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from planner.errors import PlannerInputError

PathLike = str | os.PathLike[str]


def _same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file: the same resolved path, or (both existing) the same inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): only the resolved paths can match
        return False


def check_output_path(field: str, out: PathLike | None, inputs: Iterable[PathLike | None]) -> None:
    """Refuse an output path that resolves to any of ``inputs`` (None entries are skipped).

    ``field`` names the output in the error (the CLI passes its flag name without dashes, e.g.
    ``markdown``), so the user sees which flag to change; nothing is written or read here.
    """
    if out is None:
        return
    for src in inputs:
        if src is not None and _same_file(out, src):
            raise PlannerInputError(field, f"{out} is one of the inputs ({src}); choose another output file")


def atomic_write_bytes(path: PathLike, data: bytes, field: str = "out") -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    A failure (no such folder, no space, no permission) raises :class:`PlannerInputError` naming
    ``field`` and leaves any existing ``path`` untouched.
    """
    target = Path(path)
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if target.exists():  # keep the old file's permission bits, as an in-place write would
            os.chmod(tmp_name, target.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, target)
        tmp_name = None
    except OSError as e:
        raise PlannerInputError(field, f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def atomic_write_text(path: PathLike, text: str, field: str = "out") -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"), field)
