"""Secret fields of resource data, masked for viewers (issue 15, item 6).

A field is secret when the catalog's `config_schema` marks it (`format: password`, `writeOnly`,
`x-widget: password`, what `il.SecretField` produces) or when its name is a well-known secret name
(`password`, `client_secret`, `refresh_token`, `api_key`, `private_key`, ... also inside nested
objects). A viewer gets `MASK` instead of a non-empty secret value; editors and admins get the data
as stored (the web UI's edit form needs it). A `MASK` sent back in a create/update body stands for
"unchanged": it is replaced by the stored value at the same place, and refused (422) where there is
none, so the sentinel itself is never stored."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from icp_common.errors import Unprocessable
from icp_common.identity import ROLE_RANK, Identity

MASK = "\u2022" * 8  # "••••••••": what a viewer sees instead of a secret
_SECRET_NAME = re.compile(
    r"(^|_)(password|passwd|passphrase|secret|token|api_?key|private_?key|access_?key|secret_?key|"
    r"credentials?|dsn|connection_string)$"
)


def sees_secrets(identity: Identity) -> bool:
    """Editors, admins and internal (system) callers read secrets; viewers do not."""
    return identity.state == "system" or ROLE_RANK.get(identity.role or "", 0) >= ROLE_RANK["editor"]


def secret_fields(schema: Any) -> set[str]:
    """Top-level property names the catalog's `config_schema` marks as secret."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return set()
    return {
        name
        for name, prop in properties.items()
        if isinstance(prop, dict)
        and (prop.get("format") == "password" or prop.get("writeOnly") is True or prop.get("x-widget") == "password")
    }


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name.lower().replace("-", "_")))


def mask(data: dict[str, Any], secret: Collection[str] = ()) -> dict[str, Any]:
    """A copy of `data` with every non-empty secret value replaced by `MASK`."""
    return {key: _mask_value(key, value, key in secret) for key, value in data.items()}


def _mask_value(key: str, value: Any, secret: bool) -> Any:
    if (secret or is_secret_name(key)) and value not in (None, ""):
        return MASK
    if isinstance(value, dict):
        return mask(value)
    if isinstance(value, list):
        return [mask(item) if isinstance(item, dict) else item for item in value]
    return value


def secret_values(data: Any, secret: Collection[str] = ()) -> set[str]:
    """Every non-empty string value `mask` would hide (the worker masks them in a run's logs)."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if (key in secret or is_secret_name(str(key))) and isinstance(value, str) and value:
                found.add(value)
            else:
                found |= secret_values(value)
    elif isinstance(data, list):
        for item in data:
            found |= secret_values(item)
    return found


def restore(data: dict[str, Any], stored: dict[str, Any], path: tuple[str | int, ...] = ()) -> dict[str, Any]:
    """`data` with every `MASK` replaced by the stored value at the same place (422 where none)."""
    return {key: _restore_value(value, stored, key, (*path, key)) for key, value in data.items()}


def _restore_value(value: Any, stored: Any, key: str | int, path: tuple[str | int, ...]) -> Any:
    if isinstance(stored, dict):
        before = stored.get(key, _MISSING) if isinstance(key, str) else _MISSING
    elif isinstance(stored, list) and isinstance(key, int) and key < len(stored):
        before = stored[key]
    else:
        before = _MISSING
    if value == MASK:
        if before is _MISSING or before == MASK:
            raise Unprocessable(
                [
                    {
                        "type": "masked_value",
                        "loc": ["body", "data", *path],
                        "msg": "A masked value can only stand for a value that is already stored",
                        "input": value,
                    }
                ]
            )
        return before
    if isinstance(value, dict):
        return {k: _restore_value(v, before, k, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_value(v, before, i, (*path, i)) for i, v in enumerate(value)]
    return value


_MISSING: Any = object()
