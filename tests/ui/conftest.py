"""Browser fixtures for the web UI: Debian's headless Chromium driven by Playwright, against a real server.

The server is the ``api`` fixture of ``tests/api`` (``orchestrator api`` in a subprocess, a real
worker, a token of each scope). Playwright drives the machine's ``chromium`` (``executable_path``):
``playwright install`` is never run, as no browser build can be downloaded here. When Chromium is
missing the tests are skipped, except under ``CI=true`` where they fail (``.ci/services`` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Playwright, expect, sync_playwright

from tests.api.conftest import ApiServer, api  # noqa: F401 - the server fixture, shared with tests/api

VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000
"""How long a locator or an ``expect`` waits for the page: polling pages update within a few seconds."""
expect.set_options(timeout=TIMEOUT_MS)


def chromium_path() -> str | None:
    """The Chromium to drive: ``ORCH_TEST_CHROMIUM``, else ``chromium`` on PATH."""
    return os.environ.get("ORCH_TEST_CHROMIUM") or shutil.which("chromium")


def launch(playwright: Playwright, executable: str) -> Browser:
    """Headless Chromium; ``--no-sandbox`` because the tests run as root."""
    return playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module (skips the test, or fails it under CI, when there is none).

    Not one per session: Playwright's sync API keeps an asyncio loop running in the main thread while
    it is open, and a later test module's ``asyncio.run`` or ``anyio.run`` would find it there
    ("Already running asyncio in this thread").
    """
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/services installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = launch(playwright, executable)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Session:
    """A browser context logged in (or not) to the UI, with the dialogs its pages opened."""

    server: ApiServer
    context: BrowserContext
    page: Page
    dialogs: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Page:
        self.page.goto(f"{self.server.url}{path}")
        return self.page

    def login(self, token: str) -> Page:
        """Fill the login form with ``token`` and submit it; the page after the redirect."""
        page = self.goto("/ui/login")
        page.fill("input[name=token]", token)
        with page.expect_navigation():
            page.click("form button[type=submit], form input[type=submit]")
        return page


@pytest.fixture
def session(browser: Browser, api: ApiServer) -> Iterator[Callable[..., Session]]:  # noqa: F811
    """Factory: ``session("admin")`` a logged-in browser context for that scope's token, ``session(None)`` none.

    Every JavaScript dialog (``alert``, ``confirm``) a page opens is recorded in ``dialogs`` and
    dismissed; every context is closed after the test.
    """
    contexts: list[BrowserContext] = []

    def open_session(scope: str | None = "admin") -> Session:
        context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        opened = Session(api, context, page)

        def on_dialog(dialog: Dialog) -> None:
            opened.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        if scope is not None:
            opened.login(api.tokens[scope])
        return opened

    yield open_session
    for context in contexts:
        context.close()


def add_workflow(server: ApiServer, steps: dict[str, Any], prefix: str = "ui", **extra: Any) -> str:
    """Write a workflow of these steps into the server's directory (its registry picks it up); its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    body = {"workflow": name, "steps": steps, **extra}
    (server.workflows_dir / f"{name}.json").write_text(json.dumps(body), encoding="utf-8")
    return name


def submit(server: ApiServer, workflow: str, params: dict[str, Any] | None = None) -> str:
    """Start a run over the API (admin token); its id."""
    with server.client() as client:
        return client.submit(workflow, params).run_id
