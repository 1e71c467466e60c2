"""Opening a study in a real browser: server-rendered pixels on the canvas, scrolling, presets."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from server.auth.roles import Role
from server.dicom.peers import OPEN_FACILITY
from tests.browser.canvas import click_pixel, grey_at, signature, wait_drawn
from tests.browser.conftest import screenshot, sign_in
from tests.browser.live import LiveServer
from tests.browser.studies import ct_study
from tests.conftest import TEST_PASSWORD

SIZE = 128


def test_open_study_scroll_and_preset(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    name = f"VIEW{uuid.uuid4().hex[:6].upper()}^ANNA"
    study = ct_study(name, slices=5, size=SIZE)
    server.c_store("CT1", study.datasets)
    reader = server.add_user(TEST_PASSWORD, Role.RADIOLOGIST, "Dr. View", OPEN_FACILITY)

    page = new_context().new_page()
    sign_in(page, server, reader)
    page.goto(f"{server.url}/#/study/{study.study_uid}")

    expect(page.get_by_test_id("series-thumb")).to_have_count(1)
    first = wait_drawn(page)
    expect(page.get_by_test_id("slice-label")).to_have_text("Im 3/5")
    # The object's own window (W 400 / L 40): air black, water-like tissue mid-grey, bone white.
    expect(page.get_by_test_id("window-label")).to_have_text("W 400 / L 40")
    air = grey_at(page, 2, 2, SIZE)
    tissue = grey_at(page, SIZE / 2 + 19, SIZE / 2, SIZE)
    bone = grey_at(page, SIZE / 2, SIZE / 2, SIZE)
    assert air < 10
    assert 100 < tissue < 160
    assert bone > 245
    before = signature(page)

    page.keyboard.press("ArrowDown")
    expect(page.get_by_test_id("slice-label")).to_have_text("Im 4/5")
    wait_drawn(page, not_key=first)
    after = signature(page)
    assert after["lit"] > before["lit"]  # the disc grows slice by slice

    page.get_by_test_id("preset-bone").click()
    expect(page.get_by_test_id("window-label")).to_have_text("W 1800 / L 400")
    wait_drawn(page, containing="window=400%2C1800")
    tissue_in_bone_window = grey_at(page, SIZE / 2 + 19, SIZE / 2, SIZE)
    assert tissue_in_bone_window < tissue - 30  # (40 + 500) / 1800 * 255 = 76 vs 128
    screenshot(page, "viewer")

    # A sagittal reformat with a MIP slab, rendered by the server from the whole series.
    page.get_by_test_id("plane").select_option("sagittal")
    page.get_by_test_id("slab").fill("10")
    page.wait_for_function(
        "(c) => (c.dataset.drawn || '').includes('/mpr/sagittal/')"
        " && c.dataset.drawn.includes('mode=mip') && c.dataset.drawn.includes('quality=final')",
        arg=page.get_by_test_id("viewer-canvas").element_handle(),
    )
    expect(page.get_by_test_id("slice-label")).to_contain_text("sagittal 65/128")
    assert signature(page)["lit"] > 0

    page.get_by_test_id("layout").select_option("2x2")
    expect(page.get_by_test_id("pane")).to_have_count(4)


def test_probe_shows_the_servers_hu_value_at_the_clicked_pixel(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    """The phantom's bone square (1000 HU) covers pixels 56..71 of a 128² slice, the 40 HU disc
    around it; values come back measured by the server from the stored pixels."""
    study = ct_study(f"PROBE{uuid.uuid4().hex[:6].upper()}^PIA", slices=3, size=SIZE)
    server.c_store("CT1", study.datasets)
    reader = server.add_user(TEST_PASSWORD, Role.RADIOLOGIST, "Dr. Probe", OPEN_FACILITY)
    page = new_context().new_page()
    sign_in(page, server, reader)
    page.goto(f"{server.url}/#/study/{study.study_uid}")
    expect(page.get_by_test_id("participants")).to_be_visible()
    wait_drawn(page)

    page.get_by_test_id("tool-probe").click()
    click_pixel(page, 71, 56, SIZE)  # the bone square's top right corner pixel
    labels = page.get_by_test_id("measurement-label")
    expect(labels).to_have_count(1)
    expect(labels.first).to_have_text("Value 1000.0 HU")
    click_pixel(page, 56, 72, SIZE)  # just below the square's bottom left corner: tissue
    expect(labels).to_have_count(2)
    expect(labels.nth(1)).to_have_text("Value 40.00 HU")
    click_pixel(page, 2, 2, SIZE)  # air in the corner
    expect(labels.nth(2)).to_have_text("Value -1000.0 HU")
    screenshot(page, "viewer-probe")
