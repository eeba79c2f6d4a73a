"""A real headless Chromium for the GUI's tests: Debian's chromium driven through its chromedriver.

Nothing is downloaded: the driver and the browser are given by path, so selenium-manager never
runs (SE_OFFLINE too), and the tests skip, saying how to install them, when either is missing.
Screenshots go under the test's output directory; with $RECONCILER_GUI_SCREENSHOTS set (the
docs' folder, docs/gui) they are also written there, to refresh docs/gui.md's pictures.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

__all__ = ["start_browser", "console_errors", "Screens", "wait_for", "By", "WebDriver", "WebElement"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 20.0
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,860",
)


def start_browser(profile: Path) -> WebDriver:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"{' and '.join(missing)} missing: install Debian's chromium and chromium-driver (make browser)")
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # The console, to catch what the Content-Security-Policy blocked and script errors.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    return driver


def console_errors(driver: WebDriver) -> list[str]:
    """The console's errors since the last call (favicon and other fetches included)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def wait_for(driver: WebDriver, check: Callable[[WebDriver], Any], what: str, timeout: float = WAIT) -> Any:
    """Bounded: the check's first truthy answer, or a failure naming what did not happen."""
    # A live refresh replaces parts of the page: an element found a moment ago may be gone.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    wait = WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored)
    return wait.until(check, f"timed out after {timeout:g} s waiting for {what}")


class Screens:
    """Screenshots named after the page, in `folder` (and in $RECONCILER_GUI_SCREENSHOTS)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        docs = os.environ.get("RECONCILER_GUI_SCREENSHOTS")
        self.docs = Path(docs) if docs else None

    def save(self, driver: WebDriver, name: str) -> Path:
        path = self.folder / f"{name}.png"
        assert driver.save_screenshot(str(path)), f"no screenshot {path}"
        if self.docs is not None:
            self.docs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.docs / path.name)
        return path
