"""A local mail catcher for the demo and development: an SMTP server (aiosmtpd) that keeps every message it receives
in a Maildir instead of sending it on, so a newcomer running ``scripts/run`` sees the notices the service sends.

``breitband mailcatcher`` runs it (``scripts/run`` starts it when nothing else listens on the SMTP port); the web
app shows what it caught at ``/dev/mail`` to tenant admins when ``BREITBAND_DEV_MAIL=true`` (notifications/devmail.py).
Production sends through a real mail server and never enables either.
"""

from __future__ import annotations

import asyncio
import mailbox
import signal
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from aiosmtpd.controller import Controller

ENVELOPE_TO = "X-Breitband-Envelope-To"


def maildir_of(data_dir: Path) -> Path:
    return Path(data_dir) / "mailcatcher"


class MaildirHandler:
    """aiosmtpd handler: every message into the Maildir, with its envelope recipients in a header of ours (Bcc
    recipients are in no header of the message itself)."""

    def __init__(self, directory: Path) -> None:
        directory.parent.mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(directory, create=True)        # creates tmp/, new/, cur/ when missing
        for sub in ("tmp", "new", "cur"):                         # also in a directory that existed empty
            (directory / sub).mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        header = f"{ENVELOPE_TO}: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        self.box.add(header + raw)
        return "250 Message accepted for delivery (kept by the Breitband mail catcher)"


def serve(host: str, port: int, directory: Path, ready=None) -> None:
    """Run until SIGINT/SIGTERM."""
    controller = Controller(MaildirHandler(directory), hostname=host, port=port)
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready()
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()
        loop.close()


@dataclass
class CaughtMessage:
    key: str
    received_at: datetime | None
    sender: str
    recipients: list[str]
    subject: str
    text: str
    headers: dict[str, str]


def _text_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        return part.get_content()
    except (LookupError, UnicodeDecodeError):
        return part.get_payload(decode=True).decode("utf-8", "replace")


def read(directory: Path, limit: int = 100) -> list[CaughtMessage]:
    """The newest ``limit`` messages, newest first."""
    if not directory.is_dir():
        return []
    box = mailbox.Maildir(directory, create=False)
    out = []
    for key in box.keys():
        with box.get_file(key) as fh:
            msg = BytesParser(policy=policy.default).parse(fh)
        try:
            received = parsedate_to_datetime(msg["Date"]) if msg["Date"] else None
        except (TypeError, ValueError):
            received = None
        to = [a.strip() for a in str(msg.get(ENVELOPE_TO, msg.get("To", ""))).split(",") if a.strip()]
        out.append(CaughtMessage(key=key, received_at=received, sender=str(msg.get("From", "")), recipients=to,
                                 subject=str(msg.get("Subject", "")), text=_text_of(msg),
                                 headers={k: str(v) for k, v in msg.items() if k.lower().startswith("x-")
                                          and k != ENVELOPE_TO}))
    out.sort(key=lambda m: m.received_at.timestamp() if m.received_at else 0.0, reverse=True)
    return out[:limit]
