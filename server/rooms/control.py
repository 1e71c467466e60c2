"""Taking control: a participant asks the presenter, who grants or declines.

Open requests live on the study room's document next to the presenter, one per requester, each
naming the presenter it was made to. Every presenter change clears them, so an answer to a
request made to an earlier presenter finds nothing and is refused as stale, on any node. Closing
a request is one conditional update (the caller still presents, the request is still open), so
two answers to one request, or an answer racing a handover, cannot both win.
"""

from __future__ import annotations

import uuid

from pymongo.asynchronous.collection import AsyncCollection

from server.http.errors import ApiError
from server.rooms.oplog import Clock
from server.store.database import Document

FIELD = "control_requests"


class ControlRequests:
    def __init__(self, rooms: AsyncCollection[Document], clock: Clock) -> None:
        self._rooms = rooms  # the study rooms' collection: presenter and open requests
        self._clock = clock

    async def ask(
        self, study_uid: str, requester: dict[str, str], presenter: dict[str, str]
    ) -> Document:
        """The requester's open request to this presenter, made now unless one is open already."""
        room = await self._rooms.find_one({"_id": study_uid}, {FIELD: 1})
        existing = ((room or {}).get(FIELD) or {}).get(requester["user_id"])
        if existing and existing["to"]["user_id"] == presenter["user_id"]:
            return dict(existing)
        request: Document = {
            "id": uuid.uuid4().hex,
            "study_uid": study_uid,
            "from": requester,
            "to": presenter,
            "at": self._clock(),
        }
        result = await self._rooms.update_one(
            {"_id": study_uid, "presenter.user_id": presenter["user_id"]},
            {"$set": {f"{FIELD}.{requester['user_id']}": request}},
        )
        if result.matched_count == 0:
            raise ApiError("conflict", "The presenter has just changed; ask again.")
        return request

    async def find(self, study_uid: str, request_id: str) -> Document | None:
        room = await self._rooms.find_one({"_id": study_uid}, {FIELD: 1})
        for request in ((room or {}).get(FIELD) or {}).values():
            if request.get("id") == request_id:
                return dict(request)
        return None

    async def close(
        self, study_uid: str, request: Document, presenter_id: str, grant: bool
    ) -> bool:
        """Declines, or grants (the requester presents, every open request is dropped).

        False when the request was no longer open to this presenter."""
        requester_id = request["from"]["user_id"]
        match = {
            "_id": study_uid,
            "presenter.user_id": presenter_id,
            f"{FIELD}.{requester_id}.id": request["id"],
        }
        if grant:
            update: Document = {"$set": {"presenter": request["from"], FIELD: {}}}
        else:
            update = {"$unset": {f"{FIELD}.{requester_id}": ""}}
        result = await self._rooms.update_one(match, update)
        return bool(result.matched_count)
