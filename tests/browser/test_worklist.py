"""The worklist in a real browser against the real workflow: rows, STAT first, search."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from server.auth.roles import Role
from tests.browser.conftest import screenshot, sign_in
from tests.browser.live import LiveServer
from tests.conftest import TEST_PASSWORD


def _order(server: LiveServer, tech: str, name: str, priority: str, modality: str) -> str:
    accession = f"A{uuid.uuid4().hex[:10]}"
    server.api(
        tech,
        TEST_PASSWORD,
        "POST",
        "/api/orders",
        {
            "accession_number": accession,
            "patient": {"id": f"P{uuid.uuid4().hex[:6]}", "name": name},
            "modality": modality,
            "requested_procedure": f"{modality} study",
            "scheduled_at": "2026-11-27T09:30:00Z",
            "priority": priority,
        },
    )
    return accession


def test_worklist_lists_studies_stat_first_and_searches(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    facility = f"fac-{uuid.uuid4().hex[:8]}"
    tech = server.add_user(TEST_PASSWORD, Role.TECHNICIAN, facility=facility)
    reader = server.add_user(TEST_PASSWORD, Role.RADIOLOGIST, "Dr. Reader", facility=facility)
    _order(server, tech, "DOE^JANE", "routine", "CT")
    stat = _order(server, tech, "ROE^RICHARD", "stat", "MR")
    _order(server, tech, "POE^EDGAR", "urgent", "CT")

    page = new_context().new_page()
    sign_in(page, server, reader)
    rows = page.get_by_test_id("worklist-row")
    expect(rows).to_have_count(3)
    expect(page.get_by_test_id("worklist-count")).to_have_text("3 studies")
    expect(rows.first).to_contain_text(stat)
    expect(rows.first).to_contain_text("STAT")
    expect(rows.first).to_have_class("row priority-stat")
    screenshot(page, "worklist")

    page.get_by_test_id("worklist-search").fill("poe")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("POE, EDGAR")
    page.get_by_test_id("worklist-search").fill("")
    expect(rows).to_have_count(3)
    page.get_by_test_id("filter-stat").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(stat)
