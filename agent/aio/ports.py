"""Loopback ports for servers started on this machine (the demo's line, broker and hub, the
tests' peers): one that nothing listens on, and a wait until something does."""

from __future__ import annotations

import contextlib
import os
import socket
import time

PORT_RANGE_ENV = "EDGE_FREE_PORT_RANGE"  # "FIRST-LAST": pick ports there, not from the kernel
_picked: list[int] = []


def free_port() -> int:
    """A port nothing listens on now. By default the kernel's pick from its ephemeral range; in
    a test run with several workers each has its own range below it (EDGE_FREE_PORT_RANGE),
    so two workers never pick the same port and no outgoing connection takes it meanwhile."""
    span = os.environ.get(PORT_RANGE_ENV)
    if span:
        first, last = (int(v) for v in span.split("-"))
        size = last - first + 1
        start = _picked[-1] + 1 - first if _picked else (os.getpid() * 7919) % size
        for step in range(size):
            port = first + (start + step) % size
            with socket.socket() as s, contextlib.suppress(OSError):
                s.bind(("127.0.0.1", port))
                _picked[:] = [port]
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
