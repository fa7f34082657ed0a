"""The `breitband user …` commands: create a user (optionally with a password from standard input), set a password,
deactivate and reactivate. They live here, not in the shell's breitband/cli.py, because they apply the password
policy, end sessions and record security events (actor: the command line).

A password is read from standard input, never from an argument (arguments are visible to every user of the machine
in the process list and land in shell histories): ``printf '%s\\n' "$PW" | breitband user set-password …``. On a
terminal it is asked for without echo. A password the policy refuses exits with status 2 and says why.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any

import typer
from sqlalchemy import func, select

from accounts import events, local
from accounts.events import COMMAND_LINE
from breitband import clock, identity, sessions
from breitband.db import get_database
from breitband.errors import UnprocessableEntity
from breitband.models import User

ROLES_HELP = "operator_member | operator_admin | authority_reviewer | authority_admin | tenant_admin"


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def read_password() -> str:
    """One line of standard input without its line end (asked for without echo on a terminal)."""
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    line = sys.stdin.readline()
    password = line[:-1] if line.endswith("\n") else line
    password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise UnprocessableEntity("No password on standard input (one line, e.g. printf '%s\\n' \"$PW\" | …)",
                                  type="password-missing", field="password")
    return password


def user_group(app: typer.Typer) -> typer.Typer:
    """The `user` group made by breitband/cli.py."""
    for group in app.registered_groups:
        if group.name == "user":
            return group.typer_instance
    raise RuntimeError("breitband/cli.py has no `user` command group")


def _valid_tokens(session, user: User) -> int:
    return session.scalar(select(func.count()).select_from(identity.active_tokens(user.id, clock.now()).subquery()))


def set_active(tenant: str, email: str, active: bool) -> dict[str, Any]:
    """Deactivate (ending every session) or reactivate; recorded as a security event when something changed."""
    with get_database().transaction() as session:
        user = identity.find_user(session, tenant, email)
        changed = identity.set_user_active(session, user, active)
        ended = 0 if active else sessions.end_all(session, user.id)
        if changed:
            events.record(session, "user-reactivated" if active else "user-deactivated", user.tenant_key,
                          user_id=user.id, email=user.email, client=COMMAND_LINE,
                          detail={"before": {"active": not active}, "after": {"active": active},
                                  "sessions_ended": ended})
        return {"id": str(user.id), "email": user.email, "role": user.role, "active": user.active,
                "changed": changed, "valid_tokens": _valid_tokens(session, user), "sessions_ended": ended}


def register(app: typer.Typer) -> None:
    user_app = user_group(app)

    @user_app.command("create")
    def user_create(tenant: str = typer.Option(...), org: str = typer.Option(..., help="Organisation id or exact name"),
                    email: str = typer.Option(...), name: str = typer.Option(...),
                    role: str = typer.Option(..., help=ROLES_HELP),
                    password_stdin: bool = typer.Option(False, "--password-stdin",
                                                        help="Read the user's first password from standard input "
                                                             "(policy applied; exit 2 when refused)")) -> None:
        """Create a user in an organisation; without --password-stdin the user has no password yet (invite them,
        or let them sign in by OpenID Connect)."""
        password = read_password() if password_stdin else None
        with get_database().transaction() as session:
            organisation = identity.find_organisation(session, tenant, org)
            user = identity.create_user(session, organisation, email, name, role)
            events.record(session, "user-created", user.tenant_key, user_id=user.id, email=user.email,
                          client=COMMAND_LINE, detail={"role": user.role, "organisation_id": str(organisation.id)})
            if password is not None:
                local.set_password(session, user, password, actor_id=None, client=COMMAND_LINE, how="command line")
            out = {"id": str(user.id), "email": user.email, "role": user.role, "organisation": organisation.name,
                   "password": password is not None}
        echo_json(out)

    @user_app.command("set-password")
    def user_set_password(tenant: str = typer.Option(..., help="Tenant key"),
                          email: str = typer.Option(..., help="The user's e-mail address")) -> None:
        """Set a user's password from standard input (policy applied; exit 2 when refused). Unlocks the account and
        ends the user's browser sessions; API tokens stay."""
        password = read_password()
        with get_database().transaction() as session:
            user = identity.find_user(session, tenant, email)
            ended = local.set_password(session, user, password, actor_id=None, client=COMMAND_LINE,
                                       how="command line")
            out = {"id": str(user.id), "email": user.email, "sessions_ended": ended}
        echo_json(out)

    @user_app.command("deactivate")
    def user_deactivate(tenant: str = typer.Option(..., help="Tenant key"),
                        email: str = typer.Option(..., help="The user's e-mail address")) -> None:
        """Deactivate a user: their browser sessions end, and from the next request on every one of their tokens is
        refused (401 user-deactivated). The tokens are kept (`valid_tokens` counts them) and work again after `user
        reactivate`; revoke them with `token revoke` to end them for good. Deactivating a deactivated user changes
        nothing (`changed: false`)."""
        echo_json(set_active(tenant, email, False))

    @user_app.command("reactivate")
    def user_reactivate(tenant: str = typer.Option(..., help="Tenant key"),
                        email: str = typer.Option(..., help="The user's e-mail address")) -> None:
        """Reactivate a deactivated user: their tokens that are neither revoked nor expired work again; they sign in
        anew."""
        echo_json(set_active(tenant, email, True))


__all__ = ["register"]
