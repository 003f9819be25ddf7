"""Real-browser check of the app: start it, load every page in headless Chromium, read what the
user sees, drive one input per page, save a screenshot of each page.

    .venv/bin/python tools/screenshots.py [--out docs/screenshots/] [--check]

Needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`) and
selenium (in the test extra). With ``--check`` it also loads every page at 1,100 px and reports
what a user would see wrong: a metric cut off, a table with 'None'/'nan' or a snake_case header,
an error whose text differs from the message. Exits 0 when nothing is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGES = {  # name -> (url path, text the page shows once it has finished running)
    "simulate": ("", "Memory per accelerator"),
    "plan": ("plan", "press Search"),
    "compare": ("compare", "press Compare"),
    "sweeps": ("sweeps", "Define a sweep"),
    "catalog": ("catalog", "Check a YAML spec"),
}
WIDTHS = (1100, 1400)
HEIGHT = 1300
NARROW_PAGES = ("simulate", "compare")
"""Pages loaded at the narrower widths too: those with metrics or a wide table."""
SNAKE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")

_CUT_JS = """
const out = [];
for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
  for (const el of m.querySelectorAll('*')) {
    if (el.children.length === 0 && el.textContent.trim() && el.scrollWidth > el.clientWidth + 1) {
      out.push(el.textContent.trim());
    }
  }
}
return out;
"""
_TABLE_JS = """
const out = {headers: [], cells: []};
for (const t of document.querySelectorAll('[data-testid="stDataFrame"] table')) {
  for (const th of t.querySelectorAll('th')) out.headers.push(th.textContent.trim());
  for (const td of t.querySelectorAll('td')) out.cells.push(td.textContent.trim());
}
return out;
"""


def browser_available() -> bool:
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int, timeout_s: float) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the app did not come up")


@contextlib.contextmanager
def serve(timeout_s: float = 90.0) -> Iterator[str]:
    """The app running headless on a free port; yields its base URL."""
    port = _free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_healthy(port, timeout_s)
        yield f"http://127.0.0.1:{port}"
    finally:
        app.terminate()
        app.wait(timeout=20)


@contextlib.contextmanager
def browser(width: int) -> Iterator[Any]:
    """Headless Chromium with a window ``width`` px wide."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", f"--window-size={width},{HEIGHT}"):  # fmt: skip
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def settle(driver: Any, text: str | None = None, timeout_s: float = 120.0) -> None:
    """Wait for ``text`` on the page and for the script to finish (no "Stop" in the status area)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    time.sleep(0.6)
    if text:
        WebDriverWait(driver, timeout_s).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), text))
    WebDriverWait(driver, timeout_s).until(lambda d: not d.find_elements(By.XPATH, "//*[text()='Stop']"))
    time.sleep(0.8)  # let the charts and tables paint


def body(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def metrics(driver: Any) -> dict[str, str]:
    """Metric label -> value as shown."""
    from selenium.webdriver.common.by import By

    out = {}
    for m in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        label = m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricLabel"]').text
        out[label] = m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text
    return out


def metric(driver: Any, label: str, other_than: str | None = None, timeout_s: float = 60.0) -> str:
    """The value shown under ``label``, waiting for it (and, given ``other_than``, for a value other than
    that one, up to ``timeout_s``, then whatever is shown): a rerun redraws the metrics, and under load a
    read can fall before the rerun or between the old block's removal and the new one's drawing."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d: Any) -> str | bool:
        try:
            v = metrics(d).get(label)
        except StaleElementReferenceException:
            return False
        return v if v and v != other_than else False

    try:
        return WebDriverWait(driver, timeout_s).until(shown)
    except TimeoutException:
        if other_than is None:
            raise
        return metrics(driver).get(label, "")


