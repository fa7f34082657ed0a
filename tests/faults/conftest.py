"""Fixtures of the fault tests: one private stack (PostgreSQL, Redis, SMTP, API, worker; see tests/support/faults.py)
for the whole directory, brought back to health before each test and always stopped at the end, also when a test
fails.

These tests use none of the shared servers: they restart and stop their own."""

from __future__ import annotations

import sys
import time

import pytest

from tests.support.faults import Stack


@pytest.fixture(scope="session")
def private_stack(tmp_path_factory):
    started = time.monotonic()
    stack = Stack(tmp_path_factory.mktemp("faults"))
    try:
        stack.start()
        print(f"\nfaults: private stack up in {time.monotonic() - started:.1f} s (PostgreSQL :{stack.pg.port}, "
              f"Redis :{stack.redis.port}, SMTP :{stack.smtp.port}, API :{stack.api_port})", file=sys.stderr)
        yield stack
    finally:
        stack.close()


@pytest.fixture
def stack(private_stack, request):
    private_stack.heal()
    yield private_stack
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"\nfaults: logs of the private stack\n{private_stack.logs()}", file=sys.stderr)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
