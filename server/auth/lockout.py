"""Back-off after repeated failed sign-ins, per account name and per client address.

Counters live in the store (by ``_id``, the fast path of every MongoDB server) so several server
nodes share them. Times are epoch seconds, as everywhere in the store. The account counter counts
any name tried, existing or not, so a lockout reveals nothing about which usernames exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from server.auth.tokens import Clock, utc_now
from server.store.database import Store

COLLECTION = "login_failures"


@dataclass(frozen=True)
class LockoutPolicy:
    account_threshold: int = 5
    address_threshold: int = 20
    window: timedelta = timedelta(minutes=15)
    base_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(minutes=15)

    def delay(self, failures: int, threshold: int) -> timedelta:
        if failures < threshold:
            return timedelta(0)
        exponent = min(failures - threshold, 10)
        delay: timedelta = min(self.base_delay * (2**exponent), self.max_delay)
        return delay


class Lockout:
    def __init__(self, store: Store, policy: LockoutPolicy, clock: Clock = utc_now) -> None:
        self._collection = store[COLLECTION]
        self.policy = policy
        self._clock = clock

    @staticmethod
    def _keys(username: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("account", f"user:{username.lower()[:128]}")]
        if address:
            keys.append(("address", f"addr:{address}"))
        return keys

    async def retry_after(self, username: str, address: str | None) -> int:
        """Seconds until a sign-in may be tried again; 0 when not locked."""
        now = self._clock().timestamp()
        wait = 0
        for _, key in self._keys(username, address):
            doc = await self._collection.find_one({"_id": key})
            locked_until = float(doc.get("locked_until", 0)) if doc else 0.0
            if locked_until > now:
                wait = max(wait, int(locked_until - now) + 1)
        return wait

    async def record_failure(self, username: str, address: str | None) -> None:
        now = self._clock().timestamp()
        window = self.policy.window.total_seconds()
        for kind, key in self._keys(username, address):
            doc = await self._collection.find_one({"_id": key})
            if doc is not None and now - float(doc.get("first_at", now)) > window:
                await self._collection.delete_one({"_id": key})
            await self._collection.update_one(
                {"_id": key},
                {"$inc": {"count": 1}, "$setOnInsert": {"first_at": now}},
                upsert=True,
            )
            doc = await self._collection.find_one({"_id": key})
            if doc is None:
                continue
            threshold = (
                self.policy.account_threshold
                if kind == "account"
                else self.policy.address_threshold
            )
            delay = self.policy.delay(int(doc["count"]), threshold)
            if delay:
                await self._collection.update_one(
                    {"_id": key}, {"$set": {"locked_until": now + delay.total_seconds()}}
                )

    async def record_success(self, username: str) -> None:
        await self._collection.delete_one({"_id": self._keys(username, None)[0][1]})
