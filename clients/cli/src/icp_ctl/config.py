"""Where the URL and token come from: flags, then `INTERLOPER_URL`/`INTERLOPER_TOKEN`, then the
file `interloper-ctl login` writes (`$XDG_CONFIG_HOME/interloper/ctl.json`, mode 0600)."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8080"


class ConfigError(Exception):
    """No usable configuration (exit status 2, like a usage error)."""


@dataclass(frozen=True)
class Settings:
    url: str
    token: str | None
    session: str | None = None


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "interloper" / "ctl.json"


def read_file(path: Path | None = None) -> dict[str, str]:
    """The stored settings, or {} without a file. A file others may read is refused: it holds a
    secret, and a token readable by other users is as good as leaked (as ssh does with keys)."""
    path = path or config_path()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): run chmod 600 {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def write_file(url: str, token: str, path: Path | None = None) -> Path:
    """Stores url+token with mode 0600 (created so, never briefly wider), the directory 0700."""
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"url": url, "token": token}, handle)
        handle.write("\n")
    return path


def resolve(url: str | None, token: str | None, *, need_token: bool = True) -> Settings:
    stored = read_file()
    url = (url or os.environ.get("INTERLOPER_URL") or stored.get("url") or DEFAULT_URL).rstrip("/")
    # The stored token goes only to the server it was stored for, never to another --url.
    saved = stored.get("token") if stored.get("url", "").rstrip("/") == url else None
    token = token or os.environ.get("INTERLOPER_TOKEN") or saved
    session = os.environ.get("INTERLOPER_SESSION") or None
    if need_token and not token and not session:
        raise ConfigError("no API token: set INTERLOPER_TOKEN, pass --token, or run `interloper-ctl login`")
    return Settings(url=url, token=token or None, session=session)


def cleartext(url: str) -> bool:
    """True when a token would cross a network unencrypted: http:// to a host other than loopback."""
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") not in ("127.0.0.1", "localhost", "::1")
