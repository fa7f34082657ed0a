"""The one clock (``breitband.clock.now``), set by the test: what the endpoints (``Depends(clock.now)``), services,
delivery and back-off see as the current time."""

from __future__ import annotations

from datetime import datetime

import pytest

import breitband.clock
from breitband.dates import parse_instant


class Clock:
    def __init__(self) -> None:
        self.now = parse_instant("2026-01-15T10:00:00+01:00")

    def set(self, iso: str) -> datetime:
        self.now = parse_instant(iso)
        return self.now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """The one clock, set by the test and restored afterwards."""
    c = Clock()
    with breitband.clock.frozen(c):
        yield c
