"""Free TCP port picking.

Ports are picked at random *below* the kernel's ephemeral range and checked by binding them; the
socket is released and the caller's server binds the port later. Below the ephemeral range matters:
a port the kernel hands out for ``bind(port 0)`` comes from the same range as the source ports of
outgoing connections, so between picking and binding, any of the stack's own clients (PostgreSQL,
NATS, gRPC connections) could take it — seen in CI as ``Address already in use`` when a replica bound
its gRPC port. A port handed out by this process is remembered so two calls never return the same one.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from pathlib import Path

LOCALHOST = "127.0.0.1"
# Lowest port picked: above the well-known/registered ports most developer tools listen on.
PICK_FROM = 20000
_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_FALLBACK_EPHEMERAL_START = 32768  # Linux's default when /proc is unreadable

_lock = threading.Lock()
_handed_out: set[int] = set()
_random = random.SystemRandom()


def ephemeral_start() -> int:
    """First port of the kernel's ephemeral (outgoing connection) range."""
    try:
        return int(_EPHEMERAL_RANGE_FILE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_EPHEMERAL_START


def _candidate_range() -> range | None:
    """Ports to pick from, or None when the ephemeral range leaves too little room below it."""
    end = ephemeral_start()
    return range(PICK_FROM, end) if end - PICK_FROM >= 2000 else None


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """True when nothing listens on ``host:port`` and it can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers bind with SO_REUSEADDR, so connections in TIME_WAIT do not make a port busy for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that is free on ``host`` now and was not handed out before by this process."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = LOCALHOST) -> list[int]:
    """``count`` distinct free TCP ports (all sockets are held until every port is picked)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    candidates = _candidate_range()
    held: list[socket.socket] = []
    ports: list[int] = []
    with _lock:
        try:
            attempts = 0
            while len(ports) < count:
                attempts += 1
                if attempts > count * 50 + 100:
                    raise RuntimeError(f"could not find {count} free ports on {host}")
                wanted = _random.choice(candidates) if candidates is not None else 0
                if wanted in _handed_out or wanted in ports:
                    continue
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)
                try:
                    sock.bind((host, wanted))
                except OSError:
                    continue  # in use (or in TIME_WAIT without SO_REUSEADDR): try another
                port = int(sock.getsockname()[1])
                if port in _handed_out or port in ports:
                    continue
                ports.append(port)
            _handed_out.update(ports)
        finally:
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.close()
    return ports


def wait_port_free(port: int, host: str = LOCALHOST, timeout: float = 5.0) -> bool:
    """Poll until ``port`` can be bound (e.g. after a server stopped). False on timeout."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        if port_is_free(port, host):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
