"""Database engines and sessions.

One transaction per request: ``get_session`` yields a session and commits it when the endpoint returned without an
error (services only ``flush()``). ``get_read_session`` is a read-only session on the replica URL (falls back to the
main database) for list and tile endpoints.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from breitband.settings import Settings


class Base(DeclarativeBase):
    pass


def make_engine(url: str, settings: Settings, *, readonly: bool = False) -> Engine:
    # Short spatial queries: PostgreSQL's JIT costs more than it saves (see ENGINEERING.md).
    options = "-c jit=off -c statement_timeout=60000"
    if readonly:
        options += " -c default_transaction_read_only=on"
    return create_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
        connect_args={"options": options, "connect_timeout": 5},
    )


@dataclass
class Database:
    engine: Engine
    readonly_engine: Engine
    sessionmaker: sessionmaker[Session]
    readonly_sessionmaker: sessionmaker[Session]

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        engine = make_engine(settings.database_url, settings)
        ro = make_engine(settings.readonly_url, settings, readonly=True)
        return cls(
            engine=engine,
            readonly_engine=ro,
            sessionmaker=sessionmaker(engine, expire_on_commit=False),
            readonly_sessionmaker=sessionmaker(ro, expire_on_commit=False),
        )

    def dispose(self) -> None:
        self.engine.dispose()
        self.readonly_engine.dispose()


_default_db: Database | None = None


def get_database(settings: Settings | None = None) -> Database:
    """Process-wide database (CLI, Celery tasks)."""
    global _default_db
    if _default_db is None:
        from breitband.settings import get_settings

        _default_db = Database.from_settings(settings or get_settings())
    return _default_db


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction for a command-line command or a task: committed on success, rolled back on error."""
    with get_database().sessionmaker() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def import_optional(names: tuple[str, ...]) -> list:
    """Import the modules that exist among ``names`` (a domain package may not have an api.py or cli.py)."""
    import importlib

    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return modules


def get_session(request: Request) -> Iterator[Session]:
    db: Database = request.app.state.db
    with db.sessionmaker() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# What commands depend on. scope="function": the commit runs when the endpoint returns, BEFORE the response is sent.
# FastAPI's default for a dependency with yield runs its exit code after the response has gone out, so a client could
# read its own write before the commit (the web app re-reads right after every command) or get a 2xx for a commit
# that then fails.
write_session = Depends(get_session, scope="function")


def get_read_session(request: Request) -> Iterator[Session]:
    db: Database = request.app.state.db
    with db.readonly_sessionmaker() as session:
        try:
            yield session
        finally:
            session.rollback()
