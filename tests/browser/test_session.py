"""Signing in and out in a real browser, tokens kept out of the URL and storage, the connection
banner on a drop, and the static client served with the right caching and CSP."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from tests.browser.conftest import sign_in
from tests.browser.live import LiveServer
from tests.conftest import TEST_PASSWORD


def test_sign_in_and_out(server: LiveServer, new_context: Callable[[], BrowserContext]) -> None:
    username = server.add_user(TEST_PASSWORD, display_name="Dr. Ada Lovelace")
    page = new_context().new_page()
    sign_in(page, server, username)
    expect(page.get_by_test_id("whoami")).to_contain_text("Dr. Ada Lovelace")

    stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert stored == "[{},{}]"
    assert "token" not in page.url
    assert page.context.cookies() == []

    page.get_by_test_id("signout").click()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("signin-form")).to_be_visible()


def test_wrong_password_is_explained(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    username = server.add_user(TEST_PASSWORD)
    page = new_context().new_page()
    page.goto(server.url + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.get_by_test_id("signin-error")).to_have_text("Wrong username or password.")
    expect(page.locator("input[name=password]")).to_have_value("")


def test_banner_when_the_connection_drops_and_resyncs(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    username = server.add_user(TEST_PASSWORD)
    page = new_context().new_page()
    sign_in(page, server, username)
    expect(page.get_by_test_id("connection-banner")).to_have_count(0)
    assert server.drop_connections() >= 1
    expect(page.get_by_test_id("connection-banner")).to_have_attribute("data-status", "resynced")
    expect(page.get_by_test_id("connection-banner")).to_have_count(0)


def test_static_client_caching_and_csp(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    request = new_context().request
    index = request.get(server.url + "/")
    assert index.headers["cache-control"] == "no-cache"
    csp = index.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    asset = re.search(r'src="(/assets/index-[A-Za-z0-9_-]+\.js)"', index.text())
    assert asset is not None
    script = request.get(server.url + asset.group(1))
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in script.headers["content-type"]
    assert request.get(server.url + "/assets/..%2Findex.html").status == 404
    assert request.get(server.url + "/assets/missing-0000.js").status == 404
