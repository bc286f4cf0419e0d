"""The `_FILE` convention: `PAYSAGA_X_FILE=/path` gives setting X the file's content (Kubernetes
and Docker secrets mounted as files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from paysaga.secret_files import SecretFileError
from paysaga.settings import Settings, default_secrets_in_use


def test_secret_settings_come_from_their_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text('{"sk_live_a": {"merchant": "mer_a", "scopes": ["payments"]}}\n')
    url = tmp_path / "database-url"
    url.write_text("postgresql://paysaga:s3cret@db:5432/paysaga\n")
    monkeypatch.setenv("PAYSAGA_API_KEYS_FILE", str(keys))
    monkeypatch.setenv("PAYSAGA_DATABASE_URL_FILE", str(url))

    settings = Settings(environment="development")

    assert settings.database_url == "postgresql://paysaga:s3cret@db:5432/paysaga"
    assert {k: (g.merchant, g.scopes) for k, g in settings.api_keys.items()} == {
        "sk_live_a": ("mer_a", ["payments"])
    }
    assert not any(name.startswith("PAYSAGA_API_KEYS") for name in default_secrets_in_use(settings))


def test_a_setting_given_twice_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "metrics-token"
    secret.write_text("token-from-file")
    monkeypatch.setenv("PAYSAGA_METRICS_TOKEN_FILE", str(secret))
    monkeypatch.setenv("PAYSAGA_METRICS_TOKEN", "token-from-variable")

    with pytest.raises(
        SecretFileError, match="PAYSAGA_METRICS_TOKEN and PAYSAGA_METRICS_TOKEN_FILE"
    ):
        Settings(environment="development")


def test_a_missing_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYSAGA_METRICS_TOKEN_FILE", str(tmp_path / "nowhere"))

    with pytest.raises(SecretFileError, match="PAYSAGA_METRICS_TOKEN_FILE: cannot read"):
        Settings(environment="development")


def test_arguments_win_over_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "metrics-token"
    secret.write_text("token-from-file")
    monkeypatch.setenv("PAYSAGA_METRICS_TOKEN_FILE", str(secret))

    assert Settings(environment="development").metrics_token == "token-from-file"
    assert Settings(environment="development", metrics_token="given").metrics_token == "given"
