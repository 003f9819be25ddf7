"""The app in a real browser: headless Chromium loads every page, waits for its content, and saves
a screenshot (tools/screenshots.py). Runs where Debian's chromium and chromium-driver are installed
(.ci/run installs them when it can); skipped, with the reason, where they are not."""

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
def test_every_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    pytest.importorskip("selenium")
    times = screenshots.run(tmp_path)
    assert set(times) == set(screenshots.PAGES)
    for name in screenshots.PAGES:
        png = tmp_path / f"{name}.png"
        assert png.exists() and png.stat().st_size > 20_000, name
    print(f"browser: default Simulate page showed its metrics in {times['simulate']:.2f} s")
