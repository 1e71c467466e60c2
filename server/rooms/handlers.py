"""The Socket.IO edge of the rooms: one thin handler per catalog event.

The event router has already validated the payload against ``shared/protocol`` and resolved the
caller; each handler names the core method that does the work. Errors raised below become
``{"error": ...}`` acknowledgements in the router.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.auth.service import Principal
from server.rooms.dispatch import EventRouter
from server.rooms.service import Rooms

Ack = dict[str, Any]


def register_handlers(events: EventRouter, current: Callable[[], Rooms]) -> None:
    """``current`` returns the live core: handlers exist before the app starts, the core after."""

    @events.on("room.join")
    async def join(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().join(principal, sid, payload["study_uid"], payload.get("since"))

    @events.on("room.leave")
    async def leave(principal: Principal, sid: str, payload: Any) -> None:
        await current().leave(sid, payload["study_uid"])

    @events.on("room.sync")
    async def sync(principal: Principal, sid: str, payload: Any) -> Ack:
        current().member(sid, payload["study_uid"])
        return await current().resync(payload["study_uid"], payload["since"])

    @events.on("worklist.join")
    async def worklist(principal: Principal, sid: str, payload: Any) -> Ack:
        return {"room": await current().join_worklist(principal, sid)}

    @events.on("study.invite")
    async def invite(principal: Principal, sid: str, payload: Any) -> Ack:
        return {
            "invited": await current().invite(principal, payload["study_uid"], payload["username"])
        }

    for action in ("create", "update", "delete", "undo"):
        _annotation(events, current, action)

    @events.on("annotation.history")
    async def history(principal: Principal, sid: str, payload: Any) -> Ack:
        current().member(sid, payload["study_uid"])
        return {"entries": await current().annotations.history(payload["study_uid"], payload["id"])}

    @events.on("chat.send")
    async def chat_send(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().chat_send(principal, sid, payload)

    @events.on("chat.edit")
    async def chat_edit(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().chat_change(principal, sid, "edit", payload)

    @events.on("chat.delete")
    async def chat_delete(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().chat_change(principal, sid, "delete", payload)

    @events.on("chat.history")
    async def chat_history(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().chat_history(principal, sid, payload)

    @events.on("chat.direct.sync")
    async def direct_sync(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().direct_resync(principal, payload["since"])

    @events.on("chat.typing")
    async def typing(principal: Principal, sid: str, payload: Any) -> None:
        current().typing(sid, payload["study_uid"], payload["typing"])

    @events.on("presence.update")
    async def presence(principal: Principal, sid: str, payload: Any) -> None:
        await current().presence_update(sid, payload)

    @events.on("viewport.render")
    async def render(principal: Principal, sid: str, payload: Any) -> None:
        current().render(sid, payload["study_uid"], payload["viewport"])

    @events.on("follow.present")
    async def present(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().present(principal, sid, payload["study_uid"])

    @events.on("follow.handover")
    async def handover(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().handover(principal, sid, payload["study_uid"], payload["user_id"])

    @events.on("follow.request")
    async def request_control(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().request_control(sid, payload["study_uid"])

    @events.on("follow.answer")
    async def answer_control(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().answer_control(
            sid, payload["study_uid"], payload["request_id"], payload["grant"]
        )

    @events.on("follow.stop")
    async def stop(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().stop_presenting(principal, sid, payload["study_uid"])

    @events.on("follow.set")
    async def follow(principal: Principal, sid: str, payload: Any) -> None:
        current().follow(sid, payload["study_uid"], payload["following"])

    @events.on("sync.link")
    async def link(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().sync_link(principal, sid, payload["study_uid"], payload["series"])

    @events.on("sync.unlink")
    async def unlink(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().sync_unlink(principal, sid, payload["study_uid"], payload["id"])

    @events.on("report.sync")
    async def report(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().report_sync(principal, sid, payload["study_uid"], payload["message"])

    for action in ("acknowledge", "resolve", "escalate"):
        _alert(events, current, action)

    async def disconnected(sid: str) -> None:
        await current().disconnected(sid)

    events.on_disconnect(disconnected)


def _annotation(events: EventRouter, current: Callable[[], Rooms], action: str) -> None:
    @events.on(f"annotation.{action}")
    async def handle(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().annotate(principal, sid, action, payload)


def _alert(events: EventRouter, current: Callable[[], Rooms], action: str) -> None:
    @events.on(f"alert.{action}")
    async def handle(principal: Principal, sid: str, payload: Any) -> Ack:
        return await current().alert_action(principal, action, payload)