def errors(driver: Any) -> list[str]:
    """The text of each error box, as the user reads it."""
    from selenium.webdriver.common.by import By

    return [e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')]


def problems(driver: Any, name: str) -> list[str]:
    """What a user would see wrong on the page: cut metrics, 'None'/'nan' cells, snake_case headers,
    an exception box."""
    from selenium.webdriver.common.by import By

    out = [f"{name}: metric cut off: {t!r}" for t in driver.execute_script(_CUT_JS)]
    tables = driver.execute_script(_TABLE_JS)
    out += [f"{name}: snake_case header {h!r}" for h in tables["headers"] if SNAKE.match(h)]
    out += [f"{name}: cell shows {c!r}" for c in tables["cells"] if c in ("None", "nan", "NaN", "null")]
    for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'):
        out.append(f"{name}: exception: {e.text[:200]}")
    if "Page not found" in body(driver):
        out.append(f"{name}: page not found")
    return out


def type_into(driver: Any, label: str, value: str) -> None:
    """Replace the text of the input labelled ``label`` and commit it (Enter)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    el = driver.find_element(By.CSS_SELECTOR, f'input[aria-label="{label}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", el)
    el.click()
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE, value, Keys.ENTER)


def click(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//button[normalize-space(.)='{text}']").click()


def _number(text: str) -> float:
    """'218 k' -> 218000, '$1,285' -> 1285."""
    m = re.search(r"[-\d.,]+", text)
    mult = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text.strip().split()[-1], 1.0) if " " in text.strip() else 1.0
    return float(m.group().replace(",", "")) * mult if m else float("nan")


# ------------------------------------------------------------------ one interaction per page


def _simulate(driver: Any) -> list[str]:
    """More GPUs, same global batch -> more tokens/s; tp 3 of 8 GPUs -> the API's message, literally."""
    from planner import simulate
    from planner.errors import PlannerInputError

    out = []
    first = metric(driver, "Tokens/s")
    type_into(driver, "GPUs", "16")
    settle(driver, "Memory per accelerator")
    before, after = _number(first), _number(metric(driver, "Tokens/s", other_than=first))
    if not after > before:
        out.append(f"simulate: 16 GPUs did not raise tokens/s ({before} -> {after})")
    type_into(driver, "tp", "3")
    settle(driver)
    try:
        simulate(gpus=16, tp=3)
        expected = ""
    except PlannerInputError as e:
        expected = str(e).splitlines()[0]
    shown = errors(driver)
    if shown != [expected]:
        out.append(f"simulate: error shows {shown!r}, the message is {expected!r}")
    type_into(driver, "tp", "1")
    type_into(driver, "GPUs", "8")
    settle(driver, "Memory per accelerator")
    return out


def _plan(driver: Any) -> list[str]:
    click(driver, "Search")
    settle(driver, "Why the winner wins")
    ok = "Ranked layouts" in body(driver) and "GPU counts searched: 8, 4, 2" in body(driver)
    return [] if ok else ["plan: Search did not show ranked layouts over 8, 4 and 2 GPUs"]


def _compare(driver: Any) -> list[str]:
    click(driver, "Compare")
    settle(driver, "Prices and their sources")
    # the grid draws on a canvas: its accessible table holds the values, the format is the column's
    cells = driver.execute_script(_TABLE_JS)["cells"]
    missing = [i for i in ("p5.48xlarge", "p4d.24xlarge") if i not in cells]
    return [f"compare: no row for {', '.join(missing)}"] if missing else []


def _sweeps(driver: Any) -> list[str]:
    click(driver, "Run the sweep")
    settle(driver, "Results:")
    return [] if "12 points, 0 with an error" in body(driver) else ["sweeps: the 12-point sweep did not run"]


def _catalog(driver: Any) -> list[str]:
    type_into(driver, "Filter (any cell contains)", "h100")
    settle(driver)
    shown = re.search(r"(\d+) of (\d+) accelerators", body(driver))
    if not shown or not 0 < int(shown.group(1)) < int(shown.group(2)):
        return ["catalog: the filter did not narrow the accelerators"]
    return []


INTERACTIONS: dict[str, Callable[[Any], list[str]]] = {
    "simulate": _simulate, "plan": _plan, "compare": _compare, "sweeps": _sweeps, "catalog": _catalog,
}  # fmt: skip


def run(
    out: Path | None, widths: tuple[int, ...] = WIDTHS, interact: bool = True
) -> tuple[dict[str, float], list[str]]:
    """Load every page at the last width (:data:`NARROW_PAGES` at the others too); there drive its input and screenshot it into
    ``out``. Returns the seconds each page took to show its content and what was found wrong."""
    found: list[str] = []
    times: dict[str, float] = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    with serve() as url:
        for i, width in enumerate(widths):
            last = i == len(widths) - 1
            with browser(width) as driver:
                for name, (path, text) in PAGES.items():
                    if not last and name not in NARROW_PAGES:
                        continue
                    t0 = time.time()
                    driver.get(f"{url}/{path}")
                    settle(driver, text)
                    times.setdefault(name, time.time() - t0)
                    found += [f"{p} at {width} px" for p in problems(driver, name)]
                    if last and interact:
                        try:
                            found += INTERACTIONS[name](driver)
                        except Exception as e:  # noqa: BLE001 - report the page as the user saw it
                            found.append(f"{name}: the interaction failed: {type(e).__name__}: {str(e)[:300]}")
                            if out is not None:
                                driver.save_screenshot(str(out / f"{name}-failed.png"))
                        found += [f"{p} at {width} px, after the interaction" for p in problems(driver, name)]
                    if last and out is not None:
                        driver.execute_script("document.activeElement && document.activeElement.blur()")
                        time.sleep(0.3)
                        driver.save_screenshot(str(out / f"{name}.png"))
    return times, found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="folder for the screenshots")
    ap.add_argument("--check", action="store_true", help="also load every page at 1,100 px and report problems")
    a = ap.parse_args()
    if not browser_available():
        print("no chromium/chromedriver: apt-get install chromium chromium-driver", file=sys.stderr)
        return 2
    times, found = run(Path(a.out), WIDTHS if a.check else WIDTHS[-1:])
    for name, sec in times.items():
        print(f"{name:10s} rendered in {sec:5.2f} s -> {Path(a.out) / (name + '.png')}")
    for p in found:
        print("PROBLEM:", p)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
