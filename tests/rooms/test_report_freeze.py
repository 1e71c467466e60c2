"""A signed report's draft is frozen: the rooms hear the workflow's report.signed on the hub."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.http.errors import ApiError
from server.hub import DomainEvent
from server.rooms.channel import MemoryChannel
from server.rooms.setup import REPORT_SIGNED
from server.store.database import Store
from shared.protocol import catalog
from tests.conftest import Noctis  # noqa: F401 - the harness fixture builds on it
from tests.rooms.clients import Inbox, call
from tests.rooms.support import STUDY, add_study, make_rooms, make_user
from tests.rooms.yclient import YClient
from tests.support.sockets import socket_client
from tests.workflow.conftest import WorkflowHarness, harness  # noqa: F401 - fixture
from tests.workflow.test_reports import claimed_study


def signed(study_uid: str, kind: str = "report", version: int = 1) -> DomainEvent:
    return DomainEvent(
        REPORT_SIGNED,
        {
            "study_id": "s1",
            "study_uid": study_uid,
            "accession_number": "A1",
            "version": version,
            "kind": kind,
            "signer": "rad1",
            "signed_at": "2026-03-02T09:00:00+00:00",
            "sha256": "0" * 64,
        },
        facility="main",
    )


async def test_signing_freezes_the_draft_once_and_readers_still_sync(store: Store) -> None:
    await add_study(store)
    channel = MemoryChannel()
    rooms = make_rooms(store, channel)
    alice = await make_user(store, "alice")
    await rooms.join(alice, "a", STUDY, None)
    writer = YClient()
    await rooms.report_sync(alice, "a", STUDY, writer.step1())
    writer.text += "No acute findings."
    for message in writer.take():
        await rooms.report_sync(alice, "a", STUDY, message)

    await rooms.on_report_signed(signed(STUDY))
    (op,) = [o for o in channel.received("a", "room.op") if o["type"] == "report.frozen"]
    catalog().validate_outbound("room.op", op)
    assert (op["data"]["version"], op["data"]["signer"]) == (1, "rad1")
    state = (await rooms.snapshot(STUDY))["report"]
    assert state["frozen"]["version"] == 1

    writer.text += " Addendum typed into the draft."
    (late_edit,) = writer.take()
    with pytest.raises(ApiError) as refused:
        await rooms.report_sync(alice, "a", STUDY, late_edit)
    assert refused.value.code == "report_frozen"
    assert await rooms.reports.draft_text(STUDY) == "No acute findings."
    late = YClient()  # a reader opening the draft afterwards still gets the signed text
    answer = await rooms.report_sync(alice, "a", STUDY, late.step1())
    for message in answer["messages"]:
        late.receive(message)
    assert str(late.text) == "No acute findings."

    await rooms.on_report_signed(signed(STUDY, kind="addendum", version=2))
    await rooms.on_report_signed(signed(STUDY))  # the same signature heard twice
    assert len([o for o in channel.received("a", "room.op") if o["type"] == "report.frozen"]) == 1


async def test_an_unrelated_studys_signature_freezes_nothing(store: Store) -> None:
    await add_study(store)
    rooms = make_rooms(store)
    await rooms.on_report_signed(signed("1.2.826.0.1.3680043.10.999"))
    assert (await rooms.snapshot(STUDY))["report"]["frozen"] is None


async def test_the_workflow_signs_the_room_draft_and_the_room_refuses_later_edits(
    harness: WorkflowHarness,  # noqa: F811 - the imported fixture
) -> None:
    # The socket boundary checks token expiry against the real time; the harness starts its
    # clock in March, so bring it to now and sign in again.
    harness.clock.advance((datetime.now(UTC) - harness.clock()).total_seconds())
    await harness.relogin()
    sid = await claimed_study(harness)
    study = await harness.call("GET", f"/api/studies/{sid}", "rad1")
    study_uid = study["study_instance_uid"]
    async with socket_client(harness.noctis.client, harness.tokens["rad1"]) as sio:
        inbox = Inbox(sio, "room.op")
        joined = await call(sio, "room.join", {"study_uid": study_uid})
        assert joined.get("ok"), joined
        writer = YClient()
        for message in (
            await call(sio, "report.sync", {"study_uid": study_uid, "message": writer.step1()})
        )["messages"]:
            writer.receive(message)
        writer.text += "IMPRESSION: No acute abnormality."
        for message in writer.take():
            ack = await call(sio, "report.sync", {"study_uid": study_uid, "message": message})
            assert ack["ok"], ack
        version = await harness.call("POST", f"/api/studies/{sid}/report/sign", "rad1", {}, 201)
        assert version["text"] == "IMPRESSION: No acute abnormality."
        frozen = await inbox.until("room.op", lambda op: op["type"] == "report.frozen")
        assert frozen["data"]["version"] == version["version"]
        writer.text += " Changed after signing."
        (late_edit,) = writer.take()
        refused = await call(sio, "report.sync", {"study_uid": study_uid, "message": late_edit})
        assert refused["error"]["code"] == "report_frozen"
