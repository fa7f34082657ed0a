"""Migration 0010: webhook tries written before the log kept only classes lose the receiver's answer and the error
text; the status code, timing and the e-mail tries' SMTP replies stay."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from breitband.migrate import create_database, drop_database, upgrade
from tests.conftest import TEST_DATABASE_URL

AT = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)


def test_old_webhook_tries_keep_status_and_class_only():
    url = make_url(TEST_DATABASE_URL).set(database="breitband_test_migration_0010").render_as_string(
        hide_password=False)
    drop_database(url)
    create_database(url)
    engine = create_engine(url)
    try:
        upgrade(url, "0009")
        ids = {name: uuid.uuid4() for name in ("event", "org", "hook", "mail", "sub")}
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants (key, name, srid, rules) VALUES ('xm', 'M', 25832, '{}')"))
            conn.execute(text("INSERT INTO permit_events (id, tenant_key, type, payload, created_at) "
                              "VALUES (:id, 'xm', 'application.submitted', '{}', :at)"), {"id": ids["event"], "at": AT})
            for key, channel, target, last_error in (
                    ("hook", "webhook", "https://10.0.0.5/hook", "ConnectError: [Errno 111] Connection refused"),
                    ("mail", "email", "pruefer@example.org", "SMTP 451 try later")):
                conn.execute(text(
                    "INSERT INTO notification_deliveries (id, tenant_key, event_id, event_type, channel, target, "
                    "context, status, attempts, next_attempt_at, last_error, created_at, updated_at) VALUES "
                    "(:id, 'xm', :ev, 'application.submitted', :ch, :t, '{}', 'retrying', 2, :at, :err, :at, :at)"),
                    {"id": ids[key], "ev": ids["event"], "ch": channel, "t": target, "at": AT, "err": last_error})
            for key, number, status, excerpt, error in (
                    ("hook", 1, 500, "<html>secret-internal-page</html>", "HTTP 500"),
                    ("hook", 2, None, None, "ConnectError: [Errno 111] Connection refused"),
                    ("mail", 1, None, "451 4.3.0 try later", "SMTP 451 try later")):
                conn.execute(text(
                    "INSERT INTO notification_attempts (delivery_id, number, started_at, finished_at, ok, "
                    "response_status, response_excerpt, error) VALUES (:d, :n, :at, :at, false, :s, :x, :e)"),
                    {"d": ids[key], "n": number, "at": AT, "s": status, "x": excerpt, "e": error})
        upgrade(url, "head")
        with engine.connect() as conn:
            tries = conn.execute(text("SELECT delivery_id, number, response_status, response_excerpt, error "
                                      "FROM notification_attempts ORDER BY delivery_id = :mail, number"),
                                 {"mail": ids["mail"]}).all()
            last = dict(conn.execute(text("SELECT channel, last_error FROM notification_deliveries")).all())
        assert [tuple(t)[1:] for t in tries] == [
            (1, 500, None, "http-error"), (2, None, None, "connection-refused"),
            (1, None, "451 4.3.0 try later", "SMTP 451 try later")]
        assert last == {"webhook": "connection-refused", "email": "SMTP 451 try later"}
    finally:
        engine.dispose()
        drop_database(url)
