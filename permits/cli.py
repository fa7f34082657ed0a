"""Permit commands of the `breitband` command line: deadlines and the conditions catalogue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    deadlines_app = typer.Typer(help="Statutory deadlines: issue deemed approvals (§ 127 (3) TKG).",
                                no_args_is_help=True)
    conditions_app = typer.Typer(help="The catalogue of standard conditions and refusal reasons per tenant.",
                                 no_args_is_help=True)
    app.add_typer(deadlines_app, name="deadlines")
    app.add_typer(conditions_app, name="conditions")

    @deadlines_app.command("run")
    def deadlines_run(now: Optional[str] = typer.Option(
            None, help="Treat this as the current time (ISO 8601, e.g. 2026-04-16T00:00:00+02:00; a date or a "
                       "time without offset is Europe/Berlin). Default: now."),
            tenant: Optional[str] = typer.Option(None, help="Only this tenant")) -> None:
        """Issue every deemed approval due now (what the beat task does every few minutes). Safe to repeat."""
        from breitband.db import get_database
        from permits import deadlines, deemed

        when = None
        if now is not None:
            try:
                when = deadlines.parse_instant(now)
            except ValueError:
                typer.echo(f"error: --now {now!r} is not an ISO 8601 date or datetime", err=True)
                raise typer.Exit(2) from None
        typer.echo(json.dumps(deemed.sweep(get_database(), when, tenant_key=tenant), indent=2, ensure_ascii=False))

    @conditions_app.command("load")
    def conditions_load(file: Path = typer.Argument(..., help="TOML file with [[conditions]] and [[refusal_reasons]]"),
                        tenant: str = typer.Option(..., help="Tenant key")) -> None:
        """Create or update the tenant's catalogue from FILE; entries missing from FILE are deactivated."""
        from breitband.db import get_database
        from permits.catalogue import load_catalogue, read_catalogue_file

        rows = read_catalogue_file(file)
        with get_database().sessionmaker() as session:
            summary = load_catalogue(session, tenant, rows)
            session.commit()
        typer.echo(json.dumps({"tenant": tenant, **summary}, indent=2))

    @conditions_app.command("list")
    def conditions_list(tenant: str = typer.Option(..., help="Tenant key"),
                        inactive: bool = typer.Option(False, "--inactive", help="Include deactivated entries")) -> None:
        """Print the tenant's conditions and refusal reasons."""
        from breitband import identity
        from breitband.db import get_database
        from permits.catalogue import entries
        from permits.models import CatalogueKind

        with get_database().sessionmaker() as session:
            identity.get_tenant(session, tenant)
            out = {kind.value: [{"code": e.code, "title": e.title, "active": e.active}
                                for e in entries(session, tenant, kind, include_inactive=inactive)]
                   for kind in CatalogueKind}
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
