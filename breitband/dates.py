"""Formatting and parsing of dates and instants, the one place for it.

The API, events and documents carry dates as ``YYYY-MM-DD`` and instants in UTC with a trailing ``Z``. A date that
is given where an instant is expected means the start of that day in Europe/Berlin (the law's calendar).
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")


def as_aware(value: datetime) -> datetime:
    """Naive datetimes are taken as Europe/Berlin wall time (what a user in Hessen means); the database returns
    timestamptz values aware already."""
    return value if value.tzinfo is not None else value.replace(tzinfo=BERLIN)


def iso(value: date | datetime | None) -> str | None:
    """Dates as YYYY-MM-DD; instants in UTC with a trailing Z (what the API returns and events carry)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_aware(value).astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def iso_seconds(value: datetime) -> str:
    """An instant in UTC to the second, with a trailing Z (token expiry and other human-facing instants)."""
    return as_aware(value).astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_instant(text: str) -> datetime:
    """ISO 8601 date or datetime; a date means its start in Europe/Berlin, a naive time is Berlin wall time."""
    text = text.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(0, 0), tzinfo=BERLIN).astimezone(timezone.utc)
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    return as_aware(value).astimezone(timezone.utc)
