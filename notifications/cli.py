"""`breitband outbox ...`: publish events and deliver notifications by hand (what beat does every few seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from sqlalchemy import select

from breitband import clock
from breitband.db import get_database
from breitband.settings import get_settings
from notifications import delivery, mailcatcher, outbox
from notifications.models import Delivery


def register(app: typer.Typer) -> None:
    outbox_app = typer.Typer(help="The outbox: publish events, deliver e-mails and webhooks.", no_args_is_help=True)
    app.add_typer(outbox_app, name="outbox")

    @outbox_app.command("relay")
    def relay_cmd() -> None:
        """Publish every unpublished event now and enqueue the deliveries (safe to repeat)."""
        typer.echo(json.dumps(outbox.relay(get_database()), indent=2))

    @outbox_app.command("deliver")
    def deliver_cmd() -> None:
        """Try every due delivery now, in this process (no worker needed)."""
        db = get_database()
        with db.transaction() as session:
            ids = list(session.scalars(select(Delivery.id).where(Delivery.status.in_(delivery.DUE_STATUSES),
                                                                 Delivery.next_attempt_at <= clock.now())
                                       .order_by(Delivery.next_attempt_at)))
        results = [delivery.deliver(db, i) for i in ids]
        summary: dict[str, int] = {}
        for r in results:
            summary[r["status"]] = summary.get(r["status"], 0) + 1
        typer.echo(json.dumps({"tried": len(ids), "by_status": summary}, indent=2))

    @app.command("mailcatcher")
    def mailcatcher_cmd(host: str = typer.Option(None, help="Address to listen on (default BREITBAND_SMTP_HOST)"),
                        port: int = typer.Option(None, help="Port (default BREITBAND_SMTP_PORT, 1025)"),
                        directory: Path = typer.Option(None, help="Maildir (default <BREITBAND_DATA_DIR>/mailcatcher)"),
                        ) -> None:
        """A local SMTP server for the demo that keeps every message instead of sending it (shown at /dev/mail
        with BREITBAND_DEV_MAIL=true). Runs until Ctrl-C."""
        s = get_settings()
        host, port = host or s.smtp_host, port or s.smtp_port
        target = directory or mailcatcher.maildir_of(s.data_dir)
        try:
            mailcatcher.serve(host, port, target, ready=lambda: typer.echo(
                f"mail catcher listening on {host}:{port}, keeping messages in {target}", err=True))
        except OSError as exc:
            typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
            raise typer.Exit(1) from None
