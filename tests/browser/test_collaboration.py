"""Reading together in real browsers: live arrivals, follow mode, shared measurements, chat,
the co-edited report, and alert toasts. Needs the rooms capability (study rooms, presence,
annotations, chat, report sync, worklist and alert forwarding)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, expect

from server.auth.roles import Role
from server.dicom.peers import OPEN_FACILITY
from server.workflow.service import WORKFLOW
from tests.browser.canvas import grey_at, wait_drawn
from tests.browser.conftest import screenshot, sign_in
from tests.browser.live import LiveServer
from tests.browser.studies import ct_study
from tests.conftest import TEST_PASSWORD

SIZE = 128


def _open(page: Page, server: LiveServer, study_uid: str) -> None:
    page.goto(f"{server.url}/#/study/{study_uid}")
    expect(page.get_by_test_id("participants")).to_be_visible()
    wait_drawn(page)


def _two_readers_in_a_study(
    server: LiveServer, new_context: Callable[[], BrowserContext], name: str
) -> tuple[str, Page, Page]:
    """Dr. Alice (page a) and Dr. Bob (page b) signed in and open in a new 5-slice study.

    Returns Alice's username with the two pages.
    """
    prefix, _, word = name.partition("^")
    study = ct_study(f"{prefix}{uuid.uuid4().hex[:6].upper()}^{word}", slices=5, size=SIZE)
    server.c_store("CT1", study.datasets)
    alice = server.add_user(TEST_PASSWORD, Role.RADIOLOGIST, "Dr. Alice", OPEN_FACILITY)
    bob = server.add_user(TEST_PASSWORD, Role.RADIOLOGIST, "Dr. Bob", OPEN_FACILITY)
    a = new_context().new_page()
    b = new_context().new_page()
    sign_in(a, server, alice)
    sign_in(b, server, bob)
    _open(a, server, study.study_uid)
    _open(b, server, study.study_uid)
    return alice, a, b


def test_a_study_sent_by_c_store_appears_on_the_open_worklist(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    reader = server.add_user(TEST_PASSWORD, Role.RADIOLOGIST, "Dr. Live", OPEN_FACILITY)
    page = new_context().new_page()
    sign_in(page, server, reader)
    expect(page.get_by_test_id("worklist-count")).not_to_have_text("Loading…")
    study = ct_study(f"LIVE{uuid.uuid4().hex[:6].upper()}^ARRIVAL", slices=3)
    row = page.locator(f'[data-testid=worklist-row][data-study-uid="{study.study_uid}"]')
    expect(row).to_have_count(0)

    server.c_store("CT1", study.datasets)

    expect(row).to_have_count(1)
    row.get_by_test_id("open-study").click()
    expect(page.get_by_test_id("participants")).to_contain_text("Dr. Live")


def test_two_readers_follow_measure_chat_and_write_one_report(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    alice, a, b = _two_readers_in_a_study(server, new_context, "PAIR^READ")
    expect(a.get_by_test_id("participant")).to_have_count(2)
    expect(b.get_by_test_id("participant")).to_have_count(2)

    # B follows A, and lands on A's slice and window.
    a.get_by_test_id("present").click()
    b.get_by_test_id("follow").click()
    a.get_by_test_id("viewer-canvas").click()
    a.keyboard.press("End")
    a.get_by_test_id("preset-bone").click()
    expect(a.get_by_test_id("slice-label")).to_have_text("Im 5/5")
    expect(b.get_by_test_id("slice-label")).to_have_text("Im 5/5")
    expect(b.get_by_test_id("window-label")).to_have_text("W 1800 / L 400")

    # A draws a length; B sees it with the same value in mm, measured by the server.
    a.get_by_test_id("tool-length").click()
    box = a.get_by_test_id("viewer-canvas").bounding_box()
    assert box is not None
    a.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    a.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + box["height"] / 2)
    label_a = a.get_by_test_id("measurement-label")
    expect(label_a).to_contain_text("mm")
    value = label_a.inner_text()
    expect(b.get_by_test_id("measurement-label")).to_have_text(value)
    screenshot(a, "viewer-with-measurement")

    # B writes in the chat; A reads it as text, markup and all.
    message = f"@{alice} look <b>here</b> <img src=x onerror=alert(1)>"
    b.get_by_test_id("chat-input").fill(message)
    b.get_by_test_id("chat-send").click()
    expect(a.get_by_test_id("chat-message").last).to_contain_text(message)
    assert a.locator(".messages img, .messages b").count() == 0

    # Both write the report: A a line, B the next once A's has arrived, then both at once at
    # opposite ends. Both end with the same text, holding every contribution.
    report_a = a.get_by_test_id("report-text")
    report_b = b.get_by_test_id("report-text")
    report_a.click()
    a.keyboard.type("Findings: no acute abnormality.")
    expect(report_b).to_have_value("Findings: no acute abnormality.")
    report_b.click()
    b.keyboard.press("Control+End")
    b.keyboard.type(" Impression: normal study.")
    expect(report_a).to_have_value("Findings: no acute abnormality. Impression: normal study.")
    report_a.click()
    a.keyboard.press("Control+Home")
    b.keyboard.press("Control+End")
    a.keyboard.type("CT HEAD. ")
    b.keyboard.type(" Signed off.")
    both = re.compile(r"^CT HEAD\. Findings: .* Impression: normal study\. Signed off\.$")
    expect(report_a).to_have_value(both)
    expect(report_b).to_have_value(both)
    expect(report_b).to_have_value(report_a.input_value())
    screenshot(a, "two-readers-alice")
    screenshot(b, "two-readers-bob")


def test_a_follower_gets_the_presenters_frames_over_the_room(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    """While following, the canvas shows the frames the server renders for the presenter's view
    and sends over the room; the follower fetches no frame over HTTP."""
    _, a, b = _two_readers_in_a_study(server, new_context, "ROOM^FRAME")
    expect(b.get_by_test_id("participant")).to_have_count(2)
    a.get_by_test_id("present").click()
    b.get_by_test_id("follow").click()
    canvas_b = b.get_by_test_id("viewer-canvas")
    expect(canvas_b).to_have_attribute("data-source", "room")
    fetched: list[str] = []
    b.on("request", lambda r: fetched.append(r.url) if "/api/render/" in r.url else None)
    first = int(canvas_b.get_attribute("data-room-frames") or 0)
    assert first >= 1

    a.get_by_test_id("viewer-canvas").click()
    a.keyboard.press("End")
    a.get_by_test_id("preset-bone").click()
    expect(b.get_by_test_id("slice-label")).to_have_text("Im 5/5")
    # 44 px right of the centre is tissue only on the last slice (the disc grows slice by
    # slice); in the bone window tissue is dark grey, (40 + 500) / 1800 * 255 = 76.
    b.wait_for_function(
        """([canvas, x, y, size]) => {
             const s = Math.min(canvas.width / size, canvas.height / size);
             const cx = canvas.width / 2 + (x + 0.5 - size / 2) * s;
             const cy = canvas.height / 2 + (y + 0.5 - size / 2) * s;
             const [grey] = canvas.getContext("2d").getImageData(cx, cy, 1, 1).data;
             return canvas.dataset.source === "room" && grey > 60 && grey < 95;
           }""",
        arg=[canvas_b.element_handle(), SIZE / 2 + 44, SIZE / 2, SIZE],
    )
    assert grey_at(b, SIZE / 2, SIZE / 2, SIZE) > 200  # bone stays bright
    assert int(canvas_b.get_attribute("data-room-frames") or 0) > first
    assert fetched == []
    screenshot(b, "follower-room-frames")

    # Stepping out goes back to the reader's own frames over HTTP.
    b.get_by_test_id("step-out").click()
    expect(canvas_b).to_have_attribute("data-source", "http")
    wait_drawn(b)


def test_take_control_is_asked_for_and_granted_by_the_presenter(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    _, a, b = _two_readers_in_a_study(server, new_context, "CTRL^HAND")
    expect(b.get_by_test_id("participant")).to_have_count(2)
    a.get_by_test_id("present").click()
    b.get_by_test_id("follow").click()

    # Bob asks; Alice declines; Bob is told.
    b.get_by_test_id("take-control").click()
    expect(b.get_by_test_id("control-asked")).to_contain_text("Asked Dr. Alice for control")
    request = a.get_by_test_id("control-request")
    expect(request).to_contain_text("Dr. Bob asks for control")
    request.get_by_test_id("control-decline").click()
    expect(request).to_have_count(0)
    expect(b.get_by_test_id("control-declined")).to_contain_text("Dr. Alice declined")
    expect(b.get_by_test_id("stop-presenting")).to_have_count(0)

    # Bob asks again; Alice grants: Bob presents and Alice follows him to his slice.
    b.get_by_test_id("take-control").click()
    expect(request).to_contain_text("Dr. Bob asks for control")
    screenshot(a, "take-control-request")
    request.get_by_test_id("control-grant").click()
    expect(b.get_by_test_id("stop-presenting")).to_be_visible()
    expect(a.get_by_test_id("step-out")).to_be_visible()
    expect(a.locator(".participant.presenting")).to_contain_text("Dr. Bob")
    b.get_by_test_id("viewer-canvas").click()
    b.keyboard.press("Home")
    b.get_by_test_id("preset-lung").click()
    expect(b.get_by_test_id("slice-label")).to_have_text("Im 1/5")
    expect(a.get_by_test_id("slice-label")).to_have_text("Im 1/5")
    expect(b.get_by_test_id("window-label")).to_have_text("W 1500 / L -600")
    expect(a.get_by_test_id("window-label")).to_have_text("W 1500 / L -600")
    screenshot(b, "take-control-granted")


def test_an_alert_raised_on_the_server_is_a_toast_for_the_assigned_reader(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    admin = server.add_user(TEST_PASSWORD, Role.ADMIN, facility=OPEN_FACILITY)
    reader = server.add_user(TEST_PASSWORD, Role.RADIOLOGIST, "Dr. Alert", OPEN_FACILITY)
    accession = f"AL{uuid.uuid4().hex[:8]}"
    order = server.api(
        admin,
        TEST_PASSWORD,
        "POST",
        "/api/orders",
        {
            "accession_number": accession,
            "patient": {"id": "PALERT", "name": "ALERT^ALICE"},
            "modality": "CT",
            "requested_procedure": "CT head",
            "scheduled_at": "2026-11-27T09:30:00Z",
            "priority": "stat",
        },
    )
    server.api(
        admin, TEST_PASSWORD, "POST", f"/api/studies/{order['id']}/assign", {"username": reader}
    )
    page = new_context().new_page()
    sign_in(page, server, reader)
    expect(page.get_by_test_id("worklist-row").first).to_be_visible()

    workflow = server.app[WORKFLOW]
    study = server.call(workflow.studies.get(order["id"]))
    server.call(
        workflow.alerts.raise_alert(
            study,
            kind="critical_finding",
            severity="critical",
            title="Suspected intracranial haemorrhage",
            message="AI triage flagged this study <script>x()</script>",
            source="test",
        )
    )

    toast = page.get_by_test_id("alert-toast")
    expect(toast).to_contain_text("Suspected intracranial haemorrhage")
    expect(toast).to_contain_text("<script>x()</script>")
    screenshot(page, "alert-toast")
    toast.get_by_test_id("alert-ack").click()
    expect(toast).to_have_count(0)
