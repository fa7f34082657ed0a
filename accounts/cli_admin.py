"""`breitband user invite` and `breitband user reset-password`: the first admin of a tenant (and anyone locked out
of the web app) gets a link by e-mail from the command line. Both add to the `user` group of breitband/cli.py."""

from __future__ import annotations

import json

import typer

from accounts import links
from accounts.events import Origin
from breitband import identity
from breitband.db import get_database


def user_group(app: typer.Typer) -> typer.Typer:
    """The existing `user` group of the command line."""
    for group in app.registered_groups:
        if group.name == "user":
            return group.typer_instance
    raise RuntimeError("breitband.cli has no `user` group to add the invitation commands to")


def _echo(data: dict) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def register(app: typer.Typer) -> None:
    users = user_group(app)

    @users.command("invite")
    def invite(tenant: str = typer.Option(..., help="Tenant key"),
               org: str = typer.Option(..., help="Organisation id or exact name"),
               email: str = typer.Option(..., help="The new user's e-mail address (the sign-in name)"),
               name: str = typer.Option(..., help="The new user's name"),
               role: str = typer.Option(..., help="operator_member | operator_admin | authority_reviewer | "
                                                  "authority_admin | tenant_admin")) -> None:
        """Create a user without a password and e-mail the invitation link (valid BREITBAND_ACCOUNT_LINK_HOURS,
        24). The e-mail is sent by the worker (or `breitband outbox deliver`)."""
        with get_database().transaction() as session:
            organisation = identity.find_organisation(session, tenant, org)
            user = identity.create_user(session, organisation, email, name, role)
            issued = links.invite(session, user, None, Origin.cli())
            out = {"id": str(user.id), "email": user.email, "role": user.role, "organisation": organisation.name,
                   "invitation_expires_at": issued.link.expires_at}
        _echo(out)

    @users.command("reset-password")
    def reset_password(tenant: str = typer.Option(..., help="Tenant key"),
                       email: str = typer.Option(..., help="The user's e-mail address")) -> None:
        """E-mail the user a link to set a new password (valid BREITBAND_ACCOUNT_LINK_HOURS, 24). Unlike the
        public form this says when nothing was sent: unknown or deactivated user (exit 1), or one sent in the last
        5 minutes (exit 1)."""
        with get_database().transaction() as session:
            user = identity.find_user(session, tenant, email)
            if not user.active:
                typer.echo(f"error: {user.email} is deactivated; reactivate the user first", err=True)
                raise typer.Exit(1)
            issued = links.request_reset(session, tenant, user.email, Origin.cli())
            out = {"id": str(user.id), "email": user.email, "sent": issued is not None,
                   "expires_at": issued.link.expires_at if issued else None}
        _echo(out)
        if issued is None:
            typer.echo("error: a reset link was sent to this address less than 5 minutes ago; nothing sent",
                       err=True)
            raise typer.Exit(1)
