"""Logs hold no secrets and no e-mail local parts: a failed statement names no bound parameters (hide_parameters on
the product's engines), and the scrubbing step of breitband.logging masks tokens, webhook secrets, Bearer headers,
URL and configured passwords and e-mail addresses in messages, extra fields and exception text.

The API, the worker and the CLI each run in a process of their own here, set up their logging as they do in
production, and their real handler's output (stderr) is read back line by line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy.engine import make_url

from breitband.logging import scrub

PASSWORD = "Geheim-Passwort-123"
WEBHOOK_SECRET = "whsec_bXktd2ViaG9vay1zZWNyZXQtdGhhdC1tdXN0LW5vdC1sZWFr"


def run(script: str, *, returncode: int = 0, **env: str) -> tuple[list[dict], str]:
    """Run ``script`` in a fresh interpreter (the test environment: test database and broker) → (the JSON lines on
    its stderr, all of stderr)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})
    assert proc.returncode == returncode, proc.stderr
    return [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")], proc.stderr


def test_scrub_masks_each_known_shape():
    token = "bb_" + "Tq3vX9_zK-" * 4 + "abc"                        # TOKEN_PREFIX + token_urlsafe(32): 43 chars
    cases = {
        f"token {token} rejected": "token bb_*** rejected",
        f"signing with {WEBHOOK_SECRET}.": "signing with whsec_***.",
        "Authorization: Bearer abc.DEF-123_~+/=": "Authorization: Bearer ***",
        "Authorization: Basic dXNlcjpwYXNz": "Authorization: Basic ***",
        "postgresql+psycopg://breitband:s3cr%40t@db.example:5432/breitband":
            "postgresql+psycopg://breitband:***@db.example:5432/breitband",
        "redis://:hunter2hunter2@redis:6379/0": "redis://:***@redis:6379/0",
        "smtp_password=Sommer2026! next": "smtp_password=*** next",
        '{"signing_key_passphrase": "zwei Worte", "n": 1}': '{"signing_key_passphrase": ***, "n": 1}',
        "recipient refused: 550 <rita.zuverlaessig@zuverlaessig-netz.example>":
            "recipient refused: 550 <***@zuverlaessig-netz.example>",
        # left alone: URLs without a password, token prefixes as shown in lists, worker names
        "postgresql+psycopg://postgres@127.0.0.1/breitband": "postgresql+psycopg://postgres@127.0.0.1/breitband",
        "token prefix bb_abc1234": "token prefix bb_abc1234",
        "worker breitband@vm ready": "worker breitband@vm ready",
    }
    for text, expected in cases.items():
        assert scrub(text) == expected, text
    assert scrub("no user rita@zuverlaessig-netz.example", personal_data=False) == (
        "no user rita@zuverlaessig-netz.example")


def test_api_a_failed_statement_logs_no_parameters_and_tokens_and_passwords_are_masked(engine, world):
    """The API's set-up (create_app) and engines (Database.from_settings); the failed INSERT is logged the way the
    middleware logs an unhandled exception. The replica URL carries a password (the test server trusts local
    connections, so it is accepted and ignored)."""
    token = world.operator_member.token
    replica = make_url(os.environ["BREITBAND_DATABASE_URL"]).set(password=PASSWORD).render_as_string(
        hide_password=False)
    lines, raw = run(f"""
        import logging, uuid
        from datetime import datetime, timezone
        from breitband.app import create_app
        from breitband.db import Database
        from breitband.settings import get_settings
        from notifications.models import WebhookSubscription

        settings = get_settings()
        create_app(settings)
        db = Database.from_settings(settings)
        log = logging.getLogger("breitband.access")
        now = datetime.now(timezone.utc)
        with db.sessionmaker() as session:
            session.add(WebhookSubscription(
                id=uuid.uuid4(), tenant_key="no-such-tenant", organisation_id=uuid.uuid4(),
                url="https://gis.example/hooks", secret={WEBHOOK_SECRET!r}, event_types=[],
                description="Kontakt rita.zuverlaessig@zuverlaessig-netz.example", active=True,
                created_at=now, updated_at=now))
            try:
                session.flush()
            except Exception:
                log.exception("unhandled exception", extra={{"method": "POST", "path": "/api/v1/webhooks"}})
        try:
            raise PermissionError("token {token} is not valid for this tenant")
        except PermissionError:
            log.exception("request failed", extra={{"headers": {{"authorization": "Bearer {token}"}}}})
        with db.readonly_sessionmaker() as session:
            session.execute(__import__("sqlalchemy").text("SELECT 1"))
        log.warning("replica at %s is slow", settings.database_readonly_url)
        log.warning("SMTP login failed with %s", {PASSWORD!r})
        db.dispose()
    """, BREITBAND_DATABASE_READONLY_URL=replica, BREITBAND_LOG_LEVEL="INFO")
    for secret in (WEBHOOK_SECRET, token, PASSWORD, "rita.zuverlaessig@"):
        assert secret not in raw, secret
    failed, denied, slow, smtp = [line for line in lines if line["logger"] == "breitband.access"]
    assert (failed["level"], failed["msg"], failed["path"]) == ("error", "unhandled exception", "/api/v1/webhooks")
    assert "IntegrityError" in failed["exc"] and "ForeignKeyViolation" in failed["exc"]
    assert "[SQL parameters hidden due to hide_parameters=True]" in failed["exc"]
    assert denied["exc"].rstrip().endswith("PermissionError: token bb_*** is not valid for this tenant")
    assert denied["headers"] == {"authorization": "***"}
    assert slow["msg"] == "replica at " + replica.replace(PASSWORD, "***") + " is slow"
    assert smtp["msg"] == "SMTP login failed with ***"


@pytest.mark.worker
def test_worker_task_failures_are_logged_through_the_scrubbing_handler():
    """A real worker (Celery's in-thread test worker, which sets up logging as `breitband worker` does, through the
    setup_logging signal) runs a task that fails with a token and a webhook secret in its arguments and message."""
    token = "bb_" + "w0rker-T0ken_" * 3 + "abcd"
    lines, raw = run(f"""
        import uuid
        from celery.contrib.testing.worker import start_worker
        from breitband.celery import celery_app

        celery_app.conf.task_default_queue = "leak-" + uuid.uuid4().hex     # nothing else of the test broker

        @celery_app.task(name="tests.leak")
        def leak(secret, contact):
            raise ValueError(f"cannot sign with {{secret}} for {{contact}} using {token}")

        with start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="INFO"):
            leak.delay({WEBHOOK_SECRET!r}, "rita.zuverlaessig@zuverlaessig-netz.example").get(
                timeout=30, propagate=False)
    """)
    for secret in (WEBHOOK_SECRET, token, "rita.zuverlaessig@"):
        assert secret not in raw, secret
    [failure] = [line for line in lines if line["logger"] == "celery.app.trace" and line["level"] == "error"]
    assert "raised unexpected: ValueError('cannot sign with whsec_*** for ***@zuverlaessig-netz.example using " \
           "bb_***')" in failure["msg"], failure["msg"]
    assert failure["exc"].rstrip().endswith(
        "ValueError: cannot sign with whsec_*** for ***@zuverlaessig-netz.example using bb_***")


def test_cli_logs_and_errors_are_scrubbed():
    """The `breitband` entry point (cli.main) with a command that logs and then fails with URLs holding a password,
    as a failed connection's message would."""
    lines, raw = run(f"""
        import logging, sys
        from breitband import cli

        @cli.app.command("leak")
        def leak():
            logging.getLogger("breitband.cli").warning("using %s", "redis://:{PASSWORD}@10.0.0.7:6379/0")
            logging.getLogger("breitband.cli").info("not shown: the CLI logs warnings and errors only")
            cli.fail("cannot connect to postgresql://breitband:{PASSWORD}@10.0.0.8/breitband as rita@example.org")

        sys.argv = ["breitband", "leak"]
        cli.main()
    """, returncode=1)
    assert PASSWORD not in raw
    [line] = lines
    assert (line["logger"], line["level"], line["msg"]) == ("breitband.cli", "warning",
                                                            "using redis://:***@10.0.0.7:6379/0")
    assert raw.splitlines()[-1] == ("error: cannot connect to postgresql://breitband:***@10.0.0.8/breitband as "
                                    "rita@example.org")             # the operator sees the address they typed
