"""Fixtures of the notification tests: the permit fixtures (real routes in tenant "he", people, clock, API helper)
re-exported from tests/permits/conftest.py, a real SMTP server (aiosmtpd) in the test process, and a real HTTP server
receiving webhooks that can be told to fail.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
import email.policy
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

_spec = importlib.util.spec_from_file_location("permits_test_fixtures",
                                               Path(__file__).parent.parent / "permits" / "conftest.py")
permits_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = permits_fixtures
_spec.loader.exec_module(permits_fixtures)

# the permit fixtures, by name
lines = permits_fixtures.lines
he = permits_fixtures.he
clock = permits_fixtures.clock
api = permits_fixtures.api
collection, trench, draft_body = permits_fixtures.collection, permits_fixtures.trench, permits_fixtures.draft_body
PROBLEM = permits_fixtures.PROBLEM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- SMTP ---------------------------------------------------------------------------------------------------------

@dataclass
class Mail:
    mail_from: str
    rcpt: list[str]
    message: Any

    @property
    def subject(self) -> str:
        return str(self.message["Subject"]).strip()   # a long subject is folded onto a continuation line

    @property
    def body(self) -> str:
        return self.message.get_content()


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd) on a fixed port that can be stopped and started again."""

    port: int
    received: list[Mail] = field(default_factory=list)
    controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        server = self

        class Handler:
            async def handle_DATA(self, _server, session, envelope):
                server.received.append(Mail(envelope.mail_from, list(envelope.rcpt_tos),
                                            message_from_bytes(envelope.original_content or envelope.content,
                                                                               policy=email.policy.default)))
                return "250 Message accepted for delivery"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.received if address in m.rcpt]

    def about(self, event_id: str) -> list[Mail]:
        return [m for m in self.received if m.message["X-Breitband-Event-Id"] == event_id]


@pytest.fixture
def smtp(settings, monkeypatch):
    server = SmtpServer(port=free_port())
    monkeypatch.setattr(settings, "smtp_host", "127.0.0.1")
    monkeypatch.setattr(settings, "smtp_port", server.port)
    server.start()
    yield server
    server.stop()


# --- webhook receiver ---------------------------------------------------------------------------------------------

@dataclass
class Hook:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


@dataclass
class WebhookReceiver:
    """A real HTTP server: answers ``fail_with`` to the first ``failures`` requests, then 204."""

    port: int
    failures: int = 0
    fail_with: int = 500
    requests: list[Hook] = field(default_factory=list)
    server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/breitband"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                failing = sum(1 for r in receiver.requests if r.status >= 400) < receiver.failures
                status = receiver.fail_with if failing else 204
                receiver.requests.append(Hook({k: v for k, v in self.headers.items()}, body, status, time.time()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def receiver():
    r = WebhookReceiver(port=free_port())
    r.start()
    yield r
    r.stop()


@pytest.fixture
def task_db(db, monkeypatch):
    """Celery tasks called in the test process (``task.apply()``) use the test's rolled-back database."""
    import breitband.db

    monkeypatch.setattr(breitband.db, "_default_db", db)
    return db
