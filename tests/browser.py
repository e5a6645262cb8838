"""Debian's Chromium driven by Playwright for the tests: the module-scoped ``browser``
fixture, a watch on what a page does that it should not, and the review desk's log-in.

Needs /usr/bin/chromium (apt-get install chromium): skipped without it, failed instead
when AGGREGATOR_TEST_STRICT=1. Never downloads a browser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from newsroom import PASSWORD, Newsroom

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).parent.parent / "docs"
# Read at import: the test fixtures hide AGGREGATOR_* variables from the tests themselves.
UPDATE_SCREENSHOTS = os.environ.get("AGGREGATOR_UPDATE_SCREENSHOTS") == "1"
STRICT = os.environ.get("AGGREGATOR_TEST_STRICT") == "1"


def _require_chromium() -> None:
    reason = None
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is missing (pip install -e '.[dev]')"
    if reason and STRICT:
        pytest.fail(f"{reason}; AGGREGATOR_TEST_STRICT=1 requires it")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Watch:
    """What a page did that it should not: dialogs, uncaught errors, console errors."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> Any:
        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "console",
            lambda message: self.console.append(message.text) if message.type == "error" else None,
        )
        return page

    def problems(self) -> list[str]:
        # An image of the source that the local upstream server does not have is a 404,
        # not a script; everything else counts.
        console = [m for m in self.console if not m.startswith("Failed to load resource")]
        return self.dialogs + self.errors + console


def new_page(browser: Any, newsroom: Newsroom, watch: Watch, **options: Any) -> Any:
    context = browser.new_context(base_url=newsroom.base_url, locale="fr-FR", **options)

    def loopback_only(route: Any) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:  # images of the real pages point to the internet: never reach it
            route.abort()

    context.route("**/*", loopback_only)
    page = watch.attach(context.new_page())
    page.set_default_timeout(15_000)
    return page


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def log_in(page: Any, name: str = "Camille") -> None:
    page.goto("/review/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/review/")
