"""The rooms core: membership, snapshots, the sequenced op log and every room feature.

Plain async Python over a ``Channel``: the Socket.IO handlers are a thin layer that validates,
then calls one method here. Each state change is persisted (op log first) and only then
broadcast, carrying the room's next sequence number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pycrdt import YSyncMessageType
from pymongo.errors import DuplicateKeyError

from server.auth.audit import AuditLog
from server.auth.roles import Permission
from server.auth.service import Principal
from server.auth.users import Users
from server.http.errors import ApiError
from server.hub import DomainEvent
from server.rooms import alerts as alert_rules
from server.rooms.access import StudyAccess
from server.rooms.alerts import Alerts
from server.rooms.annotations import Annotations, actor
from server.rooms.channel import Channel
from server.rooms.chat import TAIL, Chat, direct_conversation, study_conversation
from server.rooms.control import FIELD as CONTROL_REQUESTS
from server.rooms.control import ControlRequests
from server.rooms.direct import DirectInbox
from server.rooms.frames import FrameRelay, FrameRequest
from server.rooms.oplog import Clock, RoomLog, study_room, worklist_room
from server.rooms.presence import Member, Presence, colour_for
from server.rooms.presenters import Presenters
from server.rooms.report import EMPTY_UPDATE, ReportDrafts, decode_message, encode
from server.rooms.slices import Slice, StoreSlices
from server.rooms.sync import SyncLinks
from server.store.database import Document, IndexSpec, Store

log = logging.getLogger(__name__)

ROOMS = "study_rooms"
CHAT_MENTIONED = "chat.mentioned"
INDEXES: list[IndexSpec] = []

Publish = Callable[[DomainEvent], Awaitable[None]]


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


@dataclass
class Rooms:
    store: Store
    channel: Channel
    access: StudyAccess
    presence: Presence
    annotations: Annotations
    chat: Chat
    reports: ReportDrafts
    alerts: Alerts
    frames: FrameRelay
    audit: AuditLog
    users: Users
    publish: Publish
    clock: Clock = time.time

    def __post_init__(self) -> None:
        self.log = RoomLog(self.store, self.clock)
        self.channel.on_remote("room.op", self.log.seen)
        self._rooms = self.store[ROOMS]
        self.control = ControlRequests(self._rooms, self.clock)
        self.presenters = Presenters(self._rooms)
        self.sync = SyncLinks(self.store, StoreSlices(self.store), self.clock)
        self.inbox = DirectInbox(self.store, self.clock)

    # -- membership -----------------------------------------------------------------------

    async def join(
        self, principal: Principal, sid: str, study_uid: str, since: int | None
    ) -> dict[str, Any]:
        try:
            await self.access.check_join(principal, study_uid)
        except ApiError as exc:
            await self._audit(principal, "room.join", "denied", study_uid, {"reason": exc.code})
            raise
        await self._audit(principal, "room.join", "success", study_uid)
        user = await self.users.by_id(principal.user_id)
        await self.channel.enter(sid, study_room(study_uid))
        await self.presence.join(
            Member(
                sid=sid,
                study_uid=study_uid,
                user_id=principal.user_id,
                username=principal.username,
                display_name=user.display_name if user else principal.username,
                role=principal.role.value,
                colour=colour_for(principal.user_id),
            )
        )
        return await self.resync(study_uid, since)

    async def leave(self, sid: str, study_uid: str) -> None:
        await self.channel.leave(sid, study_room(study_uid))
        member = await self.presence.leave(sid, study_uid)
        self.frames.forget(sid)
        if member is not None:
            await self._presenter_left(member)

    async def disconnected(self, sid: str) -> None:
        self.frames.forget(sid)
        for member in await self.presence.leave_all(sid):
            await self._presenter_left(member)

    def member(self, sid: str, study_uid: str) -> Member:
        """The caller's membership of a study room on this connection; events need one."""
        member = self.presence.member(sid, study_uid)
        if member is None:
            raise ApiError("forbidden", "Join the study room first (room.join).")
        return member

    async def join_worklist(self, principal: Principal, sid: str) -> str:
        principal.require(Permission.WORKLIST_READ)
        room = worklist_room(principal.facility)
        await self.channel.enter(sid, room)
        return room

    async def invite(self, principal: Principal, study_uid: str, username: str) -> str:
        await self.access.check_invite(principal, study_uid)
        invitee = await self.users.by_username(username)
        if invitee is None or invitee.disabled:
            raise ApiError("not_found", "No such user.")
        if not await self.access.invitations.invite(study_uid, invitee.id, principal):
            return invitee.username
        await self._audit(
            principal, "study.invite", "success", study_uid, {"invitee": invitee.username}
        )
        await self.channel.send(
            "study.invitation",
            {"study_uid": study_uid, "by": actor(principal)},
            room=user_room(invitee.id),
        )
        return invitee.username

    # -- sequence, snapshot, resync -------------------------------------------------------

    async def resync(self, study_uid: str, since: int | None) -> dict[str, Any]:
        node = self.presence.node_id
        if since is not None:
            seq, ops = await self.log.since(study_uid, since)
            if ops is not None:
                return {"ok": True, "mode": "ops", "seq": seq, "ops": ops, "node": node}
        snapshot = await self.snapshot(study_uid)
        return {
            "ok": True,
            "mode": "snapshot",
            "seq": snapshot["seq"],
            "snapshot": snapshot,
            "node": node,
        }

    async def snapshot(self, study_uid: str) -> dict[str, Any]:
        """Room state; seq is read first, so state may already include ops after it (never
        the reverse), and replaying ops is idempotent (annotations and alerts carry versions)."""
        seq = await self.log.current(study_uid)
        room = await self._rooms.find_one({"_id": study_uid})
        chat, _ = await self.chat.history(study_conversation(study_uid), limit=TAIL)
        return {
            "study_uid": study_uid,
            "seq": seq,
            "participants": await self.presence.participants(study_uid),
            "presenter": room.get("presenter") if room else None,
            "annotations": await self.annotations.for_study(study_uid),
            "chat": list(reversed(chat)),
            "report": await self.reports.state(study_uid),
            "alerts": await self.alerts.open_for_study(study_uid),
            "sync_links": await self.sync.for_study(study_uid),
        }

    async def broadcast(
        self,
        study_uid: str,
        op_type: str,
        who: dict[str, str] | None,
        data: dict[str, Any],
        stored: Document | None = None,
    ) -> Document:
        """Persist first, then send: the op reaches clients only once it can be replayed."""
        op = await self.log.append(study_uid, op_type, who, data, stored)
        if op_type == "presenter.changed":
            self.presenters.changed(study_uid, data["presenter"])
        await self.channel.send("room.op", op, room=study_room(study_uid))
        return op

    # -- annotations ----------------------------------------------------------------------

    async def annotate(
        self, principal: Principal, sid: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        study_uid = payload["study_uid"]
        self.member(sid, study_uid)
        if action == "create":
            change = await self.annotations.create(principal, payload)
            op_type = "annotation.created"
        elif action == "update":
            change = await self.annotations.update(principal, payload)
            op_type = "annotation.updated"
        elif action == "delete":
            change = await self.annotations.delete(principal, payload)
            op_type = "annotation.deleted"
        else:
            change = await self.annotations.undo(principal, study_uid)
            deleted = change.annotation["deleted"]
            op_type = "annotation.deleted" if deleted else "annotation.updated"
        annotation = change.annotation
        op = await self.broadcast(
            study_uid, op_type, actor(principal), annotation, change.op_fields()
        )
        return {"seq": op["seq"], "annotation": annotation}

    # -- chat -----------------------------------------------------------------------------

    async def chat_send(
        self, principal: Principal, sid: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        mentions = payload.get("mentions", [])
        mentioned = [await self.users.by_username(name) for name in mentions]
        if any(user is None for user in mentioned):
            raise ApiError("validation_failed", "a mentioned user does not exist")
        ref = payload.get("ref")
        study_uid = payload.get("study_uid")
        if study_uid is not None:
            self.member(sid, study_uid)
            message = await self.chat.send(
                principal,
                conversation=study_conversation(study_uid),
                study_uid=study_uid,
                text=payload["text"],
                mentions=mentions,
                ref=ref,
            )
            await self.broadcast(study_uid, "chat.message", actor(principal), message)
        else:
            to_user = await self.users.by_id(payload["to_user"])
            if (
                to_user is None
                or to_user.disabled
                or not principal.may_access_facility(to_user.facility)
            ):
                raise ApiError("not_found", "No such user.")
            message = await self.chat.send(
                principal,
                conversation=direct_conversation(principal.user_id, to_user.id),
                to_user=to_user.id,
                text=payload["text"],
                mentions=mentions,
                ref=ref,
            )
            await self._direct(message)
        for user in mentioned:
            if user is not None and user.id != principal.user_id:
                await self.channel.send("chat.mention", message, room=user_room(user.id))
        if mentions:
            # The workflow keeps a notification per mentioned reader (server.workflow.events).
            await self.publish(
                DomainEvent(
                    CHAT_MENTIONED,
                    {
                        "study_uid": study_uid,
                        "author": principal.username,
                        "mentions": mentions,
                        "text": payload["text"],
                    },
                    facility=principal.facility,
                )
            )
        return {"message": message}

    async def chat_change(
        self, principal: Principal, sid: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        stored = await self.chat.get(payload["id"])
        study_uid = stored.get("study_uid")
        if study_uid is not None:
            self.member(sid, study_uid)
        elif principal.user_id not in stored["conversation"].split(":")[1:]:
            raise ApiError("not_found", "No such message.")
        if action == "edit":
            message = await self.chat.edit(principal, stored, payload["text"])
        else:
            message = await self.chat.delete(principal, stored)
        if study_uid is not None:
            op_type = "chat.edited" if action == "edit" else "chat.deleted"
            await self.broadcast(study_uid, op_type, actor(principal), message)
        else:
            await self._direct(message)
        return {"message": message}

    async def chat_history(
        self, principal: Principal, sid: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        if "study_uid" in payload:
            self.member(sid, payload["study_uid"])
            conversation = study_conversation(payload["study_uid"])
        else:
            conversation = direct_conversation(principal.user_id, payload["to_user"])
        messages, more = await self.chat.history(
            conversation, payload.get("before"), payload.get("limit", TAIL)
        )
        return {"messages": messages, "more": more}

    async def _direct(self, message: Document) -> None:
        """Each participant's copy carries the next seq of their own stream (stored first)."""
        author, to_user = message["author"]["user_id"], message["to_user"]
        for user_id in sorted({author, to_user}):
            sequenced = await self.inbox.append(user_id, message)
            await self.channel.send("chat.direct", sequenced, room=user_room(user_id))

    async def direct_resync(self, principal: Principal, since: int) -> dict[str, Any]:
        return await self.inbox.since(principal.user_id, since)

    # -- presence and follow --------------------------------------------------------------

    async def presence_update(self, sid: str, payload: dict[str, Any]) -> None:
        study_uid = payload["study_uid"]
        member = self.member(sid, study_uid)
        viewport = payload.get("viewport")
        self.presence.update(member, viewport=viewport, cursor=payload.get("cursor", False))
        if viewport is None:
            return
        presenter = await self.presenters.of(study_uid)
        presenting = bool(presenter and presenter["user_id"] == member.user_id)
        if payload.get("render", True) or presenting:
            request = FrameRequest.from_viewport(study_uid, viewport)
            if payload.get("render", True):
                self.frames.request(sid, request, viewport)
        if presenting:
            # Followers held by this node get the presenter's frame from the shared render;
            # followers on other nodes see another node id and ask their own node.
            for follower in self.presence.local_members(study_uid):
                if follower.following and follower.sid != sid:
                    self.frames.request(follower.sid, request, viewport)
            await self.channel.send(
                "follow.viewport",
                {
                    "study_uid": study_uid,
                    "presenter": presenter,
                    "viewport": viewport,
                    "node": self.presence.node_id,
                },
                room=study_room(study_uid),
                skip_sid=sid,
            )
        await self._sync_scroll(sid, study_uid, viewport)

    # -- synchronised scrolling -----------------------------------------------------------

    async def sync_link(
        self, principal: Principal, sid: str, study_uid: str, series: list[str]
    ) -> dict[str, Any]:
        self.member(sid, study_uid)
        link = await self.sync.link(study_uid, series, actor(principal))
        op = await self.broadcast(study_uid, "sync.linked", actor(principal), link)
        return {"seq": op["seq"], "link": link}

    async def sync_unlink(
        self, principal: Principal, sid: str, study_uid: str, link_id: str
    ) -> dict[str, Any]:
        self.member(sid, study_uid)
        link = await self.sync.unlink(study_uid, link_id)
        op = await self.broadcast(study_uid, "sync.unlinked", actor(principal), link)
        return {"seq": op["seq"]}

    async def _sync_scroll(self, sid: str, study_uid: str, viewport: dict[str, Any]) -> None:
        """Tell the member who scrolled a linked series where the other series' slice is."""
        try:
            targets = await self.sync.targets(study_uid, viewport)
        except ApiError:
            return  # a linked series lost its images: nothing to scroll to
        for found in targets:
            await self.channel.send_local(
                "sync.scroll",
                {
                    "study_uid": study_uid,
                    "link_id": found.link_id,
                    "from": _place(viewport["series_uid"], found.source),
                    "to": _place(found.target_series, found.target),
                    "distance_mm": round(found.distance_mm, 3),
                },
                sid=sid,
            )

    def render(self, sid: str, study_uid: str, viewport: dict[str, Any]) -> None:
        self.member(sid, study_uid)
        self.frames.request(sid, FrameRequest.from_viewport(study_uid, viewport), viewport)

    def typing(self, sid: str, study_uid: str, typing: bool) -> None:
        self.presence.update(self.member(sid, study_uid), typing=typing)

    def follow(self, sid: str, study_uid: str, following: bool) -> None:
        self.presence.update(self.member(sid, study_uid), following=following)

    async def present(self, principal: Principal, sid: str, study_uid: str) -> dict[str, Any]:
        member = self.member(sid, study_uid)
        me = member.actor()
        result = await self._rooms.update_one(
            {"_id": study_uid, "presenter": None}, {"$set": {"presenter": me}}
        )
        if result.matched_count == 0:
            try:
                await self._rooms.insert_one({"_id": study_uid, "presenter": me})
            except DuplicateKeyError:
                raise ApiError(
                    "conflict", "Somebody is presenting; ask them to hand over."
                ) from None
        op = await self.broadcast(study_uid, "presenter.changed", me, {"presenter": me})
        return {"seq": op["seq"]}

    async def handover(
        self, principal: Principal, sid: str, study_uid: str, user_id: str
    ) -> dict[str, Any]:
        member = self.member(sid, study_uid)
        target = next(
            (p for p in await self.presence.participants(study_uid) if p["user_id"] == user_id),
            None,
        )
        if target is None:
            raise ApiError("not_found", "That user is not in this room.")
        to = {"user_id": target["user_id"], "username": target["username"]}
        return await self._change_presenter(principal, member, study_uid, to)

    async def stop_presenting(
        self, principal: Principal, sid: str, study_uid: str
    ) -> dict[str, Any]:
        member = self.member(sid, study_uid)
        return await self._change_presenter(principal, member, study_uid, None)

    async def _change_presenter(
        self, principal: Principal, member: Member, study_uid: str, to: dict[str, str] | None
    ) -> dict[str, Any]:
        match: Document = {"_id": study_uid, "presenter.user_id": member.user_id}
        if principal.can(Permission.USERS_MANAGE):
            match = {"_id": study_uid, "presenter": {"$ne": None}}
        result = await self._rooms.update_one(
            match, {"$set": {"presenter": to, CONTROL_REQUESTS: {}}}
        )
        if result.matched_count == 0:
            raise ApiError("forbidden", "Only the presenter may hand over or stop presenting.")
        op = await self.broadcast(study_uid, "presenter.changed", member.actor(), {"presenter": to})
        return {"seq": op["seq"]}

    async def request_control(self, sid: str, study_uid: str) -> dict[str, Any]:
        member = self.member(sid, study_uid)
        presenter = await self._presenter(study_uid)
        if presenter is None:
            raise ApiError("conflict", "Nobody is presenting: present to take control.")
        if presenter["user_id"] == member.user_id:
            raise ApiError("conflict", "You are presenting already.")
        request = await self.control.ask(study_uid, member.actor(), presenter)
        await self.channel.send("follow.requested", request, room=user_room(presenter["user_id"]))
        return {"request": request}

    async def answer_control(
        self, sid: str, study_uid: str, request_id: str, grant: bool
    ) -> dict[str, Any]:
        """Only the presenter answers; on a grant the answering connection follows the new one."""
        member = self.member(sid, study_uid)
        presenter = await self._presenter(study_uid)
        if presenter is None or presenter["user_id"] != member.user_id:
            raise ApiError("forbidden", "Only the presenter may answer a request for control.")
        stale = ApiError("stale_version", "That request for control is no longer open.")
        request = await self.control.find(study_uid, request_id)
        if request is None or request["to"]["user_id"] != member.user_id:
            raise stale
        requester = request["from"]
        if grant and not any(
            p["user_id"] == requester["user_id"]
            for p in await self.presence.participants(study_uid)
        ):
            await self.control.close(study_uid, request, member.user_id, grant=False)
            raise ApiError("not_found", f"{requester['username']} has left the room.")
        if not await self.control.close(study_uid, request, member.user_id, grant=grant):
            raise stale
        answer: dict[str, Any] = {}
        if grant:
            op = await self.broadcast(
                study_uid, "presenter.changed", member.actor(), {"presenter": requester}
            )
            self.presence.update(member, following=True)
            answer["seq"] = op["seq"]
        await self.channel.send(
            "follow.answered",
            {
                "study_uid": study_uid,
                "request_id": request_id,
                "granted": grant,
                "by": member.actor(),
            },
            room=user_room(requester["user_id"]),
        )
        return answer

    async def _presenter(self, study_uid: str) -> dict[str, str] | None:
        room = await self._rooms.find_one({"_id": study_uid}, {"presenter": 1})
        presenter: dict[str, str] | None = room.get("presenter") if room else None
        return presenter

    async def _presenter_left(self, member: Member) -> None:
        """The presenter's last connection left: nobody presents until someone starts again."""
        still_here = any(
            p["user_id"] == member.user_id
            for p in await self.presence.participants(member.study_uid)
        )
        if still_here:
            return
        result = await self._rooms.update_one(
            {"_id": member.study_uid, "presenter.user_id": member.user_id},
            {"$set": {"presenter": None, CONTROL_REQUESTS: {}}},
        )
        if result.matched_count:
            await self.broadcast(
                member.study_uid, "presenter.changed", member.actor(), {"presenter": None}
            )

    # -- report draft ---------------------------------------------------------------------

    async def report_sync(
        self, principal: Principal, sid: str, study_uid: str, message: str
    ) -> dict[str, Any]:
        self.member(sid, study_uid)
        principal.require(Permission.REPORTS_READ)
        kind, payload = decode_message(message)
        if kind != YSyncMessageType.SYNC_STEP1 and payload != EMPTY_UPDATE:
            principal.require(Permission.REPORTS_WRITE)
        result = await self.reports.handle(study_uid, message, principal.user_id)
        if result.relay is not None:
            await self.channel.send(
                "report.sync",
                {"study_uid": study_uid, "message": encode(result.relay)},
                room=study_room(study_uid),
                skip_sid=sid,
            )
        return {"messages": [encode(reply) for reply in result.replies]}

    async def on_report_signed(self, event: DomainEvent) -> None:
        """Hub subscriber for the workflow's report.signed: the signed draft stops changing.

        Only the first signature freezes; an addendum carries its own text and changes
        nothing here."""
        study_uid = event.data.get("study_uid")
        if event.data.get("kind") != "report" or not isinstance(study_uid, str):
            return
        mark = await self.reports.freeze(study_uid, event.data)
        if mark is not None:
            await self.broadcast(study_uid, "report.frozen", None, mark)

    # -- alerts ---------------------------------------------------------------------------

    async def on_alert_event(self, event: DomainEvent) -> None:
        """Hub subscriber for alert.raised / alert.updated from the workflow (or AI)."""
        if event.data.get("source") == alert_rules.SOURCE:
            return
        alert = alert_rules.check_alert(event.data)
        if await self.alerts.accept(alert):
            await self._deliver_alert(alert, None)

    async def alert_action(
        self, principal: Principal, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        alert = await self.alerts.act(
            principal, action, payload["alert_id"], payload["version"], payload.get("note")
        )
        await self._deliver_alert(alert, actor(principal))
        await self.publish(DomainEvent(alert_rules.UPDATED, alert, facility=alert["facility"]))
        return {"alert": alert}

    async def _deliver_alert(self, alert: dict[str, Any], who: dict[str, str] | None) -> None:
        await self.broadcast(alert["study_uid"], "alert.changed", who, alert)
        await self.channel.send("alert", alert, room=worklist_room(alert["facility"]))
        # The workflow names the assignee by username in assigned_to and adds the user id.
        assignee = alert.get("assigned_user_id") or alert.get("assigned_to")
        if assignee:
            await self.channel.send("alert", alert, room=user_room(assignee))

    # -- audit ----------------------------------------------------------------------------

    async def _audit(
        self,
        principal: Principal,
        action: str,
        outcome: Any,
        study_uid: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        await self.audit.record(
            actor=principal.username,
            action=action,
            outcome=outcome,
            target=f"study:{study_uid}",
            facility=principal.facility,
            details=details,
        )


def _place(series_uid: str, where: Slice) -> dict[str, Any]:
    return {"series_uid": series_uid, "instance_uid": where.instance_uid, "frame": where.frame}
