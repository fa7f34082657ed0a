"""Statutory periods of § 127 (3) TKG and § 150 TKG, computed on the calendar of Europe/Berlin.

How a period is computed (§§ 187 (1), 188 (2) and (3), 190 BGB, which § 31 (1) VwVfG applies to administrative
procedure):

* The period is triggered by an event (the receipt of the application, of a supplement), so the day of the event is
  not counted (§ 187 (1)). The event's day is its calendar date in Europe/Berlin, whatever the UTC offset on that day
  (CET or CEST), so a receipt at 00:30 local time on 1 March counts as 1 March although it is still 28 February in
  UTC.
* A period of months ends with the expiry of the day of the last month that has the same number as the event's day
  (§ 188 (2)): receipt on 15 January + 1 month -> the period ends at 24:00 on 15 February.
* If the last month has no such day, the period ends with the expiry of its last day (§ 188 (3)): 31 January + 1
  month -> 28 February (29 February in a leap year); 30 November + 3 months -> 28 February.
* An extension is computed from the end of the previous period (§ 190): a decision period ending on 28 February,
  extended by one month, ends on 28 March (not on the 30th or 31st).
* The "deadline" we store and show is that last day (a date). The period expires at 24:00 local time on it, which is
  the instant 00:00 of the following day in Europe/Berlin (``period_end``). A deemed approval takes effect with that
  expiry and is recorded as taking effect on the deadline day.
* Saturdays, Sundays and public holidays do not move the end of a period here. § 193 BGB / § 31 (3) VwVfG can
  shift a period that ends on such a day to the next working day; whether that applies to the Zustimmungsfiktion is
  not settled and holidays differ per state. Not shifting means a deemed approval may be issued up to a few days
  earlier than a court applying § 193 would hold; authorities see the unshifted deadline in their inbox and so decide
  in time. This is a deliberate choice, to be revisited with per-state holiday calendars.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone

from breitband.dates import BERLIN, as_aware, iso, parse_instant  # noqa: F401 - callers still use dates.iso

COMPLETENESS_MONTHS = 1   # § 127 (3) sentence 2: report incompleteness within one month
DECISION_MONTHS = 3       # § 127 (3) sentence 1: deemed granted three months after the complete application
EXTENSION_MONTHS = 1      # § 150: extendable once by one month


def local_date(instant: datetime) -> date:
    """The calendar day in Europe/Berlin on which ``instant`` lies."""
    return as_aware(instant).astimezone(BERLIN).date()


def add_months(day: date, months: int) -> date:
    """The day with the same number ``months`` later, clamped to the end of a shorter month (§ 188 (2), (3) BGB)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def period_end(last_day: date) -> datetime:
    """The instant a period whose last day is ``last_day`` expires: 24:00 local time, as an aware UTC datetime.

    Computed as midnight at the start of the next local day, so days of 23 or 25 hours (DST) come out right."""
    return datetime.combine(last_day + timedelta(days=1), time(0, 0), tzinfo=BERLIN).astimezone(timezone.utc)


def completeness_due(received_at: datetime) -> date:
    """Last day on which the authority can report the application incomplete and so stop the clock."""
    return add_months(local_date(received_at), COMPLETENESS_MONTHS)


def decision_due(complete_at: datetime) -> date:
    """Last day of the decision period, counted from the complete receipt."""
    return add_months(local_date(complete_at), DECISION_MONTHS)


def extended(due: date) -> date:
    """The decision deadline after the one extension of § 150 (counted from the end of the old period, § 190)."""
    return add_months(due, EXTENSION_MONTHS)


def has_expired(last_day: date, now: datetime) -> bool:
    return as_aware(now) >= period_end(last_day)


def days_left(last_day: date, now: datetime) -> int:
    """Whole calendar days from today (Europe/Berlin) to the last day: 0 on the last day, negative once passed."""
    return (last_day - local_date(now)).days


def consent_valid_until(effective_on: date, months: int) -> date:
    """Last day on which the works must have started for the consent to stay valid: ``months`` after the day the
    consent took effect (§ 188 (2), (3) BGB like the statutory periods; the tenant's ``[documents]
    validity_months``). Not moved off a weekend: the operator starts works, no authority has to act on that day."""
    return add_months(effective_on, months)
