"""Waiting for something the test can observe, and free ports for the servers the tests start."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Call ``predicate`` every ``interval`` seconds until it returns something true, and return that; fail the test
    after ``timeout`` seconds. Wait for a condition, never for a fixed time: a fixed time is too short on a busy
    machine and too long everywhere else."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
