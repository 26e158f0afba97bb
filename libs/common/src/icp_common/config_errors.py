"""Bad configuration as one line per environment variable, not a pydantic traceback.

pydantic names the field (`session_expiry_days` of `AuthSettings`); a person set the variable
(`INTERLOPER_AUTH_SESSION_EXPIRY_DAYS`). `load_settings` builds a settings class and, when a
variable does not validate, prints `<prog>: configuration error: <VARIABLE>=<value>: <what was
expected>` for each one and exits with EX_CONFIG (78), so a supervisor can tell a configuration
error (no use restarting) from a crash."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar, get_args

from pydantic import AliasChoices, AliasPath, BaseModel, ValidationError
from pydantic_settings import BaseSettings, SettingsError

CONFIG_ERROR_EXIT = 78  # EX_CONFIG of sysexits.h

T = TypeVar("T")


def _models(root: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """The root settings class and every settings class nested in its fields."""
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [root]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        yield model
        for field in model.model_fields.values():
            for kind in (field.annotation, *get_args(field.annotation)):
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    todo.append(kind)


def _variable(model: type[BaseModel], name: str) -> str:
    field = model.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        names = [c for c in alias.choices if isinstance(c, str)]
        if names:
            return " / ".join(names)
    if isinstance(alias, AliasPath):
        return str(alias.path[0])
    prefix = str(model.model_config.get("env_prefix", "")) if issubclass(model, BaseSettings) else ""
    return f"{prefix}{name}".upper()


def _is_secret(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    return field is not None and "Secret" in repr(field.annotation)


class _Unknown(BaseModel):
    """Stands for a settings class that is not known (variables then named from the field)."""


def describe(exc: ValidationError, root: type[BaseModel] | None) -> list[str]:
    """One line per invalid variable: `VARIABLE='value': message`."""
    models = list(_models(root)) if root is not None else []
    model: type[BaseModel] = next((m for m in models if m.__name__ == exc.title), root or _Unknown)
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        current = model
        # A nested settings object validated through its parent: descend to the field's owner.
        while len(loc) > 1 and (nested := _nested(current, loc[0])) is not None:
            current, loc = nested, loc[1:]
        name = loc[0] if loc else ""
        variable = _variable(current, name) if name else current.__name__
        shown = "" if _is_secret(current, name) or "input" not in error else f"={_redacted(error['input'])!r}"
        message = error["msg"]
        if len(loc) > 1:
            message = f"{message} (at {'.'.join(loc[1:])})"
        lines.append(f"{variable}{shown}: {message}")
    return lines


_SECRET_KEY = re.compile(r"secret|password|token", re.IGNORECASE)


def _redacted(value: object) -> object:
    """`value` with the values of secret-looking keys masked (a JSON list of objects, such as
    INTERLOPER_AUTH_OIDC_PROVIDERS, is shown whole when the list itself is refused)."""
    if isinstance(value, dict):
        return {k: "**********" if _SECRET_KEY.search(str(k)) else _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


def _nested(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    field = model.model_fields.get(name)
    kind = field.annotation if field is not None else None
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def load_settings(prog: str, factory: Callable[[], T]) -> T:
    """`factory()` (a settings class, or a function building one); on a validation error print
    one line per bad variable on stderr and exit with CONFIG_ERROR_EXIT."""
    root = factory if isinstance(factory, type) and issubclass(factory, BaseModel) else None
    try:
        return factory()
    except ValidationError as exc:
        lines = describe(exc, root)
    except SettingsError as exc:  # a complex value (list, dict) that is not JSON
        lines = [describe_parse_error(exc, root)]
    for line in lines:
        print(f"{prog}: configuration error: {line}", file=sys.stderr)
    sys.exit(CONFIG_ERROR_EXIT)


def describe_parse_error(exc: SettingsError, root: type[BaseModel] | None) -> str:
    found = re.search(r'field "([^"]+)"', str(exc))
    if found is None:
        return str(exc)
    name = found.group(1)
    owner = next((m for m in (_models(root) if root else ()) if name in m.model_fields), None)
    variable = _variable(owner, name) if owner else name.upper()
    return f"{variable}: not valid JSON (a JSON list or object is expected here)"
