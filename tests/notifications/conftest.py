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
from datetime import datetime, timezone
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

# The permit fixtures and helpers, by name. Both test directories have a module called conftest and a test module's
# `from conftest import ...` may meet either one, so this one offers everything the permits one does.
globals().update({k: v for k, v in vars(permits_fixtures).items() if not k.startswith("_") and k not in globals()})
lines = permits_fixtures.lines
he = permits_fixtures.he
clock = permits_fixtures.clock
api = permits_fixtures.api
collection, trench, draft_body = permits_fixtures.collection, permits_fixtures.trench, permits_fixtures.draft_body
PROBLEM = permits_fixtures.PROBLEM


from notify_helpers import free_port, wait_for  # noqa: E402,F401


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
    """A real HTTP server: answers ``fail_with`` (with ``fail_body``) to the first ``failures`` requests, then 204;
    each answer after ``delay_s``. Listens on ``host`` (127.0.0.1 unless told otherwise)."""

    port: int
    failures: int = 0
    fail_with: int = 500
    fail_body: bytes = b""
    delay_s: float = 0.0
    host: str = "127.0.0.1"
    requests: list[Hook] = field(default_factory=list)
    server: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/hooks/breitband"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                failing = sum(1 for r in receiver.requests if r.status >= 400) < receiver.failures
                status = receiver.fail_with if failing else 204
                answer = receiver.fail_body if failing else b""
                receiver.requests.append(Hook({k: v for k, v in self.headers.items()}, body, status, time.time()))
                time.sleep(receiver.delay_s)
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        server_class = ThreadingHTTPServer
        if ":" in self.host:
            server_class = type("ThreadingHTTPServer6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        self.server = server_class((self.host, self.port), Handler)
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


# --- committed data for tests with real workers ---------------------------------------------------------------------

@dataclass
class CommittedWorld:
    """People in tenant "he" whose data is COMMITTED (workers use their own connections), and an HTTP client on an
    app whose requests commit. Everything is deleted again afterwards."""

    client: Any
    operator: Any
    admin: Any
    authority: Any                 # a reviewer of Stadt Neu-Isenburg
    body: Any                      # a reviewer of the traffic authority registered for Neu-Isenburg
    operator_org: Any
    body_org: Any
    contact_email: str
    authority_email: str
    body_email: str

    def submit(self, sections: dict, **overrides) -> dict:
        body = draft_body(sections, planned_start="2027-03-01", planned_end="2027-04-30",
                          contact={"name": "Rita Zuverlässig", "email": self.contact_email}, **overrides)
        r = self.client.post("/api/v1/applications", json=body, headers=self.operator.headers)
        assert r.status_code == 201, r.text
        r = self.client.post(f"/api/v1/applications/{r.json()['id']}/submit", json={},
                             headers={**self.operator.headers, "If-Match": r.headers["etag"]})
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def committed(engine, he_data, settings):
    import uuid as _uuid

    from fastapi.testclient import TestClient
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from breitband import identity
    from breitband.app import create_app
    from breitband.db import Database
    from breitband.models import OrgKind, Role
    from notifications import contacts
    from permits.participation import service as participation

    tag = _uuid.uuid4().hex[:8]
    with engine.connect() as conn:
        counters = conn.execute(text("SELECT year, last_value FROM permit_reference_counters "
                                     "WHERE tenant_key = 'he'")).all()
    with Session(bind=engine) as s:
        op = identity.create_organisation(s, "he", OrgKind.operator, f"Zuverlässig Netz {tag} GmbH")
        office = identity.create_organisation(s, "he", OrgKind.operating_office, f"Servicestelle {tag}")
        body_org = identity.create_organisation(s, "he", OrgKind.participating_body,
                                                f"Straßenverkehrsbehörde Neu-Isenburg {tag}")
        participation.add_body(s, "he", body_org, "traffic", "06438009", datetime.now(timezone.utc))
        ni = permits_fixtures.authority_org(s, key=permits_fixtures.NEU_ISENBURG)
        people = {name: permits_fixtures.person(s, org, f"{name}-{tag}@{domain}", role) for name, org, domain, role in (
            ("planer", op, "zuverlaessig-netz.example", Role.operator_member),
            ("admin", office, "servicestelle.example", Role.tenant_admin),
            ("tiefbau", ni, "neu-isenburg.example", Role.authority_reviewer),
            ("svb", body_org, "neu-isenburg.example", Role.authority_reviewer))}
        org_ids = [op.id, office.id, body_org.id]
        # the application's contact confirmed the address, so it gets the operator's notices (contacts.py)
        contacts.mark_confirmed(s, tenant_key="he", org_id=op.id, email=f"kontakt-{tag}@zuverlaessig-netz.example",
                                now=datetime.now(timezone.utc))
        s.commit()
    database = Database.from_settings(settings)
    app = create_app(settings, db=database)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield CommittedWorld(client=client, operator=people["planer"], admin=people["admin"],
                             authority=people["tiefbau"], body=people["svb"], operator_org=org_ids[0],
                             body_org=org_ids[2], contact_email=f"kontakt-{tag}@zuverlaessig-netz.example",
                             authority_email=f"tiefbau-{tag}@neu-isenburg.example",
                             body_email=f"svb-{tag}@neu-isenburg.example")
    database.dispose()
    with engine.begin() as conn:
        apps = [r[0] for r in conn.execute(text("SELECT id FROM applications WHERE applicant_org_id = :o"),
                                           {"o": org_ids[0]})]
        if apps:
            conn.execute(text("DELETE FROM permit_events WHERE application_id = ANY(:a)"), {"a": apps})
            conn.execute(text("DELETE FROM applications WHERE id = ANY(:a)"), {"a": apps})
        conn.execute(text("DELETE FROM users WHERE email LIKE :t"), {"t": f"%-{tag}@%"})
        conn.execute(text("DELETE FROM organisations WHERE id = ANY(:o)"), {"o": org_ids})
        conn.execute(text("DELETE FROM permit_reference_counters WHERE tenant_key = 'he'"))
        for year, value in counters:
            conn.execute(text("INSERT INTO permit_reference_counters VALUES ('he', :y, :v)"), {"y": year, "v": value})


@pytest.fixture(scope="module")
def worker(engine, settings):
    """A real Celery worker (thread, solo pool) on the test broker; stale messages of earlier tests purged."""
    from celery.contrib.testing.worker import start_worker

    from breitband.worker import celery_app

    celery_app.control.purge()
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10,
                      loglevel="WARNING") as w:
        yield w
