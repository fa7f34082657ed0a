"""Alembic wiring so that `breitband db upgrade` works from any working directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from breitband.settings import PROJECT_ROOT, get_settings

if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config(database_url: str | None = None) -> Config:
    from alembic.config import Config  # deferred: alembic (mako, pygments) loads in ~0.15 s; only migrations use it

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", (database_url or get_settings().database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    from alembic import command  # deferred: see alembic_config

    command.upgrade(alembic_config(database_url), revision)


def create_database(database_url: str | None = None) -> bool:
    """Create the database named in the URL if it does not exist. Returns True when it was created."""
    url = make_url(database_url or get_settings().database_url)
    name = url.database
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(url.database)))
