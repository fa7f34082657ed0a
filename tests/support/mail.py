"""A real SMTP server (aiosmtpd) in the test process that keeps what it receives."""

from __future__ import annotations

import email.policy
from dataclasses import dataclass, field
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support.waiting import free_port


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
    """The SMTP server, running, and the settings pointing at it."""
    server = SmtpServer(port=free_port())
    monkeypatch.setattr(settings, "smtp_host", "127.0.0.1")
    monkeypatch.setattr(settings, "smtp_port", server.port)
    server.start()
    yield server
    server.stop()
