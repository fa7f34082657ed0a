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
* The "deadline" we store and show is the day the period ends (a date, after the move below). The period expires at
  24:00 local time on it, which is the instant 00:00 of the following day in Europe/Berlin (``period_end``). A deemed
  approval takes effect with that expiry and is recorded as taking effect on the deadline day.
* A period whose last day is a Saturday, a Sunday or a public holiday at the authority's seat ends with the expiry
  of the next working day (§ 193 BGB, § 31 (3) sentence 1 VwVfG). The issue whether § 193 applies to the
  Zustimmungsfiktion of § 127 (3) TKG is not settled; we take the conservative reading, under which no deemed
  approval arises before a court would hold it to. It applies to the completeness month, the decision period and
  its extension; the deemed approval takes effect at the end of the moved period. Which days are holidays:
  ``permits.workdays`` (per state and, where a state differs inside, per place; the tenant's ``[holidays]``).
* Both days are kept: the statutory last day (``statutory``, by §§ 187, 188 BGB alone) and the end of the period
  (``end``, moved where it had to be), with the days skipped and why (``Due``).
* The extension of § 150 runs from the end of the period it extends as moved by § 193 (as the BGH holds for
  extended procedural periods, BGHZ 21, 43; the later, conservative end): decision period ending on Saturday
  30 January 2027, moved to Monday 1 February, extended by one month → 1 March (and moved again if that is no
  working day).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from breitband.dates import BERLIN, as_aware, iso, parse_instant  # noqa: F401 - callers still use dates.iso
from permits.workdays import WEEKDAYS_DE, WorkingCalendar

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


MAX_MOVE_DAYS = 14     # no calendar has so many days off in a row; a longer run means broken holiday data


@dataclass(frozen=True)
class Due:
    """The end of one period: ``statutory`` its last day by §§ 187, 188 BGB, ``end`` the day it really ends on
    (the next working day where ``statutory`` is none, § 193 BGB), ``skipped`` the days passed over, each with why
    ("Samstag", "Fronleichnam")."""
    statutory: date
    end: date
    skipped: tuple[tuple[date, tuple[str, ...]], ...] = ()

    @property
    def moved_days(self) -> int:
        return (self.end - self.statutory).days

    def reason(self) -> str | None:
        """German, for people: "der 27.05.2027 ist Fronleichnam"; None if the period was not moved."""
        if not self.skipped:
            return None
        return ", ".join(f"der {de_date(day)} ist {_what(why)}" for day, why in self.skipped)

    def label(self) -> str:
        """"Freitag, 28.05.2027 — der 27.05.2027 ist Fronleichnam" (or the day alone where nothing moved)."""
        reason = self.reason()
        return f"{de_day(self.end)} — {reason}" if reason else de_day(self.end)

    def as_json(self) -> dict[str, Any]:
        return {"statutory": self.statutory.isoformat(), "end": self.end.isoformat(), "moved_days": self.moved_days,
                "reason": self.reason(),
                "skipped": [{"date": d.isoformat(), "why": list(why)} for d, why in self.skipped]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Due":
        return cls(date.fromisoformat(data["statutory"]), date.fromisoformat(data["end"]),
                   tuple((date.fromisoformat(s["date"]), tuple(s["why"])) for s in data.get("skipped") or []))


def de_date(day: date) -> str:
    return day.strftime("%d.%m.%Y")


def de_day(day: date) -> str:
    """"Freitag, 28.05.2027"."""
    return f"{WEEKDAYS_DE[day.weekday()]}, {de_date(day)}"


def _what(why: tuple[str, ...]) -> str:
    weekend = [w for w in why if w in ("Samstag", "Sonntag")]
    rest = [w for w in why if w not in weekend]
    return " und ".join([f"ein {w}" for w in weekend] + rest)


def working_end(last_day: date, cal: WorkingCalendar) -> Due:
    """The period whose statutory last day is ``last_day`` ends on the first working day from it on (§ 193 BGB)."""
    day, skipped = last_day, []
    while why := cal.why_off(day):
        skipped.append((day, tuple(why)))
        day += timedelta(days=1)
        if len(skipped) > MAX_MOVE_DAYS:
            raise ValueError(f"more than {MAX_MOVE_DAYS} days off in a row from {last_day} in {cal.describe()}")
    return Due(last_day, day, tuple(skipped))


def completeness(received_at: datetime, cal: WorkingCalendar) -> Due:
    """The completeness month of § 127 (3) sentence 2 TKG, from the receipt, ending on a working day."""
    return working_end(completeness_due(received_at), cal)


def decision(complete_at: datetime, cal: WorkingCalendar) -> Due:
    """The decision period of § 127 (3) sentence 1 TKG, from the complete receipt, ending on a working day."""
    return working_end(decision_due(complete_at), cal)


def extension(previous_end: date, cal: WorkingCalendar) -> Due:
    """The one extension of § 150 TKG: one month from the end of the period as moved (§ 190, § 193 BGB)."""
    return working_end(extended(previous_end), cal)


def completeness_due(received_at: datetime) -> date:
    """Statutory last day on which the authority can report the application incomplete and so stop the clock (not
    moved off a weekend or holiday: ``completeness`` does that)."""
    return add_months(local_date(received_at), COMPLETENESS_MONTHS)


def decision_due(complete_at: datetime) -> date:
    """Statutory last day of the decision period, counted from the complete receipt (``decision`` moves it)."""
    return add_months(local_date(complete_at), DECISION_MONTHS)


def extended(due: date) -> date:
    """Statutory last day after the one extension of § 150, counted from ``due``, the end of the old period (§ 190);
    ``extension`` moves it."""
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
