"""Headless Debian Chromium for the browser tests: where it is, how it starts, and a page that records script errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes say: no sandbox (root), and none of Chromium's own network traffic.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "ui"

marks = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                       "(apt-get install chromium)"),
]


@contextmanager
def chromium_page(*, width: int = 1366, height: int = 900, **context: Any) -> Iterator[Any]:
    """A fresh browser context and page; fails the test if the page raised a JavaScript error."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        ctx = browser.new_context(viewport={"width": width, "height": height}, **context)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            ctx.close()
            browser.close()
        assert not errors, f"JavaScript errors: {errors}"
