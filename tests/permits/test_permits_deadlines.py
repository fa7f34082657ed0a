"""Deadline arithmetic on the Europe/Berlin calendar (§§ 187, 188, 190 BGB): month ends, leap years, DST."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from permits import deadlines as d


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


@pytest.mark.parametrize(("start", "months", "expected"), [
    (date(2026, 1, 15), 1, date(2026, 2, 15)),
    (date(2026, 1, 31), 1, date(2026, 2, 28)),     # § 188 (3): February has no 31st
    (date(2028, 1, 31), 1, date(2028, 2, 29)),     # leap year
    (date(2026, 3, 31), 1, date(2026, 4, 30)),
    (date(2025, 11, 30), 3, date(2026, 2, 28)),    # across the year end
    (date(2026, 1, 31), 3, date(2026, 4, 30)),
    (date(2026, 12, 15), 1, date(2027, 1, 15)),
    (date(2026, 2, 28), 1, date(2026, 3, 28)),     # § 190: an extension from 28 Feb ends on 28 Mar, not 31 Mar
])
def test_add_months_clamps_to_the_end_of_shorter_months(start, months, expected):
    assert d.add_months(start, months) == expected


def test_receipt_on_31_january_completeness_ends_28_february():
    received = utc("2026-01-31T15:20:00+01:00")
    assert d.completeness_due(received) == date(2026, 2, 28)
    assert d.decision_due(received) == date(2026, 4, 30)
    assert d.period_end(date(2026, 2, 28)) == utc("2026-03-01T00:00:00+01:00")
    assert not d.has_expired(date(2026, 2, 28), utc("2026-02-28T23:59:59+01:00"))
    assert d.has_expired(date(2026, 2, 28), utc("2026-03-01T00:00:00+01:00"))


def test_the_receipt_day_is_the_berlin_day_not_the_utc_day():
    # 00:30 on 1 March in Berlin is still 28 February in UTC
    received = utc("2026-02-28T23:30:00+00:00")
    assert d.local_date(received) == date(2026, 3, 1)
    assert d.completeness_due(received) == date(2026, 4, 1)
    # naive arithmetic in UTC would give 28 March
    assert d.add_months(received.date(), 1) == date(2026, 3, 28)


def test_period_end_across_the_spring_dst_switch():
    # 29 March 2026 02:00 CET -> 03:00 CEST: that day has 23 hours
    assert d.period_end(date(2026, 3, 28)) == utc("2026-03-28T23:00:00+00:00")   # midnight CET
    assert d.period_end(date(2026, 3, 29)) == utc("2026-03-29T22:00:00+00:00")   # midnight CEST
    received = utc("2026-02-28T23:30:00+00:00")                                   # 1 March, CET
    assert d.period_end(d.completeness_due(received)) == utc("2026-04-01T22:00:00+00:00")
    # a decision period that starts in winter time and ends in summer time ends at local midnight
    assert d.period_end(d.decision_due(utc("2026-01-15T10:00:00+01:00"))) == utc("2026-04-15T22:00:00+00:00")


def test_period_end_across_the_autumn_dst_switch():
    # 25 October 2026 03:00 CEST -> 02:00 CET: that day has 25 hours
    received = utc("2026-09-25T22:30:00+00:00")            # 26 September 00:30 CEST
    assert d.local_date(received) == date(2026, 9, 26)
    assert d.completeness_due(received) == date(2026, 10, 26)
    assert d.period_end(date(2026, 10, 26)) == utc("2026-10-26T23:00:00+00:00")
    assert d.period_end(date(2026, 10, 25)) == utc("2026-10-25T23:00:00+00:00")
    assert d.period_end(date(2026, 10, 24)) == utc("2026-10-24T22:00:00+00:00")


def test_days_left_counts_berlin_calendar_days():
    due = date(2026, 4, 15)
    assert d.days_left(due, utc("2026-04-15T23:30:00+02:00")) == 0
    assert d.days_left(due, utc("2026-04-14T22:30:00+00:00")) == 0      # already 15 April in Berlin
    assert d.days_left(due, utc("2026-04-14T21:30:00+00:00")) == 1
    assert d.days_left(due, utc("2026-04-16T00:00:00+02:00")) == -1


def test_parse_instant():
    assert d.parse_instant("2026-04-16") == utc("2026-04-16T00:00:00+02:00")
    assert d.parse_instant("2026-04-16T00:00:00") == utc("2026-04-16T00:00:00+02:00")
    assert d.parse_instant("2026-01-16T00:00:00") == utc("2026-01-16T00:00:00+01:00")
    assert d.parse_instant("2026-04-15T22:00:00Z") == utc("2026-04-16T00:00:00+02:00")
    with pytest.raises(ValueError):
        d.parse_instant("16.04.2026")
