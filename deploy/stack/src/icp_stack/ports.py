"""Free TCP port picking.

Ports are chosen by binding port 0 on the loopback interface and releasing the socket. A port handed
out by this process is remembered so that two calls never return the same port, even if the kernel
would hand it out again before the caller binds it.
"""

from __future__ import annotations

import contextlib
import socket
import threading

LOCALHOST = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()


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
    held: list[socket.socket] = []
    ports: list[int] = []
    with _lock:
        try:
            attempts = 0
            while len(ports) < count:
                attempts += 1
                if attempts > count * 50 + 100:
                    raise RuntimeError(f"could not find {count} free ports on {host}")
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)
                sock.bind((host, 0))
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
