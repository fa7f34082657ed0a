"""The `breitband` command line. Every command has --help; errors print one clear line and exit non-zero."""

from __future__ import annotations

import json
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any, Optional

import psycopg
import typer
from sqlalchemy import or_, select

import accounts.cli
import accounts.cli_admin
import geo.cli
import notifications.cli
import permits.cli
from breitband import backup as backups
from breitband import clock, identity
from breitband.db import get_database
from breitband.demo import load_demo
from breitband.errors import ProblemError
from breitband.logging import configure_logging, scrub
from breitband.migrate import create_database, upgrade
from breitband.models import ApiToken, Organisation, User
from breitband.settings import get_settings
from breitband.worker import app as worker_app
from geo.rules import validate_rules
from geo.service import resolve_file

app = typer.Typer(help="Breitband: permit service for broadband lines in public roads.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
db_app = typer.Typer(help="Database: create and migrate.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants (federal states running the service).", no_args_is_help=True)
org_app = typer.Typer(help="Organisations: operators, road authorities, other bodies, operating office.",
                      no_args_is_help=True)
user_app = typer.Typer(help="Users (commands: accounts/cli.py).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (Bearer). The secret is shown once.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo data set used by scripts/run.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(org_app, name="org")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(demo_app, name="demo")


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {scrub(message, personal_data=False)}", err=True)     # no passwords from exception texts
    raise typer.Exit(code)


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def load_rules(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        fail(f"rules file {path} does not exist")
    except tomllib.TOMLDecodeError as exc:
        fail(f"rules file {path} is not valid TOML: {exc}")
    return None


# --- processes -----------------------------------------------------------------------------------------------

@app.command()
def serve(host: Optional[str] = typer.Option(None, help="Bind address (default BREITBAND_HOST)"),
          port: Optional[int] = typer.Option(None, help="Port (default BREITBAND_PORT, 8000)"),
          workers: int = typer.Option(1, help="Uvicorn worker processes")) -> None:
    """Run the HTTP API (and the map UI)."""
    import uvicorn  # deferred: only `serve` runs a server; every other command would load it for nothing

    s = get_settings()
    uvicorn.run("breitband.main:app", host=host or s.host, port=port or s.port, workers=workers,
                log_config=None, access_log=False, proxy_headers=True)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(ctx: typer.Context, concurrency: int = typer.Option(2, help="Worker processes"),
           loglevel: str = typer.Option("INFO")) -> None:
    """Run a Celery worker (extra arguments go to celery)."""
    configure_logging(loglevel)
    worker_app.worker_main(["worker", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
                            "--without-gossip", "--without-mingle", "--hostname=breitband@%h", *ctx.args])


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def beat(ctx: typer.Context, loglevel: str = typer.Option("INFO"),
         schedule: Path = typer.Option(Path("var/celerybeat-schedule"), help="Beat's state file")) -> None:
    """Run the Celery beat scheduler (periodic tasks)."""
    configure_logging(loglevel)
    schedule.parent.mkdir(parents=True, exist_ok=True)
    worker_app.start(["beat", f"--loglevel={loglevel}", f"--schedule={schedule}", *ctx.args])


# --- db ------------------------------------------------------------------------------------------------------

@db_app.command("create")
def db_create() -> None:
    """Create the database named in BREITBAND_DATABASE_URL if missing."""
    try:
        created = create_database()
    except Exception as exc:
        fail(f"cannot create the database: {exc}")
    typer.echo("database created" if created else "database exists")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Run the migrations (enables PostGIS on the first run)."""
    try:
        upgrade(revision=revision)
    except Exception as exc:
        fail(f"migration failed: {exc}")
    typer.echo(f"database at {revision}")


# --- backup and restore (breitband/backup.py) --------------------------------------------------------------------

def _progress(message: str) -> None:
    typer.echo(message, err=True)


@app.command("backup")
def backup_cmd(directory: Path = typer.Argument(..., help="New or empty directory for the backup")) -> None:
    """Back up the database (pg_dump, custom format), the uploaded files, the decision documents and the signing
    keys into DIRECTORY, with a manifest of row counts and file checksums. Prints the manifest's summary."""
    s = get_settings()
    try:
        manifest = backups.backup(directory, s.database_url, s.data_dir, s.signing_dir, progress=_progress)
    except (backups.BackupError, OSError, psycopg.Error) as exc:
        fail(str(exc))
    echo_json({"directory": str(directory.absolute()), "created_at": manifest["created_at"],
               "alembic_revision": manifest["database"]["alembic_revision"],
               "tables": len(manifest["database"]["row_counts"]),
               "rows": sum(manifest["database"]["row_counts"].values()),
               "files": len(manifest["files"]) - 1, "bytes": sum(e["size"] for e in manifest["files"])})


@app.command("restore")
def restore_cmd(directory: Path = typer.Argument(..., help="A directory written by `breitband backup`"),
                database_url: Optional[str] = typer.Option(
                    None, help="Database to restore into (default BREITBAND_DATABASE_URL); must be empty or new")
                ) -> None:
    """Restore a backup into an empty (or new) database and the data directory (BREITBAND_DATA_DIR; signing files
    into BREITBAND_SIGNING_DIR). Checks every checksum and that nothing would be overwritten before it starts;
    then run `breitband db upgrade` if the code is newer than the backup."""
    s = get_settings()
    target = backups.Target(database_url=database_url or s.database_url, data_dir=s.data_dir,
                            signing_dir=s.signing_dir)
    try:
        summary = backups.restore(directory, target, progress=_progress)
    except (backups.BackupError, OSError, psycopg.Error) as exc:
        fail(str(exc))
    echo_json(summary)


# --- tenants -------------------------------------------------------------------------------------------------

def tenant_dict(t) -> dict[str, Any]:
    return {"key": t.key, "name": t.name, "crs": f"EPSG:{t.srid}", "rules": t.rules}


@tenant_app.command("create")
def tenant_create(key: str, name: Optional[str] = typer.Option(None, help="Display name, e.g. Hessen"),
                  crs: Optional[str] = typer.Option(None, help="Metric CRS, e.g. EPSG:25832"),
                  rules: Optional[Path] = typer.Option(None, help="Rules TOML file"),
                  update: bool = typer.Option(False, "--update", help="Update the tenant if it exists")) -> None:
    """Create (or with --update, update) a tenant."""
    data = load_rules(rules)
    name = name or (data or {}).get("name")
    crs = crs or (data or {}).get("crs")
    if data is not None:
        data = validate_rules(data, key)
    with get_database().transaction() as session:
        exists = session.get(identity.Tenant, key) is not None
        if exists and update:
            t = identity.update_tenant(session, key, name=name, crs=crs, rules=data)
        else:
            if not name or not crs:
                fail("a new tenant needs --name and --crs (or name and crs in the rules file)")
            t = identity.create_tenant(session, key, name, crs, data)
        out = tenant_dict(t)
    echo_json(out)


@tenant_app.command("list")
def tenant_list() -> None:
    """List tenants."""
    with get_database().transaction() as session:
        echo_json([{k: v for k, v in tenant_dict(t).items() if k != "rules"} for t in identity.list_tenants(session)])


@tenant_app.command("show")
def tenant_show(key: str) -> None:
    """Show a tenant with its rules."""
    with get_database().transaction() as session:
        echo_json(tenant_dict(identity.get_tenant(session, key)))


# --- organisations, users, tokens ----------------------------------------------------------------------------

def org_dict(o) -> dict[str, Any]:
    return {"id": str(o.id), "tenant": o.tenant_key, "kind": o.kind, "name": o.name, "email": o.email}


@org_app.command("create")
def org_create(tenant: str = typer.Option(..., help="Tenant key"),
               kind: str = typer.Option(..., help="operator | road_authority | participating_body | operating_office"),
               name: str = typer.Option(...), email: Optional[str] = typer.Option(None),
               phone: Optional[str] = typer.Option(None), address: Optional[str] = typer.Option(None)) -> None:
    """Create an organisation."""
    with get_database().transaction() as session:
        org = identity.create_organisation(session, tenant, kind, name, email=email, phone=phone, address=address)
        out = org_dict(org)
    echo_json(out)


@org_app.command("list")
def org_list(tenant: str = typer.Option(..., help="Tenant key"), kind: Optional[str] = typer.Option(None)) -> None:
    """List organisations of a tenant."""
    with get_database().transaction() as session:
        identity.get_tenant(session, tenant)
        stmt = select(Organisation).where(Organisation.tenant_key == tenant).order_by(Organisation.kind,
                                                                                        Organisation.name)
        if kind:
            stmt = stmt.where(Organisation.kind == kind)
        echo_json([org_dict(o) for o in session.scalars(stmt)])


def token_dict(token, email: str | None = None) -> dict[str, Any]:
    out = {"id": str(token.id), "name": token.name, "prefix": token.prefix, "created_at": token.created_at,
           "expires_at": token.expires_at, "last_used_at": token.last_used_at, "revoked_at": token.revoked_at}
    return {"user": email, **out} if email else out


@token_app.command("create")
def token_create(tenant: str = typer.Option(...), email: str = typer.Option(..., help="The user's e-mail"),
                 name: str = typer.Option("cli", help="What the token is for"),
                 expires_in_days: Optional[int] = typer.Option(
                     None, "--expires-in-days", "--expires-days",
                     help="Days until it expires (default BREITBAND_TOKEN_DEFAULT_EXPIRY_DAYS, 90; at most "
                          "BREITBAND_TOKEN_MAX_EXPIRY_DAYS, 365). Every token expires; rotate service accounts' "
                          "tokens before they do.")) -> None:
    """Create an API token; prints the secret once, with its expiry."""
    with get_database().transaction() as session:
        lifetime = identity.token_lifetime(expires_in_days, field="--expires-in-days")
        user = identity.find_user(session, tenant, email)
        token, secret = identity.create_token(session, user, name, expires_in=lifetime)
        out = {**token_dict(token), "token": secret,
               "note": f"Store the token now; it cannot be shown again. It expires at {token.expires_at}."}
    echo_json(out)


@token_app.command("list")
def token_list(tenant: str = typer.Option(..., help="Tenant key"),
               email: Optional[str] = typer.Option(None, help="Only this user's tokens"),
               active: bool = typer.Option(False, "--active", help="Only tokens neither revoked nor expired")) -> None:
    """List the API tokens of a tenant's users (never their secrets), newest first."""
    with get_database().transaction() as session:
        identity.get_tenant(session, tenant)
        stmt = (select(ApiToken, User.email).join(User, User.id == ApiToken.user_id)
                .where(User.tenant_key == tenant).order_by(ApiToken.created_at.desc(), ApiToken.id))
        if email:
            stmt = stmt.where(User.id == identity.find_user(session, tenant, email).id)
        if active:
            stmt = stmt.where(ApiToken.revoked_at.is_(None), or_(ApiToken.expires_at.is_(None),
                                                                 ApiToken.expires_at > clock.now()))
        echo_json([token_dict(t, e) for t, e in session.execute(stmt)])


@token_app.command("cap-expiry")
def token_cap_expiry(days: int = typer.Option(..., help="Days from now; at most BREITBAND_TOKEN_MAX_EXPIRY_DAYS"),
                     tenant: Optional[str] = typer.Option(None, help="Only this tenant's tokens (default: all)")
                     ) -> None:
    """Give every active token that never expires (made before expiry was the default), or that expires later
    than DAYS from now, the expiry now + DAYS."""
    with get_database().transaction() as session:
        changed = identity.cap_token_expiry(session, days, tenant_key=tenant)
    echo_json({"changed": changed, "days": days, "tenant": tenant})


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    """Revoke an API token by its id."""
    try:
        tid = uuid.UUID(token_id)
    except ValueError:
        fail(f"{token_id!r} is not a token id (a UUID)")
    with get_database().transaction() as session:
        token = identity.revoke_token(session, tid)
        out = {"id": str(token.id), "revoked_at": token.revoked_at}
    echo_json(out)


@app.command()
def resolve(file: Path = typer.Argument(..., help="Route file ('-' for stdin): GeoJSON, Shapefile zip, GeoPackage, "
                                                  "KML/KMZ, GML, GPX, FlatGeobuf, DXF or CSV with WKT"),
            tenant: str = typer.Option(..., help="Tenant key"),
            crs: Optional[str] = typer.Option(None, help="CRS of the coordinates (default: the file's own; "
                                                         "GeoJSON: EPSG:4326)"),
            layer: Optional[str] = typer.Option(None, help="Layer of a multi-layer file")) -> None:
    """Resolve the affected road authorities of a route; prints the same JSON as POST /api/v1/resolve."""
    if str(file) == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = file.read_bytes()
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}")
    with get_database().transaction() as session:
        result = resolve_file(session, tenant, data, crs, layer)
    echo_json(result)


@demo_app.command("load")
def demo_load(tokens: bool = typer.Option(True, help="Issue fresh demo tokens and print them")) -> None:
    """Load (idempotently) the Hessen demo: tenant, organisations, users, and print a token per role."""
    load_demo(issue_tokens=tokens)


# Each domain package's cli.py adds its commands through ``register(app)``; geo's first, whose `import` group
# permits.cli adds `import areas` to; accounts.cli adds the commands of the `user` group, accounts.cli_admin
# `user invite` and `user reset-password`.
for domain_cli in (geo.cli, permits.cli, notifications.cli, accounts.cli, accounts.cli_admin):
    domain_cli.register(app)


def main() -> None:
    # Log records of every command as JSON lines on stderr, scrubbed of secrets and e-mail addresses
    # (breitband.logging); warnings and errors only: serve, worker and beat set their own level.
    configure_logging("WARNING")
    try:
        app()
    except ProblemError as exc:
        typer.echo(f"error: {scrub(exc.detail, personal_data=False)}", err=True)
        extra = {k: v for k, v in exc.extra.items()}
        if extra:
            typer.echo(json.dumps(extra, ensure_ascii=False, default=str), err=True)
        sys.exit(2 if exc.status == 422 else 1)


if __name__ == "__main__":
    main()
