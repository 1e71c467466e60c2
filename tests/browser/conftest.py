"""Browser test fixtures: the built client, the real server on a free port, Debian's chromium.

The client is built once per session (skipped when ``client/dist`` is newer than its sources,
as after ``make test``'s build step). Playwright drives the system chromium through
``executable_path``; no browser is ever downloaded.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.browser.live import LiveServer, live_server, settings_for
from tests.conftest import TEST_PASSWORD, TEST_SECRET
from tests.support.programs import require_program

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Upper bounds for one step on a loaded 2-core machine; they bound waits, they time nothing.
STEP_TIMEOUT_MS = 30_000
BUILD_TIMEOUT_S = 600


def _newest_source() -> float:
    sources = [CLIENT / "index.html", CLIENT / "package-lock.json", CLIENT / "vite.config.ts"]
    sources += list((CLIENT / "src").rglob("*"))
    sources += list((ROOT / "shared" / "protocol").rglob("*.json"))
    return max(p.stat().st_mtime for p in sources if p.is_file())


@pytest.fixture(scope="session")
def client_dist() -> Path:
    index = CLIENT / "dist" / "index.html"
    if index.is_file() and index.stat().st_mtime >= _newest_source():
        return index.parent
    require_program("npm")
    subprocess.run([str(ROOT / "scripts" / "build-client")], check=True, timeout=BUILD_TIMEOUT_S)
    return index.parent


@pytest.fixture(scope="package")
def server(
    client_dist: Path, store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = settings_for(store_url, tmp_path_factory.mktemp("data"), TEST_SECRET)
    with live_server(settings) as live:
        yield live


# Package scope, not session: Playwright's sync API keeps its event loop current in the main
# thread while it runs, which would break every asyncio test collected after this package.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = require_program("chromium")
    browser = playwright.chromium.launch(
        executable_path=executable, headless=True, args=CHROMIUM_FLAGS
    )
    yield browser
    browser.close()


@pytest.fixture
def new_context(browser: Browser, server: LiveServer) -> Iterator[Callable[[], BrowserContext]]:
    """A factory of isolated browser contexts (one per simulated reader), closed afterwards."""
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 800})
        context.set_default_timeout(STEP_TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def sign_in(page: Page, server: LiveServer, username: str, password: str = TEST_PASSWORD) -> None:
    page.goto(server.url + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=whoami]")


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
