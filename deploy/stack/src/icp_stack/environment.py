"""Variables the stack sets itself for every process, checked in the launcher's environment
before anything starts: a value given there is never used, so it must not pass unnoticed."""

from __future__ import annotations

from collections.abc import Mapping

PUBLIC_PORT_HINT = "the public port is --http-port (`make run HTTP_PORT=8090`)"
OWN_PORTS = ("INTERLOPER_HTTP_PORT", "INTERLOPER_GRPC_PORT")


def _is_port(value: str) -> bool:
    return value.strip().isdigit() and 0 < int(value) < 65536


def check_environment(environ: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(errors, notes): an invalid value is an error, a valid one a note that it is not used."""
    errors: list[str] = []
    notes: list[str] = []
    for name in OWN_PORTS:
        value = environ.get(name)
        if value is None:
            continue
        if not _is_port(value):
            errors.append(
                f"{name}={value!r}: not a port number (an integer from 1 to 65535); besides, the stack gives "
                f"each process its own port: {PUBLIC_PORT_HINT}"
            )
        else:
            notes.append(f"{name}={value} is not used: the stack gives each process its own port; {PUBLIC_PORT_HINT}")
    return errors, notes
