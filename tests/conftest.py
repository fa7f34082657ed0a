"""Test fixtures: a test database built once per run by `alembic upgrade head`, each test in a rolled-back
transaction, an HTTP client, and users with tokens per role in two tenants. The fixtures and helpers the test
directories share are in tests/support/, loaded below with `pytest_plugins`.

The test database and broker are separate from the ones `scripts/run` uses, so a running demo is not disturbed:
BREITBAND_TEST_DATABASE_URL (default: the main URL with the database `breitband_test`) and
BREITBAND_TEST_BROKER_URL (default: Redis db 14, results in db 15).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy.engine import make_url


def _test_urls() -> tuple[str, str, str]:
    main = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")
    db_url = os.environ.get("BREITBAND_TEST_DATABASE_URL") or make_url(main).set(
        database="breitband_test").render_as_string(hide_password=False)
    broker = os.environ.get("BREITBAND_TEST_BROKER_URL", "redis://127.0.0.1:6379/14")
    backend = os.environ.get("BREITBAND_TEST_RESULT_BACKEND",
                             "redis://127.0.0.1:6379/15" if broker.startswith("redis") else "rpc://")
    return db_url, broker, backend


TEST_DATABASE_URL, TEST_BROKER_URL, TEST_RESULT_BACKEND = _test_urls()
# Set before any breitband module reads its settings.
os.environ["BREITBAND_DATABASE_URL"] = TEST_DATABASE_URL
os.environ.pop("BREITBAND_DATABASE_READONLY_URL", None)
os.environ["BREITBAND_BROKER_URL"] = TEST_BROKER_URL
os.environ["BREITBAND_RESULT_BACKEND"] = TEST_RESULT_BACKEND
os.environ.setdefault("BREITBAND_LOG_LEVEL", "WARNING")
os.environ.setdefault("BREITBAND_READINESS_TIMEOUT_S", "1.0")
# The webhook receivers of the tests listen on 127.0.0.1, which the default settings refuse (loopback); the rest of
# the default block list stays (tests/notifications/test_webhooks.py checks the default list itself).
os.environ.setdefault("BREITBAND_WEBHOOK_BLOCKED_NETWORKS",
                      '["0.0.0.0/8", "::/128", "169.254.0.0/16", "fe80::/10", "224.0.0.0/4", "ff00::/8"]')
# Rate-limit counters (breitband/limits.py) in a Redis db of their own: BREITBAND_TEST_LIMITS_REDIS_URL (db 13).
TEST_LIMITS_REDIS_URL = os.environ.get("BREITBAND_TEST_LIMITS_REDIS_URL", "redis://127.0.0.1:6379/13")
os.environ["BREITBAND_LIMITS_REDIS_URL"] = TEST_LIMITS_REDIS_URL
# The suite's many 401s and /resolve calls from one test client stay far below these; tests/test_limits.py builds
# apps with small limits of its own.
for _rate in ("AUTH_FAILURES", "VERIFY", "RESOLVE_TOKEN", "RESOLVE_CLIENT", "REDELIVER_TOKEN",
              "RESOLVE_FEATURES_TOKEN"):
    os.environ.setdefault(f"BREITBAND_RATE_LIMIT_{_rate}", "1000000/60")

import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from breitband import identity  # noqa: E402
from breitband.db import Database  # noqa: E402
from breitband.models import OrgKind, Role  # noqa: E402
from breitband.settings import Settings, get_settings  # noqa: E402

# Fixtures and helpers shared by the test directories (tests/support/__init__.py says how they are organised),
# their asserts rewritten by pytest as in test modules (also of the helper modules that are no plugins).
pytest.register_assert_rewrite("tests.support")
pytest_plugins = [
    "tests.support.markers",
    "tests.support.hessen",
    "tests.support.people",
    "tests.support.api",
    "tests.support.clock",
    "tests.support.workers",
    "tests.support.mail",
    "tests.support.webhooks",
    "tests.support.documents",
    "tests.support.oidc",
]


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    get_settings.cache_clear()
    os.environ["BREITBAND_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    return get_settings()


@pytest.fixture(scope="session")
def engine(settings):
    from breitband.migrate import create_database, drop_database, upgrade

    drop_database(TEST_DATABASE_URL)
    create_database(TEST_DATABASE_URL)
    upgrade(TEST_DATABASE_URL)
    eng = create_engine(TEST_DATABASE_URL, connect_args={"options": "-c jit=off"})
    yield eng
    eng.dispose()


@pytest.fixture
def db(engine) -> Iterator[Database]:
    """A Database whose sessions all join one outer transaction that is rolled back after the test."""
    conn = engine.connect()
    outer = conn.begin()
    maker = sessionmaker(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
    yield Database(engine=engine, readonly_engine=engine, sessionmaker=maker, readonly_sessionmaker=maker)
    outer.rollback()
    conn.close()


@pytest.fixture
def session(db) -> Iterator[Session]:
    with db.sessionmaker() as s:
        yield s


@pytest.fixture
def app(settings, db):
    from breitband.app import create_app

    return create_app(settings, db=db)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@dataclass
class Actor:
    user_id: object
    email: str
    role: Role
    organisation_id: object
    token: str
    token_id: object

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    tenant_key: str
    operating_office: object
    operator: object
    other_operator: object
    authority: object
    admin: Actor
    operator_member: Actor
    other_operator_member: Actor
    reviewer: Actor
    authority_admin: Actor


def _actor(session, org, email, role) -> Actor:
    user = identity.create_user(session, org, email, email.split("@")[0], role)
    token, secret = identity.create_token(session, user, "test")
    return Actor(user.id, user.email, Role(role), org.id, secret, token.id)


def build_world(session, key: str, name: str) -> World:
    identity.create_tenant(session, key, name, "EPSG:25832", {})
    office = identity.create_organisation(session, key, OrgKind.operating_office, f"Servicestelle {name}")
    op = identity.create_organisation(session, key, OrgKind.operator, f"Netz {name} GmbH")
    op2 = identity.create_organisation(session, key, OrgKind.operator, f"Faser {name} AG")
    auth = identity.create_organisation(session, key, OrgKind.road_authority, f"Straßenbauamt {name}")
    w = World(
        tenant_key=key, operating_office=office, operator=op, other_operator=op2, authority=auth,
        admin=_actor(session, office, f"admin@{key}.example", Role.tenant_admin),
        operator_member=_actor(session, op, f"planer@{key}.example", Role.operator_member),
        other_operator_member=_actor(session, op2, f"faser@{key}.example", Role.operator_member),
        reviewer=_actor(session, auth, f"pruefer@{key}.example", Role.authority_reviewer),
        authority_admin=_actor(session, auth, f"leitung@{key}.example", Role.authority_admin),
    )
    session.flush()
    return w


@pytest.fixture
def world(session) -> World:
    w = build_world(session, "xa", "Testland A")
    session.commit()
    return w


@pytest.fixture
def other_world(session) -> World:
    w = build_world(session, "xb", "Testland B")
    session.commit()
    return w
