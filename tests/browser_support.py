"""Headless Chromium for the dashboard's browser tests: Debian's ``chromium`` package driven by
Playwright (from PyPI). ``.ci/run`` installs the package; outside CI a machine without it skips
these tests, under CI it is a failure (as with PostgreSQL and Redis)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.access_support import PASSWORD

CHROMIUM = os.environ.get("SPENDGATE_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def launch() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + ": required under CI")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # Containers run CI as root, where Chromium refuses its sandbox.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browser_as(browser: Any, gateway: Any, username: str, password: str = PASSWORD) -> Iterator[Any]:
    """A fresh browser context (its own cookies), logged in through the login form."""
    context = browser.new_context(base_url=gateway.url, viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    try:
        page.goto("/ui/")
        assert page.url.endswith("/ui/login?next=/ui/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/ui/$"))
        yield page
    finally:
        context.close()


def cli_report_json(db_url: str, *args: str) -> dict[str, Any]:
    """`spendgate report … --format json` run as a user runs it."""
    import orjson

    out = subprocess.run(
        [sys.executable, "-m", "spendgate", "report", "--db", db_url, "--format", "json", *args],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return orjson.loads(out.stdout)


def download_csv(page: Any, testid: str) -> str:
    """Click a table's CSV link and read what the browser downloaded."""
    with page.expect_download() as info:
        page.get_by_test_id(testid).click()
    return Path(info.value.path()).read_text()
