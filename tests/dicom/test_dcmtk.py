"""dcmtk's command-line SCUs against the running gateway (see scripts/install-system-deps)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from pydicom import dcmread

from server.dicom.keys import PEERS
from server.store.embedded import free_port
from tests.dicom.conftest import Archive
from tests.dicom.synthetic import ct_series
from tests.support.programs import require_program

ENV = {**os.environ, "TCP_NODELAY": "1"}


async def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, list(args), capture_output=True, text=True, timeout=60, env=ENV, check=False
    )


def _write(directory: Path, count: int = 3) -> list[Path]:
    series = ct_series(count)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in series.datasets:
        path = directory / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


async def test_echoscu(archive: Archive) -> None:
    echoscu = require_program("echoscu")
    result = await _run(echoscu, "-aec", "NOCTIS", "127.0.0.1", str(archive.port))
    assert result.returncode == 0, result.stderr


async def test_storescu_then_findscu(archive: Archive, tmp_path: Path) -> None:
    storescu = require_program("storescu")
    findscu = require_program("findscu")
    paths = _write(tmp_path / "in")
    result = await _run(
        storescu, "-aec", "NOCTIS", "127.0.0.1", str(archive.port), *map(str, paths)
    )
    assert result.returncode == 0, result.stderr
    closed = await archive.wait_for("dicom.association.closed")
    assert closed[0].data["stored"] == 3
    result = await _run(
        findscu,
        "-S",
        "-aec",
        "NOCTIS",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientName=doe*",
        "-k",
        "StudyInstanceUID",
        "-k",
        "NumberOfStudyRelatedInstances",
        "127.0.0.1",
        str(archive.port),
    )
    assert result.returncode == 0, result.stderr
    assert "Doe^Jane" in result.stderr + result.stdout
    assert "(0020,1208) IS [3 ]" in result.stderr + result.stdout


async def test_getscu_and_movescu(archive: Archive, tmp_path: Path) -> None:
    storescu = require_program("storescu")
    getscu = require_program("getscu")
    movescu = require_program("movescu")
    paths = _write(tmp_path / "in", 2)
    study = str(dcmread(paths[0]).StudyInstanceUID)
    result = await _run(
        storescu, "-aec", "NOCTIS", "127.0.0.1", str(archive.port), *map(str, paths)
    )
    assert result.returncode == 0, result.stderr

    got = tmp_path / "got"
    got.mkdir()
    result = await _run(
        getscu,
        "-S",
        "-aec",
        "NOCTIS",
        "-od",
        str(got),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study}",
        "127.0.0.1",
        str(archive.port),
    )
    assert result.returncode == 0, result.stderr
    assert len(list(got.iterdir())) == 2

    port = free_port()
    await archive.app[PEERS].add("MOVESCU", "main", "127.0.0.1", port, "dcmtk", "test")
    moved = tmp_path / "moved"
    moved.mkdir()
    result = await _run(
        movescu,
        "-S",
        "-aec",
        "NOCTIS",
        "-aet",
        "MOVESCU",
        "-aem",
        "MOVESCU",
        "+P",
        str(port),
        "-od",
        str(moved),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study}",
        "127.0.0.1",
        str(archive.port),
    )
    assert result.returncode == 0, result.stderr
    received = sorted(str(dcmread(p).SOPInstanceUID) for p in moved.iterdir())
    assert received == sorted(str(dcmread(p).SOPInstanceUID) for p in paths)


async def test_findscu_worklist_returns_only_requested_keys(
    archive: Archive, tmp_path: Path
) -> None:
    findscu = require_program("findscu")
    token = await archive.admin_token()
    body = {
        "patient": {"name": "Roe^Rick", "id": "P777", "birth_date": "19600101", "sex": "M"},
        "accession_number": "ACC777",
        "requested_procedure_description": "MR KNEE",
        "step": {"modality": "MR", "start_date": "20240301", "description": "KNEE"},
    }
    response = await archive.client.post(
        "/api/dicom/scheduled-procedures",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status == 201, await response.text()
    out = tmp_path / "rsp"
    out.mkdir()
    result = await _run(
        findscu,
        "-W",
        "-X",
        "-od",
        str(out),
        "-aec",
        "NOCTIS",
        "-k",
        "PatientName=roe*",
        "-k",
        "PatientID",
        "-k",
        "ScheduledProcedureStepSequence[0].Modality=MR",
        "-k",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
        "127.0.0.1",
        str(archive.port),
    )
    assert result.returncode == 0, result.stderr
    answers = [dcmread(path) for path in sorted(out.iterdir())]
    assert len(answers) == 1
    answer = answers[0]
    assert [e.keyword for e in answer] == [
        "SpecificCharacterSet",
        "PatientName",
        "PatientID",
        "ScheduledProcedureStepSequence",
    ]
    assert str(answer.PatientID) == "P777"
    item = answer.ScheduledProcedureStepSequence[0]
    assert [e.keyword for e in item] == ["Modality", "ScheduledProcedureStepStartDate"]
    assert str(item.ScheduledProcedureStepStartDate) == "20240301"
