"""Claims: one at a time per study, concurrent claimers race and exactly one wins, abandoned claims
expire on the clock, and only the claimant or an audited admin releases."""

from __future__ import annotations

import asyncio
from typing import Any

from server.appkeys import STORE
from server.auth.roles import Role
from server.workflow.studies import CLAIM_TTL_S
from tests.workflow.conftest import WorkflowHarness


async def unread_study(h: WorkflowHarness, **overrides: Any) -> str:
    study = await h.order(**overrides)
    await h.call("POST", f"/api/studies/{study['id']}/status", "tech", {"status": "unread"})
    return str(study["id"])


async def test_concurrent_claims_exactly_one_wins(harness: WorkflowHarness) -> None:
    for name in ("rad3", "rad4"):
        await harness.user(name, Role.RADIOLOGIST)
    readers = ["rad1", "rad2", "rad3", "rad4"]
    for round_ in range(5):
        sid = await unread_study(harness, accession_number=f"RACE{round_}")
        responses = await asyncio.gather(
            *(
                harness.noctis.client.post(f"/api/studies/{sid}/claim", headers=harness.auth(r))
                for r in readers
            )
        )
        statuses = sorted(r.status for r in responses)
        assert statuses == [200, 409, 409, 409], statuses
        winners = [r for r, resp in zip(readers, responses, strict=True) if resp.status == 200]
        for resp in responses:
            body = await resp.json()
            if resp.status == 409:
                assert body["error"]["code"] == "already_claimed"
                assert body["error"]["details"]["claimed_by"] == winners[0]
        row = await harness.call("GET", f"/api/studies/{sid}", "admin")
        assert row["claimed_by"] == winners[0]
        assert row["status"] == "reading"
        claims = await harness.noctis.app[STORE]["audit"].count_documents(
            {"action": "claim.take", "target": sid}
        )
        assert claims == 1


async def test_claim_renew_release_and_override(harness: WorkflowHarness) -> None:
    sid = await unread_study(harness)
    first = await harness.call("POST", f"/api/studies/{sid}/claim", "rad1")
    harness.clock.advance(60)
    renewed = await harness.call("POST", f"/api/studies/{sid}/claim", "rad1")
    assert renewed["claim_expires_at"] > first["claim_expires_at"]
    other = await harness.call("POST", f"/api/studies/{sid}/release", "rad2", status=403)
    assert other["error"]["code"] == "already_claimed"
    released = await harness.call("POST", f"/api/studies/{sid}/release", "rad1")
    assert released["claimed_by"] is None
    assert released["status"] == "unread"
    nothing = await harness.call("POST", f"/api/studies/{sid}/release", "rad1", status=409)
    assert nothing["error"]["code"] == "claim_required"
    await harness.call("POST", f"/api/studies/{sid}/claim", "rad2")
    overridden = await harness.call("POST", f"/api/studies/{sid}/release", "admin")
    assert overridden["claimed_by"] is None
    audit = await harness.noctis.app[STORE]["audit"].find_one({"action": "claim.release.override"})
    assert audit is not None
    assert audit["actor"] == "admin"
    assert audit["details"]["claimed_by"] == "rad2"
    denied = await harness.call("POST", f"/api/studies/{sid}/claim", "tech", status=403)
    assert denied["error"]["code"] == "forbidden"


async def test_scheduled_study_cannot_be_claimed(harness: WorkflowHarness) -> None:
    study = await harness.order()
    refused = await harness.call("POST", f"/api/studies/{study['id']}/claim", "rad1", status=409)
    assert refused["error"]["code"] == "invalid_transition"


async def test_abandoned_claim_expires_on_tick(harness: WorkflowHarness) -> None:
    sid = await unread_study(harness)
    await harness.call("POST", f"/api/studies/{sid}/claim", "rad1")
    assert (await harness.workflow.tick())["claims_expired"] == 0
    harness.clock.advance(CLAIM_TTL_S + 1)
    await harness.relogin()
    # Before the tick runs, an expired claim already no longer blocks another reader...
    taken = await harness.call("POST", f"/api/studies/{sid}/claim", "rad2")
    assert taken["claimed_by"] == "rad2"
    harness.clock.advance(CLAIM_TTL_S + 1)
    await harness.relogin()
    # ...and the tick gives the study back to the queue.
    assert (await harness.workflow.tick())["claims_expired"] == 1
    row = await harness.call("GET", f"/api/studies/{sid}", "rad1")
    assert row["status"] == "unread"
    assert row["claimed_by"] is None
    last = harness.of("study.status_changed")[-1].data
    assert (last["from"], last["to"], last["by"]) == ("reading", "unread", "system")


async def test_status_endpoint_leaves_owned_moves_to_their_steps(
    harness: WorkflowHarness,
) -> None:
    sid = await unread_study(harness)
    for target, hint in (("reading", "claim"), ("final", "sign"), ("amended", "addendum")):
        refused = await harness.call(
            "POST", f"/api/studies/{sid}/status", "rad1", {"status": target}, 409
        )
        assert refused["error"]["code"] == "invalid_transition"
        assert hint in refused["error"]["message"]
    await harness.call("POST", f"/api/studies/{sid}/claim", "rad1")
    back = await harness.call(
        "POST", f"/api/studies/{sid}/status", "rad1", {"status": "unread"}, 409
    )
    assert "release" in back["error"]["message"]
    other = await harness.call("POST", f"/api/studies/{sid}/report/preliminary", "rad2", status=403)
    assert other["error"]["code"] == "already_claimed"
    prelim = await harness.call("POST", f"/api/studies/{sid}/report/preliminary", "rad1")
    assert prelim["status"] == "preliminary"
    assert prelim["claimed_by"] == "rad1"
    signed = await harness.call(
        "POST", f"/api/studies/{sid}/report/sign", "rad1", {"text": "Final."}, 201
    )
    assert signed["version"] == 1
