"""`noctis import`, the admin API, /api/uploads and the live uploads room."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from server.appkeys import SETTINGS, STORE
from server.auth.roles import Role
from server.config import Settings
from server.dicom.archive import Archive as ArchiveReader
from server.dicom.index import INSTANCES, STUDIES
from server.dicom.relay import RELAYED
from server.store.blobs import LocalBlobStore
from server.store.database import Store
from shared.protocol import catalog
from tests.dicom.conftest import Archive
from tests.dicom.samples import sample
from tests.dicom.scu import in_thread, store
from tests.dicom.synthetic import ct_series
from tests.support.sockets import socket_client

ROOT = Path(__file__).resolve().parents[2]


async def run_import(folder: Path, settings: Settings) -> subprocess.CompletedProcess[str]:
    """Run the real `noctis import FOLDER` in a child process against the test's store."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOCTIS_")},
        "NOCTIS_MONGO_URL": settings.mongo_url or "",
        "NOCTIS_MONGO_DB": settings.mongo_db,
        "NOCTIS_DATA_DIR": str(settings.data_dir),
    }
    command = [
        sys.executable,
        "-c",
        "import sys; from server.cli import main; sys.exit(main())",
        "import",
        str(folder),
    ]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_noctis_import_counts_stored_duplicate_rejected(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "incoming"
    (folder / "nested").mkdir(parents=True)
    series = ct_series(3)
    for index, raw in enumerate(series.files()):
        (folder / "nested" / f"{index}.dcm").write_bytes(raw)
    (folder / "copy.dcm").write_bytes(series.files()[0])
    (folder / "notes.txt").write_text("not an image")
    (folder / "mr.dcm").write_bytes(sample("MR_small_jp2klossless.dcm"))
    result = await run_import(folder, settings)
    assert result.returncode == 1, result.stderr
    assert "6 files: 4 stored, 1 duplicate, 1 rejected" in result.stdout
    assert "not a DICOM Part 10 file" in result.stdout
    assert "6/6" in result.stderr
    db = Store(settings.mongo_url or "", settings.mongo_db)
    try:
        assert await db[INSTANCES].count_documents({}) == 4
        reader = ArchiveReader(db, LocalBlobStore(settings.data_dir / "blobs"))
        assert (
            await reader.instance_bytes(str(series.datasets[0].SOPInstanceUID))
            == (series.files()[0])
        )
    finally:
        await db.close()


async def test_peer_admin_api(archive: Archive) -> None:
    admin = {"Authorization": f"Bearer {await archive.admin_token()}"}
    tech = {"Authorization": f"Bearer {await archive.token_for('tech', Role.TECHNICIAN)}"}
    response = await archive.client.get("/api/dicom/peers", headers=admin)
    assert (await response.json()) == {"peers": [], "open_mode": True}
    response = await archive.client.post(
        "/api/dicom/peers",
        json={"ae_title": "CT1", "host": "10.0.0.5", "port": 104, "description": "scanner"},
        headers=admin,
    )
    assert response.status == 201
    peer = await response.json()
    assert peer["facility"] == "main"
    response = await archive.client.get("/api/dicom/peers", headers=admin)
    assert (await response.json())["open_mode"] is False
    response = await archive.client.post(
        "/api/dicom/peers", json={"ae_title": "X\\Y"}, headers=admin
    )
    assert response.status == 422
    response = await archive.client.post("/api/dicom/peers", json={"ae_title": "CT2"}, headers=tech)
    assert response.status == 403
    response = await archive.client.delete(f"/api/dicom/peers/{peer['id']}", headers=admin)
    assert response.status == 200
    response = await archive.client.delete(f"/api/dicom/peers/{peer['id']}", headers=admin)
    assert response.status == 404


async def test_scheduled_procedure_admin_api(archive: Archive) -> None:
    admin = {"Authorization": f"Bearer {await archive.admin_token()}"}
    body = {
        "id": "SPS1",
        "patient": {"name": "Doe^Jane", "id": "P1"},
        "accession_number": "A1",
        "step": {"modality": "CT", "start_date": "20240115"},
    }
    response = await archive.client.post(
        "/api/dicom/scheduled-procedures", json=body, headers=admin
    )
    assert response.status == 201
    response = await archive.client.post(
        "/api/dicom/scheduled-procedures", json=body, headers=admin
    )
    assert response.status == 409
    bad = {**body, "id": "SPS2", "step": {"modality": "CT", "start_date": "15/01/2024"}}
    response = await archive.client.post("/api/dicom/scheduled-procedures", json=bad, headers=admin)
    assert response.status == 422
    response = await archive.client.delete("/api/dicom/scheduled-procedures/SPS1", headers=admin)
    assert (await response.json())["status"] == "cancelled"
    response = await archive.client.delete("/api/dicom/scheduled-procedures/SPS1", headers=admin)
    assert response.status == 409
    response = await archive.client.get("/api/dicom/scheduled-procedures", headers=admin)
    assert [s["id"] for s in (await response.json())["scheduled_procedures"]] == ["SPS1"]


async def test_uploads_room_and_recent_uploads(archive_factory: Any) -> None:
    archive: Archive = await archive_factory(stable_after_s=0.2)
    tech = await archive.token_for("tech", Role.TECHNICIAN)
    other = await archive.token_for("tech2", Role.TECHNICIAN, facility="east")
    radiologist = await archive.token_for("rad", Role.RADIOLOGIST)
    seen: list[dict[str, Any]] = []
    stable = asyncio.Event()

    def on_event(event: dict[str, Any]) -> None:
        seen.append(event)
        if event["topic"] == "dicom.study.stable":
            stable.set()

    elsewhere: list[dict[str, Any]] = []
    async with (
        socket_client(archive.client, tech) as watcher,
        socket_client(archive.client, other) as outsider,
        socket_client(archive.client, radiologist) as reader,
    ):
        watcher.on("uploads.event", on_event)
        outsider.on("uploads.event", elsewhere.append)
        assert await watcher.call("uploads.join", {}) == {"ok": True, "facility": "main"}
        assert await outsider.call("uploads.join", {}) == {"ok": True, "facility": "east"}
        denied = await outsider.call("uploads.join", {"facility": "main"})
        assert denied["error"]["code"] == "forbidden"
        denied = await reader.call("uploads.join", {})
        assert denied["error"]["code"] == "forbidden"
        series = ct_series(2)
        assert await in_thread(store, archive.port, series.datasets) == [0, 0]
        await asyncio.wait_for(stable.wait(), 10)
    topics = [e["topic"] for e in seen]
    assert topics[:4] == [
        "dicom.association.opened",
        "dicom.instance.stored",
        "dicom.instance.stored",
        "dicom.association.closed",
    ]
    assert seen[2]["data"]["stored"] == 2
    for event in seen:
        catalog().validate_outbound("uploads.event", event)
    assert elsewhere == []
    response = await archive.client.get("/api/uploads", headers={"Authorization": f"Bearer {tech}"})
    uploads = (await response.json())["uploads"]
    assert len(uploads) == 1
    assert uploads[0]["stored"] == 2
    assert uploads[0]["state"] == "closed"
    response = await archive.client.get(
        "/api/uploads", headers={"Authorization": f"Bearer {other}"}
    )
    assert (await response.json())["uploads"] == []
    study = await archive.app[STORE][STUDIES].find_one({"_id": series.study_uid})
    assert study is not None
    assert study["instances"] == 2


async def test_import_while_serving_reaches_the_uploads_room(
    archive: Archive, tmp_path: Path
) -> None:
    settings = archive.app[SETTINGS]
    tech = await archive.token_for("tech", Role.TECHNICIAN)
    folder = tmp_path / "incoming"
    folder.mkdir()
    series = ct_series(3)
    for index, raw in enumerate(series.files()):
        (folder / f"{index}.dcm").write_bytes(raw)
    (folder / "notes.txt").write_text("not an image")
    seen: list[dict[str, Any]] = []
    closed = asyncio.Event()

    def on_event(event: dict[str, Any]) -> None:
        seen.append(event)
        if event["topic"] == "dicom.association.closed":
            closed.set()

    async with socket_client(archive.client, tech) as watcher:
        watcher.on("uploads.event", on_event)
        assert await watcher.call("uploads.join", {}) == {"ok": True, "facility": "main"}
        result = await run_import(folder, settings)
        assert result.returncode == 1, result.stderr
        await asyncio.wait_for(closed.wait(), 10)
    topics = [e["topic"] for e in seen]
    assert topics[0] == "dicom.association.opened"
    assert seen[0]["data"]["kind"] == "import"
    assert topics.count("dicom.instance.stored") == 3
    assert topics.count("dicom.instance.failed") == 1
    assert topics[-1] == "dicom.association.closed"
    assert seen[-1]["data"]["stored"] == 3
    for event in seen:
        catalog().validate_outbound("uploads.event", event)
    # Published once on the server's hub, and the relay collection is emptied.
    assert [e.topic for e in archive.events if e.data.get("kind") == "import"] == [
        "dicom.association.opened"
    ]
    assert await archive.app[STORE][RELAYED].count_documents({}) == 0
