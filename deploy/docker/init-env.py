#!/usr/bin/env python3
"""Create `.env` from `.env.example` with fresh random secrets (used by `make compose-up`).

Leaves an existing `.env` untouched (PostgreSQL keeps the password it was initialised with).
Replaces INTERLOPER_INTERNAL_SECRET, INTERLOPER_POSTGRES_PASSWORD, the per-service PostgreSQL
and NATS passwords (POSTGRES_<SERVICE>_PASSWORD, NATS_<USER>_PASSWORD) and the development
encryption key (INTERLOPER_ENCRYPTION_KEYS / INTERLOPER_ENCRYPTION_ACTIVE_KEY).

    python3 deploy/docker/init-env.py [--example .env.example] [--output .env]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

PG_SERVICES = ("IDENTITY", "PIPELINES", "NOTIFICATIONS", "AGENT")
NATS_USERS = ("ADMIN", "IDENTITY", "PIPELINES", "GATEWAY", "NOTIFICATIONS")


def fresh_values() -> dict[str, str]:
    key_id = "k" + datetime.now(UTC).strftime("%Y%m%d")
    key = base64.b64encode(os.urandom(32)).decode()
    return {
        "INTERLOPER_INTERNAL_SECRET": secrets.token_urlsafe(48),
        "INTERLOPER_POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "INTERLOPER_ENCRYPTION_KEYS": "'" + json.dumps({key_id: key}) + "'",
        "INTERLOPER_ENCRYPTION_ACTIVE_KEY": key_id,
        **{f"POSTGRES_{s}_PASSWORD": secrets.token_urlsafe(24) for s in PG_SERVICES},
        **{f"NATS_{u}_PASSWORD": secrets.token_urlsafe(24) for u in NATS_USERS},
    }


def render(example: str, values: dict[str, str]) -> str:
    """`example` with the active (uncommented) lines of `values`' names replaced."""
    out = []
    seen = set()
    for line in example.splitlines(keepends=True):
        name, sep, _ = line.partition("=")
        if sep and name in values and not line.lstrip().startswith("#"):
            out.append(f"{name}={values[name]}\n")
            seen.add(name)
        else:
            out.append(line)
    missing = set(values) - seen
    if missing:
        raise SystemExit(f"{', '.join(sorted(missing))} not found in the example file")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default=".env.example")
    parser.add_argument("--output", default=".env")
    args = parser.parse_args(argv)
    output = Path(args.output)
    if output.exists():
        print(f"{output} exists: left as it is")
        return 0
    text = render(Path(args.example).read_text(encoding="utf-8"), fresh_values())
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"created {output} from {args.example} with fresh secrets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
