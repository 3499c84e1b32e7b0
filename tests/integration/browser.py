"""Headless Chromium for the tests that look at what a user sees (the compare report,
MLflow's UI, optuna-dashboard): one driver factory and one bounded wait for page text."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

#: flags that work on a closed network: no sandbox (root in CI), no GPU, nothing that phones home
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
]


@contextmanager
def chromium(profile: Path, window: str = "1400,3000") -> Iterator[Any]:
    """A Selenium Chrome driver on the system's Chromium; skips the test when Chromium,
    chromedriver or selenium is missing (``.ci/run`` installs all three)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not binary or not driver_bin:
        pytest.skip(
            "chromium / chromedriver not installed "
            "(apt-get install -y chromium chromium-driver; .ci/run installs them)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium: pip install -e .[dev]")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in [*CHROMIUM_FLAGS, f"--window-size={window}", f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_bin), options=options)
    driver.set_page_load_timeout(180)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(driver: Any, url: str | None, wanted: list[str], timeout_s: float = 180) -> str:
    """Open ``url`` (None: stay on the page) and wait (bounded) until the page shows every
    string of ``wanted``; the page's text then."""
    if url is not None:
        driver.get(url)
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = driver.find_element("tag name", "body").text
        if all(w in text for w in wanted):
            return text
        time.sleep(1)
    raise AssertionError(f"{url}: never showed {wanted}; page text:\n{text[:2000]}")
