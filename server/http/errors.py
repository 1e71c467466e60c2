"""Domain errors that cross the wire as ``{"error": {"code", "message"}}``.

Every entry point (HTTP route, Socket.IO event, DIMSE handler) has one boundary that turns an
``ApiError`` into its transport's error form; codes come from ``shared/protocol/errors.json``.
"""

from __future__ import annotations

from typing import Any

from shared.protocol import catalog


class ApiError(Exception):
    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        cat = catalog()
        if code not in cat.errors:
            raise ValueError(f"error code {code!r} is not in shared/protocol/errors.json")
        self.code = code
        self.message = message or cat.error_message(code)
        self.status = status or cat.error_status(code)
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def as_payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}
