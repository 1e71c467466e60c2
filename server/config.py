"""One frozen, typed settings object read from ``NOCTIS_*`` environment variables.

Settings are few on purpose: every option here is one an operator must understand. Invalid values
fail at start-up with a message naming the variable, so a typo never becomes a silent default.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

Environment = Literal["dev", "production"]

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
MIN_SECRET_KEY_LENGTH = 32
MAX_CACHE_BYTES = 1 << 40
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    data_dir: Path = Path("data")
    mongo_url: str | None = None
    mongo_db: str = "noctis"
    redis_url: str | None = None
    secret_key: str | None = None
    env: Environment = "dev"
    dicom_ae_title: str = "NOCTIS"
    dicom_port: int = 11112
    dicom_enabled: bool = True
    dicom_workers: int = 0
    blob_backend: Literal["local", "gridfs"] = "local"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 12 * 3600
    max_body_bytes: int = 1 << 20
    max_upload_bytes: int = 2 << 30
    trust_proxy: bool = False
    log_level: str = "INFO"
    render_decoded_cache_bytes: int = 512 << 20
    render_encoded_cache_bytes: int = 128 << 20

    @property
    def production(self) -> bool:
        return self.env == "production"

    def with_secret_key(self, key: str) -> Settings:
        return replace(self, secret_key=key)


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name) or default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name)
    if not raw:
        return None
    if not raw.startswith(tuple(f"{scheme}://" for scheme in schemes)):
        raise ConfigError(f"{name} must start with {' or '.join(s + '://' for s in schemes)}")
    return raw


def _host(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", raw):
            raise ConfigError(f"{name} must be an IP address or host name, got {raw!r}") from None
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment, refusing anything invalid or unknown."""
    env = os.environ if env is None else env
    known = {
        "NOCTIS_HTTP_HOST",
        "NOCTIS_HTTP_PORT",
        "NOCTIS_DATA_DIR",
        "NOCTIS_MONGO_URL",
        "NOCTIS_MONGO_DB",
        "NOCTIS_REDIS_URL",
        "NOCTIS_SECRET_KEY",
        "NOCTIS_ENV",
        "NOCTIS_DICOM_AE_TITLE",
        "NOCTIS_DICOM_PORT",
        "NOCTIS_DICOM_ENABLED",
        "NOCTIS_DICOM_WORKERS",
        "NOCTIS_BLOB_BACKEND",
        "NOCTIS_ACCESS_TOKEN_TTL",
        "NOCTIS_REFRESH_TOKEN_TTL",
        "NOCTIS_MAX_BODY_BYTES",
        "NOCTIS_TRUST_PROXY",
        "NOCTIS_LOG_LEVEL",
        "NOCTIS_RENDER_DECODED_CACHE_BYTES",
        "NOCTIS_RENDER_ENCODED_CACHE_BYTES",
    }
    unknown = sorted(k for k in env if k.startswith("NOCTIS_") and k not in known)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]} (known: {', '.join(sorted(known))})")

    secret = env.get("NOCTIS_SECRET_KEY") or None
    if secret is not None and len(secret) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(f"NOCTIS_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters")
    ae_title = env.get("NOCTIS_DICOM_AE_TITLE") or "NOCTIS"
    if not _AE_TITLE.match(ae_title) or ae_title.strip() == "":
        raise ConfigError("NOCTIS_DICOM_AE_TITLE must be 1-16 printable characters without '\\'")
    mongo_db = env.get("NOCTIS_MONGO_DB") or "noctis"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,63}", mongo_db):
        raise ConfigError("NOCTIS_MONGO_DB must be 1-63 letters, digits, '_' or '-'")
    log_level = _choice(
        env, "NOCTIS_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    )

    settings = Settings(
        http_host=_host(env, "NOCTIS_HTTP_HOST", "127.0.0.1"),
        http_port=_int(env, "NOCTIS_HTTP_PORT", 8080, 0, 65535),
        data_dir=Path(env.get("NOCTIS_DATA_DIR") or "data"),
        mongo_url=_url(env, "NOCTIS_MONGO_URL", ("mongodb", "mongodb+srv")),
        mongo_db=mongo_db,
        redis_url=_url(env, "NOCTIS_REDIS_URL", ("redis", "rediss", "unix")),
        secret_key=secret,
        env="production"
        if _choice(env, "NOCTIS_ENV", "dev", ("dev", "production")) == "production"
        else "dev",
        dicom_ae_title=ae_title.strip(),
        dicom_port=_int(env, "NOCTIS_DICOM_PORT", 11112, 0, 65535),
        dicom_enabled=_bool(env, "NOCTIS_DICOM_ENABLED", True),
        dicom_workers=_int(env, "NOCTIS_DICOM_WORKERS", 0, 0, 16),
        blob_backend="gridfs"
        if _choice(env, "NOCTIS_BLOB_BACKEND", "local", ("local", "gridfs")) == "gridfs"
        else "local",
        access_token_ttl_s=_int(env, "NOCTIS_ACCESS_TOKEN_TTL", 900, 30, 86400),
        refresh_token_ttl_s=_int(env, "NOCTIS_REFRESH_TOKEN_TTL", 12 * 3600, 60, 90 * 86400),
        max_body_bytes=_int(env, "NOCTIS_MAX_BODY_BYTES", 1 << 20, 1024, 1 << 30),
        trust_proxy=_bool(env, "NOCTIS_TRUST_PROXY", False),
        log_level=log_level,
        render_decoded_cache_bytes=_int(
            env, "NOCTIS_RENDER_DECODED_CACHE_BYTES", 512 << 20, 0, MAX_CACHE_BYTES
        ),
        render_encoded_cache_bytes=_int(
            env, "NOCTIS_RENDER_ENCODED_CACHE_BYTES", 128 << 20, 0, MAX_CACHE_BYTES
        ),
    )
    if settings.production and settings.secret_key is None:
        raise ConfigError("NOCTIS_SECRET_KEY is required when NOCTIS_ENV=production")
    return settings


def ensure_secret_key(settings: Settings) -> Settings:
    """In dev mode, keep a generated key in the data dir so tokens survive a restart."""
    if settings.secret_key is not None:
        return settings
    if settings.production:
        raise ConfigError("NOCTIS_SECRET_KEY is required when NOCTIS_ENV=production")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / SECRET_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
    else:
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(f"{path} holds a key shorter than {MIN_SECRET_KEY_LENGTH} characters")
    return settings.with_secret_key(key)
