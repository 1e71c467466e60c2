"""The technician's upload monitor while a modality sends a study by C-STORE."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from server.auth.roles import Role
from server.dicom.peers import OPEN_FACILITY
from tests.browser.conftest import screenshot, sign_in
from tests.browser.live import LiveServer
from tests.browser.studies import ct_study
from tests.conftest import TEST_PASSWORD


def test_upload_monitor_shows_a_c_store_live(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    tech = server.add_user(TEST_PASSWORD, Role.TECHNICIAN, "Tech Tina", facility=OPEN_FACILITY)
    ae_title = f"CT{uuid.uuid4().hex[:8].upper()}"
    page = new_context().new_page()
    sign_in(page, server, tech)
    page.goto(server.url + "/#/uploads")
    expect(page.get_by_test_id("page-uploads")).to_be_visible()
    expect(page.get_by_test_id("uploads-table")).to_be_visible()

    study = ct_study("UPLOAD^WATCHED", slices=4)
    server.c_store(ae_title, study.datasets)

    row = page.locator(f'[data-testid=upload-row][data-studies~="{study.study_uid}"]')
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("upload-ae")).to_have_text(ae_title)
    expect(row.get_by_test_id("upload-stored")).to_have_text("4")
    expect(row).to_have_attribute("data-state", "closed")
    expect(page.get_by_test_id("completed-study")).to_contain_text(study.study_uid)
    screenshot(page, "upload-monitor")
