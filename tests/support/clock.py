"""A clock the test sets: the time the API's endpoints see."""

from __future__ import annotations

from datetime import datetime

import pytest

from permits import deadlines


class Clock:
    def __init__(self) -> None:
        self.now = deadlines.parse_instant("2026-01-15T10:00:00+01:00")

    def set(self, iso: str) -> datetime:
        self.now = deadlines.parse_instant(iso)
        return self.now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(app) -> Clock:
    """The API's clock (dependency ``permits.http.clock``), set by the test."""
    from permits.http import clock as clock_dependency

    c = Clock()
    app.dependency_overrides[clock_dependency] = c
    yield c
    app.dependency_overrides.pop(clock_dependency, None)
