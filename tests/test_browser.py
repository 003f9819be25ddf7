"""The app in a real browser, read as the user sees it (tools/screenshots.py): headless Chromium
loads every page at 1,100 and 1,400 px and finds no metric cut off, no 'None'/'nan' cell, no
snake_case header and no exception; one input per page changes the result the right way (more
GPUs raise tokens/s, Search and Compare fill their tables, a sweep runs, the filter narrows the
catalog) and an error's text equals the API's message. Runs where Debian's chromium and
chromium-driver are installed; skipped, with the reason, where they are not."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("screenshots", ROOT / "tools" / "screenshots.py")
assert _spec is not None and _spec.loader is not None
screenshots = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(screenshots)


@pytest.mark.skipif(not screenshots.browser_available(), reason="chromium and chromium-driver are not installed")
def test_every_page_reads_right_in_headless_chromium(tmp_path: Path) -> None:
    pytest.importorskip("selenium")
    times, problems = screenshots.run(tmp_path)
    assert problems == []
    assert set(times) == set(screenshots.PAGES)
    for name in screenshots.PAGES:
        png = tmp_path / f"{name}.png"
        assert png.exists() and 20_000 < png.stat().st_size, name
    print(f"browser: default Simulate page showed its metrics in {times['simulate']:.2f} s")
