"""A bad setting is one line naming the environment variable, and exit code 78 (no traceback)."""

from __future__ import annotations

import pytest
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from icp_common.config_errors import CONFIG_ERROR_EXIT, load_settings
from icp_common.settings import ServiceSettings


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERLOPER_AUTH_", extra="ignore")
    session_expiry_days: int = 30
    client_secret: SecretStr = SecretStr("")


class KeySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")
    use_vertexai: bool = Field(False, validation_alias=AliasChoices("GOOGLE_GENAI_USE_VERTEXAI"))


class Settings(ServiceSettings):
    auth: AuthSettings = Field(default_factory=AuthSettings)
    keys: KeySettings = Field(default_factory=KeySettings)
    catalog: list[str] = Field(default_factory=list)


def fail(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        load_settings("interloper-test", Settings)
    assert exited.value.code == CONFIG_ERROR_EXIT
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err.splitlines()


def test_nested_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    [line] = fail(monkeypatch, capsys, INTERLOPER_AUTH_SESSION_EXPIRY_DAYS="abc")
    assert line.startswith("interloper-test: configuration error: INTERLOPER_AUTH_SESSION_EXPIRY_DAYS='abc': ")
    assert "valid integer" in line and "session_expiry_days" not in line


def test_top_level_and_aliased_settings(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    [line] = fail(monkeypatch, capsys, INTERLOPER_HTTP_PORT="abc")
    assert "INTERLOPER_HTTP_PORT='abc'" in line and "valid integer" in line
    monkeypatch.delenv("INTERLOPER_HTTP_PORT")
    [line] = fail(monkeypatch, capsys, GOOGLE_GENAI_USE_VERTEXAI="maybe")
    assert "GOOGLE_GENAI_USE_VERTEXAI='maybe'" in line and "valid boolean" in line


def test_json_values_and_secrets(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    [line] = fail(monkeypatch, capsys, INTERLOPER_CATALOG="not json")
    assert "INTERLOPER_CATALOG: not valid JSON" in line
    monkeypatch.delenv("INTERLOPER_CATALOG")
    monkeypatch.setenv("INTERLOPER_AUTH_CLIENT_SECRET", "hunter2")
    [line] = fail(monkeypatch, capsys, INTERLOPER_AUTH_SESSION_EXPIRY_DAYS="x")
    assert "hunter2" not in line


def test_valid_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERLOPER_AUTH_SESSION_EXPIRY_DAYS", "7")
    assert load_settings("interloper-test", Settings).auth.session_expiry_days == 7
