"""User accounts: the records, their validation, and the first-start admin."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from server.auth import passwords
from server.auth.roles import Role, permissions_for
from server.auth.tokens import Clock, utc_now
from server.http.errors import ApiError
from server.store.database import Document, IndexSpec, Store

COLLECTION = "users"
INDEXES = [
    IndexSpec(COLLECTION, [("username", 1)], unique=True),
    IndexSpec(COLLECTION, [("facility", 1), ("role", 1)]),
]
DEFAULT_FACILITY = "main"
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
FACILITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    role: Role
    facility: str
    disabled: bool
    password_hash: str

    @classmethod
    def from_document(cls, doc: Document) -> User:
        return cls(
            id=str(doc["_id"]),
            username=doc["username"],
            display_name=doc.get("display_name") or doc["username"],
            role=Role(doc["role"]),
            facility=doc.get("facility") or DEFAULT_FACILITY,
            disabled=bool(doc.get("disabled", False)),
            password_hash=doc["password_hash"],
        )

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role.value,
            "facility": self.facility,
            "disabled": self.disabled,
            "permissions": sorted(p.value for p in permissions_for(self.role)),
        }


def check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise ApiError(
            "validation_failed",
            "A username is 2-64 lowercase letters, digits, '.', '_' or '-', starting with a "
            "letter or digit.",
        )
    return username


def check_facility(facility: str) -> str:
    if not FACILITY.match(facility):
        raise ApiError(
            "validation_failed", "A facility is 1-64 letters, digits, ' ', '.', '_', '-'."
        )
    return facility


class Users:
    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._collection = store[COLLECTION]
        self._clock = clock

    async def create(
        self,
        username: str,
        password: str,
        role: Role,
        facility: str = DEFAULT_FACILITY,
        display_name: str | None = None,
    ) -> User:
        check_username(username)
        check_facility(facility)
        try:
            passwords.check_policy(password, username)
        except passwords.WeakPassword as exc:
            raise ApiError("weak_password", str(exc)) from None
        password_hash = await asyncio.to_thread(passwords.hash_password, password)
        now = self._clock().timestamp()
        doc: Document = {
            "_id": ObjectId(),
            "username": username,
            "display_name": display_name or username,
            "role": role.value,
            "facility": facility,
            "disabled": False,
            "password_hash": password_hash,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._collection.insert_one(doc)
        except DuplicateKeyError:
            raise ApiError("conflict", f"The username {username!r} is taken.") from None
        return User.from_document(doc)

    async def by_username(self, username: str) -> User | None:
        doc = await self._collection.find_one({"username": username})
        return User.from_document(doc) if doc else None

    async def by_id(self, user_id: str) -> User | None:
        if not ObjectId.is_valid(user_id):
            return None
        doc = await self._collection.find_one({"_id": ObjectId(user_id)})
        return User.from_document(doc) if doc else None

    async def all(self, facility: str | None = None) -> list[User]:
        match: Document = {} if facility is None else {"facility": facility}
        cursor = self._collection.find(match).sort("username", 1)
        return [User.from_document(doc) async for doc in cursor]

    async def count(self) -> int:
        return await self._collection.count_documents({})

    async def update(self, username: str, changes: dict[str, Any]) -> User:
        allowed = {"disabled", "role", "facility", "display_name"}
        unknown = set(changes) - allowed
        if unknown:
            raise ApiError("validation_failed", f"Cannot change {sorted(unknown)}.")
        if "role" in changes:
            changes["role"] = Role(changes["role"]).value
        if "facility" in changes:
            check_facility(changes["facility"])
        result = await self._collection.find_one_and_update(
            {"username": username},
            {"$set": {**changes, "updated_at": self._clock().timestamp()}},
            return_document=True,
        )
        if result is None:
            raise ApiError("not_found", f"No user {username!r}.")
        return User.from_document(result)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._collection.update_one(
            {"_id": ObjectId(user_id)},
            {"$set": {"password_hash": password_hash, "updated_at": self._clock().timestamp()}},
        )


def generate_password() -> str:
    return secrets.token_urlsafe(18)


async def bootstrap_admin(users: Users) -> tuple[str, str] | None:
    """On a first start with no users, create one admin with a random password, shown once."""
    if await users.count() > 0:
        return None
    password = generate_password()
    try:
        await users.create("admin", password, Role.ADMIN, DEFAULT_FACILITY, "Administrator")
    except ApiError as exc:
        if exc.code == "conflict":
            return None
        raise
    return "admin", password
