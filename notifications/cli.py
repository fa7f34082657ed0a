"""`breitband outbox ...`: publish events and deliver notifications by hand (what beat does every few seconds)."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    import notifications.outbox  # noqa: F401  (after-commit hook: commands that write events kick the relay)

    outbox_app = typer.Typer(help="The outbox: publish events, deliver e-mails and webhooks.", no_args_is_help=True)
    app.add_typer(outbox_app, name="outbox")

    @outbox_app.command("relay")
    def relay_cmd() -> None:
        """Publish every unpublished event now and enqueue the deliveries (safe to repeat)."""
        from breitband.db import get_database
        from notifications.outbox import relay

        typer.echo(json.dumps(relay(get_database()), indent=2))

    @outbox_app.command("deliver")
    def deliver_cmd() -> None:
        """Try every due delivery now, in this process (no worker needed)."""
        from sqlalchemy import select

        from breitband.db import get_database
        from notifications.delivery import DUE_STATUSES, deliver, utcnow
        from notifications.models import Delivery

        db = get_database()
        with db.sessionmaker() as session:
            ids = list(session.scalars(select(Delivery.id).where(Delivery.status.in_(DUE_STATUSES),
                                                                 Delivery.next_attempt_at <= utcnow())
                                       .order_by(Delivery.next_attempt_at)))
        results = [deliver(db, i) for i in ids]
        summary: dict[str, int] = {}
        for r in results:
            summary[r["status"]] = summary.get(r["status"], 0) + 1
        typer.echo(json.dumps({"tried": len(ids), "by_status": summary}, indent=2))
