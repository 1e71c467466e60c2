"""Settings: defaults, overrides, and invalid values that must stop the start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, ensure_secret_key, load_settings


def test_defaults() -> None:
    settings = load_settings({})
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert settings.data_dir == Path("data")
    assert settings.mongo_url is None
    assert settings.redis_url is None
    assert settings.env == "dev"
    assert (settings.dicom_ae_title, settings.dicom_port) == ("NOCTIS", 11112)
    assert settings.render_decoded_cache_bytes == 512 << 20
    assert settings.render_encoded_cache_bytes == 128 << 20


def test_overrides() -> None:
    settings = load_settings(
        {
            "NOCTIS_HTTP_HOST": "0.0.0.0",
            "NOCTIS_HTTP_PORT": "9000",
            "NOCTIS_MONGO_URL": "mongodb://db1,db2/?replicaSet=rs0",
            "NOCTIS_REDIS_URL": "redis://127.0.0.1:6379/0",
            "NOCTIS_ENV": "production",
            "NOCTIS_SECRET_KEY": "k" * 40,
            "NOCTIS_DICOM_AE_TITLE": "READING1",
            "NOCTIS_RENDER_DECODED_CACHE_BYTES": "1073741824",
            "NOCTIS_RENDER_ENCODED_CACHE_BYTES": "0",
        }
    )
    assert settings.render_decoded_cache_bytes == 1 << 30
    assert settings.render_encoded_cache_bytes == 0
    assert settings.http_port == 9000
    assert settings.production
    assert settings.mongo_url == "mongodb://db1,db2/?replicaSet=rs0"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"NOCTIS_HTTP_PORT": "eighty"}, "NOCTIS_HTTP_PORT"),
        ({"NOCTIS_HTTP_PORT": "70000"}, "NOCTIS_HTTP_PORT"),
        ({"NOCTIS_DICOM_PORT": "-1"}, "NOCTIS_DICOM_PORT"),
        ({"NOCTIS_ENV": "staging"}, "NOCTIS_ENV"),
        ({"NOCTIS_MONGO_URL": "postgres://x"}, "NOCTIS_MONGO_URL"),
        ({"NOCTIS_REDIS_URL": "http://x"}, "NOCTIS_REDIS_URL"),
        ({"NOCTIS_SECRET_KEY": "short"}, "NOCTIS_SECRET_KEY"),
        ({"NOCTIS_DICOM_AE_TITLE": "WAY_TOO_LONG_AE_TITLE"}, "NOCTIS_DICOM_AE_TITLE"),
        ({"NOCTIS_DICOM_AE_TITLE": "BACK\\SLASH"}, "NOCTIS_DICOM_AE_TITLE"),
        ({"NOCTIS_ENV": "production"}, "NOCTIS_SECRET_KEY"),
        ({"NOCTIS_HTTP_HOST": "bad host!"}, "NOCTIS_HTTP_HOST"),
        ({"NOCTIS_TRUST_PROXY": "maybe"}, "NOCTIS_TRUST_PROXY"),
        ({"NOCTIS_HTTP_PROT": "8080"}, "NOCTIS_HTTP_PROT"),
        ({"NOCTIS_RENDER_DECODED_CACHE_BYTES": "512M"}, "NOCTIS_RENDER_DECODED_CACHE_BYTES"),
        ({"NOCTIS_RENDER_ENCODED_CACHE_BYTES": "-1"}, "NOCTIS_RENDER_ENCODED_CACHE_BYTES"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load_settings(env)


def test_dev_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = load_settings({"NOCTIS_DATA_DIR": str(tmp_path)})
    first = ensure_secret_key(settings)
    second = ensure_secret_key(settings)
    assert first.secret_key is not None
    assert len(first.secret_key) >= 32
    assert first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
