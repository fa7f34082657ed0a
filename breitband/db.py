"""Database engines and sessions.

One transaction per request: ``get_session`` yields a session and commits it when the endpoint returned without an
error (services only ``flush()``). ``get_read_session`` is a read-only session on the replica URL (falls back to the
main database) for list and tile endpoints. Outside a request (tasks, command-line commands) the unit of work is
``get_database().transaction()``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from breitband.settings import Settings, get_settings


class Base(DeclarativeBase):
    pass


# A pooled connection that has rested longer than this is pinged before use (a server restart or an idle timeout
# may have closed it). One used moments ago is not: the ping is a round trip, and a resolution needs only two (the
# token lookup and the query), so pinging on every checkout showed in every figure. If the server went away within
# this window, the request fails with 503 `database-unavailable` and the pool reconnects for the next one.
PING_AFTER_IDLE_S = 5.0


def make_engine(url: str, settings: Settings, *, readonly: bool = False) -> Engine:
    # JIT off: PostGIS functions declare high costs, so even short spatial queries pass jit_above_cost, and
    # compiling them can take longer than running them.
    options = "-c jit=off -c statement_timeout=60000"
    if readonly:
        options += " -c default_transaction_read_only=on"
    engine = create_engine(
        url,
        # A failed statement's error (logged, and in tracebacks) names no bound parameters: they hold webhook
        # secrets, token hashes and personal data.
        hide_parameters=True,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        connect_args={"options": options, "connect_timeout": 5},
    )
    _ping_after_rest(engine)
    return engine


def _ping_after_rest(engine: Engine) -> None:
    """Pessimistic disconnect handling, only for connections that rested: raising DisconnectionError on checkout
    makes the pool drop the connection and hand out a fresh one."""

    @event.listens_for(engine, "checkin")
    def _rested_from(dbapi_connection, record) -> None:
        record.info["rested_from"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, record, proxy) -> None:
        since = record.info.pop("rested_from", None)
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


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

    def statement_session(self, *, readonly: bool = False) -> Session:
        """A session whose statements each commit at once: no BEGIN/COMMIT or ROLLBACK round trips, for requests
        that only read a statement at a time (authentication, the resolution dry run). Under READ COMMITTED a
        transaction gives such statements nothing more: each sees its own snapshot either way. Shares the pools;
        ``readonly`` uses the read-only (replica) engine. A Database built from sessionmakers alone (the tests' one
        outer transaction) hands out its ordinary sessions instead."""
        key = "_statements_ro" if readonly else "_statements"
        maker = self.__dict__.get(key)
        if maker is None:
            base = self.readonly_sessionmaker if readonly else self.sessionmaker
            engine = self.readonly_engine if readonly else self.engine
            if base.kw.get("bind") is engine:
                maker = sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
            else:
                maker = base
            self.__dict__[key] = maker
        return maker()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work outside a request (a task, a command-line command, a sweep's batch): a session whose
        transaction is committed when the block ends without an error and rolled back otherwise. Services only
        ``flush()``; whoever opens the transaction commits it."""
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
        self.readonly_engine.dispose()


_default_db: Database | None = None


def get_database(settings: Settings | None = None) -> Database:
    """Process-wide database (CLI, Celery tasks)."""
    global _default_db
    if _default_db is None:
        _default_db = Database.from_settings(settings or get_settings())
    return _default_db


def get_session(request: Request) -> Iterator[Session]:
    """A request's unit of work: the same as a task's (``Database.transaction``), committed when the endpoint returns
    without an error."""
    db: Database = request.app.state.db
    with db.transaction() as session:
        yield session


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
