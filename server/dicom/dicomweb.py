"""DICOMweb (PS3.18) under ``/dicom-web``: QIDO-RS, WADO-RS and STOW-RS, bearer-token protected.

Searches answer from the index, metadata from the precomputed DICOM JSON, and retrieves stream
the stored objects as they were received. STOW-RS goes through the same ingest path as C-STORE.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.helpers import parse_mimetype
from pydicom import dcmread
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.encaps import generate_frames

from server.appkeys import SETTINGS, STORE
from server.auth.guard import AUTH_SERVICE, client_address, require
from server.auth.roles import Permission
from server.auth.service import Principal
from server.dicom.archive import ARCHIVE
from server.dicom.ingest import Upload
from server.dicom.keys import INGEST, QIDO_CACHE
from server.dicom.matching import Level, QueryError
from server.dicom.parse import Failure
from server.dicom.query import MAX_RESULTS, Search, search_text
from server.dicom.transcode import choose, parse_accept, refusal, to_explicit_little_endian
from server.http.body import query_int
from server.http.errors import ApiError

routes = web.RouteTableDef()

PREFIX = "/dicom-web"
DICOM_JSON = "application/dicom+json"
_UID = r"[0-9.]{1,64}"
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}
_CHUNK = 1 << 16
PIXEL_MARKER = '"7FE00010":{"vr":"OW","BulkDataURI":""}'


def _dicom_json(body: Any, status: int = 200) -> web.Response:
    """DICOM JSON with a bare media type: clients compare it without parameters."""
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        headers={"Content-Type": DICOM_JSON},
    )


def _dicom_json_text(objects: list[str]) -> web.Response:
    """A DICOM JSON array from already encoded objects."""
    return web.Response(
        body=("[" + ",".join(objects) + "]").encode(), headers={"Content-Type": DICOM_JSON}
    )


def _scope(principal: Principal) -> str | None:
    return None if principal.can(Permission.CROSS_FACILITY) else principal.facility


def _keyword(name: str) -> str:
    if _TAG.match(name):
        keyword = keyword_for_tag(int(name, 16))
        if keyword:
            return str(keyword)
    elif tag_for_keyword(name) is not None:
        return name
    raise ApiError("bad_request", f"{name[:64]!r} is not a DICOM attribute keyword or tag")


def _search_keys(request: web.Request) -> dict[str, str]:
    keys: dict[str, str] = {}
    for name, value in request.query.items():
        if name in _CONTROL:
            continue
        keys[_keyword(name)] = value
    if request.query.get("fuzzymatching", "false").lower() not in ("false", "true"):
        raise ApiError("bad_request", "fuzzymatching must be true or false")
    for field in request.query.getall("includefield", []):
        for item in field.split(","):
            if item and item != "all":
                _keyword(item)
    return keys


async def _audit(request: web.Request, principal: Principal, action: str, target: str) -> None:
    await request.app[AUTH_SERVICE].audit.record(
        actor=principal.username,
        action=action,
        outcome="success",
        target=target,
        remote=client_address(request),
        facility=principal.facility,
    )


async def _qido(request: web.Request, level: Level, **fixed: str) -> web.Response:
    principal = await require(request, Permission.STUDIES_READ)
    keys = {**_search_keys(request), **fixed}
    search = Search(
        level,
        keys,
        _scope(principal),
        limit=query_int(request, "limit", 1000, 1, MAX_RESULTS),
        offset=query_int(request, "offset", 0, 0, 10_000_000),
    )
    base = f"{request.url.origin()}{PREFIX}"
    key = (level, tuple(sorted(keys.items())), search.facility, search.limit, search.offset, base)
    await request.app[INGEST].settled()
    try:
        bodies = await request.app[QIDO_CACHE].get(
            key, lambda: search_text(request.app[STORE], search, base)
        )
    except QueryError as exc:
        raise ApiError("bad_request", str(exc)) from None
    await _audit(request, principal, f"dicomweb.search.{level.lower()}", request.path_qs[:200])
    return _dicom_json_text(bodies)


@routes.get(f"{PREFIX}/studies")
async def search_studies(request: web.Request) -> web.Response:
    return await _qido(request, "STUDY")


@routes.get(f"{PREFIX}/series")
async def search_all_series(request: web.Request) -> web.Response:
    return await _qido(request, "SERIES")


@routes.get(f"{PREFIX}/instances")
async def search_all_instances(request: web.Request) -> web.Response:
    return await _qido(request, "IMAGE")


@routes.get(f"{PREFIX}/studies/{{study:{_UID}}}/series")
async def search_series(request: web.Request) -> web.Response:
    return await _qido(request, "SERIES", StudyInstanceUID=request.match_info["study"])


@routes.get(f"{PREFIX}/studies/{{study:{_UID}}}/instances")
async def search_study_instances(request: web.Request) -> web.Response:
    return await _qido(request, "IMAGE", StudyInstanceUID=request.match_info["study"])


@routes.get(f"{PREFIX}/studies/{{study:{_UID}}}/series/{{series:{_UID}}}/instances")
async def search_instances(request: web.Request) -> web.Response:
    return await _qido(
        request,
        "IMAGE",
        StudyInstanceUID=request.match_info["study"],
        SeriesInstanceUID=request.match_info["series"],
    )


# WADO-RS --------------------------------------------------------------------------------------


async def _instances(request: web.Request, principal: Principal) -> list[dict[str, Any]]:
    archive = request.app[ARCHIVE]
    study = request.match_info["study"]
    series = request.match_info.get("series")
    sop = request.match_info.get("instance")
    if sop is not None:
        try:
            doc = await archive.instance(sop, _scope(principal))
        except KeyError:
            raise ApiError("not_found", "No such instance.") from None
        if doc["study_uid"] != study or (series is not None and doc["series_uid"] != series):
            raise ApiError("not_found", "No such instance in this series.")
        return [doc]
    docs = await archive.instances_of(
        study_instance_uid=study, series_instance_uid=series, facility=_scope(principal)
    )
    if not docs:
        raise ApiError("not_found", "No such study or series.")
    return docs


@routes.get(f"{PREFIX}/studies/{{study:{_UID}}}")
@routes.get(f"{PREFIX}/studies/{{study:{_UID}}}/series/{{series:{_UID}}}")
@routes.get(
    f"{PREFIX}/studies/{{study:{_UID}}}/series/{{series:{_UID}}}/instances/{{instance:{_UID}}}"
)
async def retrieve(request: web.Request) -> web.StreamResponse:
    principal = await require(request, Permission.STUDIES_READ)
    accepted = parse_accept(request.headers.get("Accept", ""))
    if accepted is None:
        raise ApiError("not_acceptable", 'Ask for multipart/related; type="application/dicom".')
    docs = await _instances(request, principal)
    plan = []
    for doc in docs:
        syntax = choose(str(doc["transfer_syntax"]), accepted)
        if syntax is None:
            raise ApiError("not_acceptable", refusal(str(doc["transfer_syntax"])))
        plan.append((doc, syntax))
    await _audit(request, principal, "dicomweb.retrieve", request.path[:200])
    boundary = uuid.uuid4().hex
    response = web.StreamResponse(
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        }
    )
    await response.prepare(request)
    archive = request.app[ARCHIVE]
    for doc, syntax in plan:
        raw = await archive.instance_bytes(doc["_id"])
        if syntax != doc["transfer_syntax"]:
            raw = await asyncio.to_thread(to_explicit_little_endian, raw)
        await response.write(
            f"--{boundary}\r\nContent-Type: application/dicom; transfer-syntax="
            f"{syntax}\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
        )
        await response.write(raw)
        await response.write(b"\r\n")
    await response.write(f"--{boundary}--\r\n".encode())
    await response.write_eof()
    return response


@routes.get(f"{PREFIX}/studies/{{study:{_UID}}}/metadata")
@routes.get(f"{PREFIX}/studies/{{study:{_UID}}}/series/{{series:{_UID}}}/metadata")
@routes.get(
    f"{PREFIX}/studies/{{study:{_UID}}}/series/{{series:{_UID}}}/instances/{{instance:{_UID}}}/metadata"
)
async def metadata(request: web.Request) -> web.Response:
    principal = await require(request, Permission.STUDIES_READ)
    study = request.match_info["study"]
    series = request.match_info.get("series")
    sop = request.match_info.get("instance")
    docs = await request.app[ARCHIVE].metadata(
        study_instance_uid=study,
        series_instance_uid=series,
        sop_instance_uid=sop,
        facility=_scope(principal),
    )
    if not docs:
        raise ApiError("not_found", "No such study, series or instance.")
    await _audit(request, principal, "dicomweb.metadata", request.path[:200])
    base = f"{request.url.origin()}{PREFIX}"
    bodies = []
    for doc in docs:
        text = str(doc["json"])
        if PIXEL_MARKER in text:
            frames = ",".join(str(i) for i in range(1, int(doc.get("frames") or 1) + 1))
            url = (
                f"{base}/studies/{doc['study_uid']}/series/{doc['series_uid']}"
                f"/instances/{doc['_id']}/frames/{frames}"
            )
            text = text.replace(PIXEL_MARKER, PIXEL_MARKER[:-3] + json.dumps(url) + "}")
        bodies.append(text)
    return _dicom_json_text(bodies)


def _frames(raw: bytes, wanted: list[int]) -> tuple[list[bytes], str]:
    ds = dcmread(io.BytesIO(raw))
    syntax = str(ds.file_meta.TransferSyntaxUID)
    if "PixelData" not in ds:
        raise ApiError("not_found", "This instance has no pixel data.")
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if any(not 1 <= n <= count for n in wanted):
        raise ApiError("not_found", f"This instance has {count} frame(s).")
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        frames = list(generate_frames(ds.PixelData, number_of_frames=count))
    else:
        size = len(ds.PixelData) // count
        frames = [ds.PixelData[i * size : (i + 1) * size] for i in range(count)]
    return [frames[n - 1] for n in wanted], syntax


@routes.get(
    f"{PREFIX}/studies/{{study:{_UID}}}/series/{{series:{_UID}}}/instances/{{instance:{_UID}}}"
    "/frames/{frames:[0-9,]{1,4000}}"
)
async def frames(request: web.Request) -> web.Response:
    principal = await require(request, Permission.STUDIES_READ)
    try:
        wanted = [int(n) for n in request.match_info["frames"].split(",") if n]
    except ValueError:
        raise ApiError("bad_request", "frames must be a comma-separated list") from None
    if not wanted:
        raise ApiError("bad_request", "name at least one frame")
    docs = await _instances(request, principal)
    raw = await request.app[ARCHIVE].instance_bytes(docs[0]["_id"])
    parts, syntax = await asyncio.to_thread(_frames, raw, wanted)
    await _audit(request, principal, "dicomweb.frames", request.path[:200])
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for part in parts:
        body.write(
            f"--{boundary}\r\nContent-Type: application/octet-stream; transfer-syntax="
            f"{syntax}\r\n\r\n".encode()
        )
        body.write(part)
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return web.Response(
        body=body.getvalue(),
        headers={
            "Content-Type": (
                f'multipart/related; type="application/octet-stream"; '
                f"transfer-syntax={syntax}; boundary={boundary}"
            )
        },
    )


# STOW-RS --------------------------------------------------------------------------------------


def _sequence_item(values: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for tag, (vr, value) in values.items():
        item[tag] = {"vr": vr, "Value": [value]} if value is not None else {"vr": vr}
    return item


async def _read_part(part: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await part.read_chunk(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise ApiError("payload_too_large", "A STOW-RS request exceeds the upload limit.")
        chunks.append(chunk)


@routes.post(f"{PREFIX}/studies")
@routes.post(f"{PREFIX}/studies/{{study:{_UID}}}")
async def stow(request: web.Request) -> web.Response:
    principal = await require(request, Permission.DICOM_UPLOAD)
    if request.content_type != "multipart/related":
        raise ApiError(
            "unsupported_media_type", 'Send multipart/related; type="application/dicom".'
        )
    kind = parse_mimetype(request.headers.get("Content-Type", "")).parameters.get(
        "type", "application/dicom"
    )
    if kind != "application/dicom":
        raise ApiError("unsupported_media_type", "Only application/dicom parts are accepted.")
    study = request.match_info.get("study")
    ingest = request.app[INGEST]
    limit = request.app[SETTINGS].max_upload_bytes
    reader = await request.multipart()
    upload = await ingest.open(
        Upload(principal.facility, "stow", calling_ae=principal.username, remote=request.remote)
    )
    base = f"{request.url.origin()}{PREFIX}"
    stored: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    received = 0
    try:
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise ApiError("bad_request", "Nested multipart bodies are not accepted.")
            part_type = part.headers.get("Content-Type", "application/dicom").split(";")[0]
            if part_type.strip() != "application/dicom":
                raise ApiError("unsupported_media_type", f"Part of type {part_type[:60]!r}.")
            raw = await _read_part(part, limit - received)
            received += len(raw)
            result = await ingest.ingest(upload, raw, expected_study=study)
            if result.outcome == "rejected":
                failure = result.failure or Failure.CANNOT_UNDERSTAND
                failed.append(
                    _sequence_item(
                        {
                            "00081150": ("UI", result.sop_class_uid),
                            "00081155": ("UI", result.sop_instance_uid),
                            "00081197": ("US", failure.value),
                        }
                    )
                )
            else:
                url = (
                    f"{base}/studies/{result.study_instance_uid}/series/"
                    f"{result.series_instance_uid}/instances/{result.sop_instance_uid}"
                )
                stored.append(
                    _sequence_item(
                        {
                            "00081150": ("UI", result.sop_class_uid),
                            "00081155": ("UI", result.sop_instance_uid),
                            "00081190": ("UR", url),
                        }
                    )
                )
    finally:
        await ingest.close(upload)
    body: dict[str, Any] = {}
    if study:
        body["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{study}"]}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    status = 200 if not failed else 202 if stored else 409
    if not stored and not failed:
        raise ApiError("bad_request", "The request holds no DICOM parts.")
    return _dicom_json(body, status)
