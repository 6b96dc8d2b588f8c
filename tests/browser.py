"""A page edgeq wrote, opened offline in headless Chromium (Debian's, driven by Playwright), with the
console errors it logged and the network requests it tried kept beside it."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def opened(html: Path, screenshot: Path, profile_dir: Path) -> Iterator[tuple]:
    """`html` in a fresh Chromium profile: (tab, console errors, non-file requests); a full-page
    screenshot is left at `screenshot`."""
    playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[test]')")
    with playwright.sync_playwright() as p:
        # A persistent context is how Playwright takes a fresh --user-data-dir.
        browser = p.chromium.launch_persistent_context(str(profile_dir), executable_path=CHROMIUM, args=FLAGS,
                                                       viewport={"width": 1100, "height": 900})
        tab = browser.new_page()
        errors, requests = [], []
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        tab.goto(html.as_uri())
        tab.screenshot(path=str(screenshot), full_page=True)
        try:
            yield tab, errors, requests
        finally:
            browser.close()
