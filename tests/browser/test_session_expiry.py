"""Session lifetime in a real browser: with a short access-token lifetime the client refreshes
in the background and keeps working; when the server ends the session, the page stays as it was
behind a "sign in again" dialog, and what the user typed meanwhile is kept and delivered."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from server.auth.guard import AUTH_SERVICE
from server.auth.roles import Role
from server.dicom.peers import OPEN_FACILITY
from server.rooms.setup import ROOMS
from tests.browser.canvas import wait_drawn
from tests.browser.conftest import screenshot, sign_in
from tests.browser.live import LiveServer, live_server, settings_for
from tests.browser.studies import ct_study
from tests.conftest import TEST_PASSWORD, TEST_SECRET

# Short enough that the test sees several refreshes (every 5 s, the client's floor) and
# outlives the first access token.
ACCESS_TTL_S = 6
WAIT_S = 30.0


@pytest.fixture(scope="module")
def short_lived(
    client_dist: Path, store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = settings_for(store_url, tmp_path_factory.mktemp("short"), TEST_SECRET)
    with live_server(dataclasses.replace(settings, access_token_ttl_s=ACCESS_TTL_S)) as live:
        yield live


def _eventually(check: Callable[[], bool], what: str) -> None:
    """Polls a server-side condition, bounded in time (a wait, not a timing assertion)."""
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.2)


def test_refresh_in_the_background_then_sign_in_again_keeping_the_draft(
    short_lived: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    server = short_lived
    study = ct_study(f"EXP{uuid.uuid4().hex[:6].upper()}^IRY", slices=3)
    server.c_store("CT1", study.datasets)
    reader = server.add_user(TEST_PASSWORD, Role.RADIOLOGIST, "Dr. Expiry", OPEN_FACILITY)
    page = new_context().new_page()
    sign_in(page, server, reader)
    page.goto(f"{server.url}/#/study/{study.study_uid}")
    expect(page.get_by_test_id("participants")).to_be_visible()
    first = wait_drawn(page)

    # Two background refreshes: the first access token has expired by the second.
    for _ in range(2):
        with page.expect_response(lambda r: r.url.endswith("/api/auth/refresh")) as refreshed:
            pass
        assert refreshed.value.status == 200
    page.get_by_test_id("viewer-canvas").click()
    page.keyboard.press("ArrowDown")
    wait_drawn(page, not_key=first)  # an HTTP render with the current token
    page.get_by_test_id("chat-input").fill("still here")
    page.get_by_test_id("chat-send").click()
    expect(page.get_by_test_id("chat-message").last).to_contain_text("still here")
    report = page.get_by_test_id("report-text")
    report.click()
    page.keyboard.type("Findings: stable.")
    rooms = server.app[ROOMS]

    def draft() -> str | None:
        return server.call(rooms.reports.draft_text(study.study_uid))

    _eventually(lambda: draft() == "Findings: stable.", "the draft reached the server")

    # The server ends the session (as a sign-out elsewhere or an admin would).
    auth = server.app[AUTH_SERVICE]
    user = server.call(auth.users.by_username(reader))
    assert user is not None
    server.call(auth.sessions.revoke_all(user.id, "test"))
    dialog = page.get_by_test_id("session-expired")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Your session has expired")
    # Outlive the last access token, so the server refuses whatever the page still sends; then
    # the user goes on typing (the dialog leaves the page underneath as it was).
    time.sleep(ACCESS_TTL_S)
    report.focus()
    page.keyboard.press("End")
    page.keyboard.type(" Impression: none.")
    page.get_by_test_id("chat-input").fill("typed while signed out")
    expect(report).to_have_value("Findings: stable. Impression: none.")
    assert draft() == "Findings: stable."
    expect(page.get_by_test_id("chat-input")).to_have_value("typed while signed out")
    expect(page.get_by_test_id("viewer")).to_be_attached()
    screenshot(page, "session-expired")

    dialog.get_by_test_id("expired-password").fill("not the password")
    dialog.get_by_test_id("expired-signin").click()
    expect(dialog.get_by_test_id("expired-error")).to_be_visible()
    dialog.get_by_test_id("expired-password").fill(TEST_PASSWORD)
    dialog.get_by_test_id("expired-signin").click()
    expect(dialog).to_have_count(0)
    _eventually(
        lambda: draft() == "Findings: stable. Impression: none.",
        "the text typed while the session was over reached the server",
    )
    page.get_by_test_id("chat-send").click()
    expect(page.get_by_test_id("chat-message").last).to_contain_text("typed while signed out")
