"""`breitband outbox ...`: publish events and deliver notifications by hand (what beat does every few seconds)."""

from __future__ import annotations

import json

import typer
from sqlalchemy import select

from breitband import clock
from breitband.db import get_database
from notifications import delivery, outbox
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
