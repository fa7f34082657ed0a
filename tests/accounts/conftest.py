"""Fixtures of the sign-in tests: users of tenant xa with a password, the sign-in counters of unknown addresses
cleared (they live in the rate limits' Redis, outside the test's transaction)."""

from __future__ import annotations

import pytest
import redis

from accounts import passwords
from breitband.models import User
from tests.conftest import TEST_LIMITS_REDIS_URL

PASSWORD = "lantern ferry moss 42"


@pytest.fixture(autouse=True)
def fresh_sign_in_counters():
    r = redis.Redis.from_url(TEST_LIMITS_REDIS_URL)
    for key in r.scan_iter("breitband:signin:unknown:*"):
        r.delete(key)
    yield
    r.close()


@pytest.fixture
def with_passwords(session, world):
    """Every user of tenant xa gets PASSWORD."""
    hashed = passwords.hash_password(PASSWORD)
    for actor in (world.admin, world.operator_member, world.reviewer, world.authority_admin):
        session.get(User, actor.user_id).password_hash = hashed
    session.commit()
    return world


def login(client, email: str, password: str = PASSWORD, tenant: str = "xa", **extra):
    return client.post("/api/v1/auth/login", json={"tenant": tenant, "email": email, "password": password, **extra})
