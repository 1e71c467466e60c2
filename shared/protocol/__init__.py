"""The event and message catalog both ends use, loaded from the JSON files beside this module.

The JSON files are the single definition: the server validates every inbound payload against
them and the browser client derives its types from the same files. This module knows nothing of
the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parent
BASE_URI = "https://noctis.invalid/protocol/"

Direction = Literal["client->server", "server->client", "both"]


class ProtocolError(Exception):
    """A payload broke the catalog; ``code`` is one of errors.json's codes."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def as_payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


@dataclass(frozen=True)
class EventSpec:
    name: str
    direction: Direction
    volatile: bool
    has_ack: bool
    source: str


@dataclass(frozen=True)
class RequestSpec:
    name: str
    method: str
    path: str
    has_body: bool
    source: str


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class _Compiled:
    """One schema twice: compiled code decides (the hot path, ~µs per event), and the reference
    validator is asked only to explain a rejection."""

    fast: Callable[[Any], Any]
    explain: Draft202012Validator


class Catalog:
    def __init__(self, root: Path = ROOT) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        for path in sorted(root.rglob("*.json")):
            relative = path.relative_to(root).as_posix()
            if relative.startswith("fixtures/"):
                continue
            self.documents[relative] = json.loads(path.read_text())
        self.registry: Registry[Any] = Registry().with_resources(
            (BASE_URI + rel, DRAFT202012.create_resource(doc))
            for rel, doc in self.documents.items()
        )
        self.errors: dict[str, dict[str, Any]] = self.documents["errors.json"]["errors"]
        self.events: dict[str, EventSpec] = {}
        self.requests: dict[str, RequestSpec] = {}
        self._validators: dict[tuple[str, str], _Compiled] = {}
        for rel, doc in self.documents.items():
            for name, spec in doc.get("events", {}).items():
                if name in self.events:
                    raise ValueError(f"event {name} defined twice ({rel})")
                self.events[name] = EventSpec(
                    name=name,
                    direction=spec["direction"],
                    volatile=bool(spec.get("volatile", False)),
                    has_ack="ack" in spec,
                    source=rel,
                )
            for name, spec in doc.get("requests", {}).items():
                if name in self.requests:
                    raise ValueError(f"request {name} defined twice ({rel})")
                self.requests[name] = RequestSpec(
                    name=name,
                    method=spec["method"],
                    path=spec["path"],
                    has_body="body" in spec,
                    source=rel,
                )

    def _validator(self, source: str, pointer: str) -> _Compiled:
        key = (source, pointer)
        validator = self._validators.get(key)
        if validator is None:
            schema = {"$ref": f"{BASE_URI}{source}#{pointer}"}
            validator = _Compiled(
                fastjsonschema.compile(
                    schema,
                    handlers={"https": self._document},
                    use_default=False,
                    use_formats=False,
                ),
                Draft202012Validator(schema, registry=self.registry),
            )
            self._validators[key] = validator
        return validator

    def _document(self, uri: str) -> Any:
        """Resolves the compiled validators' references to the catalog's own files, never a
        download: every schema comes from ``shared/protocol``."""
        return self.documents[uri.removeprefix(BASE_URI).split("#", 1)[0]]

    def _check(self, validator: _Compiled, payload: Any, what: str) -> None:
        try:
            validator.fast(payload)
        except fastjsonschema.JsonSchemaException as exc:
            fast_error = exc
        else:
            return
        # Rejections are rare: the full validator explains them with a path and a message.
        error = best_match(validator.explain.iter_errors(payload))
        if error is None:
            raise ProtocolError("validation_failed", f"{what}: {fast_error}", {"path": []})
        where = ".".join(str(p) for p in error.absolute_path) or "payload"
        if error.validator == "additionalProperties":
            message = f"{what}: {error.message}"
        elif error.validator == "required":
            message = f"{what}: {where}: {error.message}"
        else:
            message = f"{what}: {where}: {_short(error.instance)} is invalid ({error.validator})"
        raise ProtocolError("validation_failed", message, {"path": list(error.absolute_path)})

    def validate_event(self, name: str, payload: Any) -> None:
        spec = self.events.get(name)
        if spec is None or spec.direction == "server->client":
            raise ProtocolError("unknown_event", f"unknown event {name!r}")
        self._check(
            self._validator(spec.source, _pointer("events", name, "payload")), payload, name
        )

    def validate_outbound(self, name: str, payload: Any) -> None:
        """Used by tests to prove the server only emits what the catalog says."""
        spec = self.events.get(name)
        if spec is None or spec.direction == "client->server":
            raise ProtocolError("unknown_event", f"unknown outbound event {name!r}")
        self._check(
            self._validator(spec.source, _pointer("events", name, "payload")), payload, name
        )

    def validate_ack(self, name: str, payload: Any) -> None:
        spec = self.events[name]
        self._check(self._validator(spec.source, _pointer("events", name, "ack")), payload, name)

    def validate_request(self, name: str, body: Any) -> None:
        spec = self.requests[name]
        self._check(self._validator(spec.source, _pointer("requests", name, "body")), body, name)

    def validate_response(self, name: str, body: Any) -> None:
        spec = self.requests[name]
        self._check(
            self._validator(spec.source, _pointer("requests", name, "response")), body, name
        )

    def error_status(self, code: str) -> int:
        return int(self.errors[code]["status"])

    def error_message(self, code: str) -> str:
        return str(self.errors[code]["message"])


@cache
def catalog() -> Catalog:
    return Catalog()


def fixtures() -> Mapping[str, Any]:
    """Round-trip fixtures shared with the client tests: one file per message."""
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted((ROOT / "fixtures").glob("*.json"))
    }
