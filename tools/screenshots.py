"""Real-browser check of the app: start it, load every page in headless Chromium, wait for its
content, save a screenshot of each page.

    .venv/bin/python tools/screenshots.py [--out screenshots/]

Needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`) and
selenium (in the test extra). Exits 0 when every page rendered its content without an exception
box; prints the time the default Simulate page took to show its metrics.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = {  # name -> (url path, text the page shows once it has finished running)
    "simulate": ("", "Memory per accelerator"),
    "plan": ("plan", "Why the winner wins"),
    "compare": ("compare", "Compare instance types"),
    "sweeps": ("sweeps", "Sweeps"),
    "catalog": ("catalog", "Check a YAML spec"),
}


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


def run(out: Path, timeout_s: float = 90.0) -> dict[str, float]:
    """Screenshot every page into ``out``; returns seconds until each page showed its content."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000"):  # fmt: skip
        opts.add_argument(flag)
    times: dict[str, float] = {}
    driver = None
    try:
        _wait_healthy(port, timeout_s)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
        for name, (path, text) in PAGES.items():
            t0 = time.time()
            driver.get(f"http://127.0.0.1:{port}/{path}")
            WebDriverWait(driver, timeout_s).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), text))
            # the script has finished when the status area no longer offers "Stop"
            WebDriverWait(driver, timeout_s).until(lambda d: not d.find_elements(By.XPATH, "//*[text()='Stop']"))
            times[name] = time.time() - t0
            time.sleep(0.5)  # let the charts paint
            errors = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
            if errors or "Page not found" in driver.find_element(By.TAG_NAME, "body").text:
                raise RuntimeError(
                    f"page {name} shows an error: {(errors[0].text if errors else 'page not found')[:200]}"
                )
            driver.save_screenshot(str(out / f"{name}.png"))
    finally:
        if driver is not None:
            driver.quit()
        app.terminate()
        app.wait(timeout=20)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "screenshots"), help="folder for the screenshots")
    a = ap.parse_args()
    if not browser_available():
        print("no chromium/chromedriver: apt-get install chromium chromium-driver", file=sys.stderr)
        return 2
    times = run(Path(a.out))
    for name, sec in times.items():
        print(f"{name:10s} rendered in {sec:5.2f} s -> {Path(a.out) / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
