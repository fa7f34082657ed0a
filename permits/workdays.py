"""Working days of an authority: the calendar on which a statutory period ends (§ 31 (3) VwVfG, § 193 BGB).

A period whose last day is a Saturday, a Sunday or a public holiday at the authority's seat ends with the expiry of
the next working day. Which days are public holidays is state law (the Feiertagsgesetze of the states), in some
states also local: Augsburg's Hohes Friedensfest (8 August, only in the city), Mariä Himmelfahrt in Bavaria's
communities with a Catholic majority, Fronleichnam in the Catholic communities of Saxony (Sorbian area) and
Thuringia (Eichsfeld). The days come from the ``holidays`` package; the tenant's rules (``geo.rules.Holidays``,
``[holidays]`` in the tenant's TOML file) name the state, may add days of their own and name places (by the AGS
prefix of the authority) whose calendar differs.

24 and 31 December are no public holidays; they do not move a period.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field
from datetime import date

import holidays as holiday_data

from breitband.errors import UnprocessableEntity
from geo.rules import STATE_BY_AGS, HolidayPlace, Holidays, LocalDay, parse_rules

log = logging.getLogger("permits.deadlines")

_LOCK = threading.Lock()
WEEKDAYS_DE = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")


@functools.lru_cache(maxsize=64)
def _holidays(subdivision: str | None, categories: tuple[str, ...]) -> holiday_data.HolidayBase:
    """The holiday table of one subdivision (None: the nationwide holidays alone; German names); it fills years
    lazily as they are asked for (under ``_LOCK``: the API's threads share it)."""
    return holiday_data.Germany(subdiv=subdivision, categories=categories, language="de")


@dataclass(frozen=True)
class WorkingCalendar:
    """Which days are no working days for one authority: weekends, the public holidays of ``subdivision`` in
    ``categories``, and the tenant's own ``days`` (once: "YYYY-MM-DD", every year: "MM-DD")."""
    subdivision: str | None
    categories: tuple[str, ...] = ("public",)
    days: tuple[tuple[str, str], ...] = ()
    place: str | None = None          # the AGS prefix whose special calendar applies, for explanations
    _index: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for when, name in self.days:
            self._index.setdefault(when, []).append(name)

    def holidays_on(self, day: date) -> list[str]:
        """The names of the public (and local) holidays on ``day``, empty on a working day or a plain weekend."""
        with _LOCK:
            found = _holidays(self.subdivision, self.categories).get_list(day)
        names = [n for name in found for n in name.split("; ")]
        names += self._index.get(day.isoformat(), []) + self._index.get(day.strftime("%m-%d"), [])
        return list(dict.fromkeys(names))

    def why_off(self, day: date) -> list[str]:
        """Why ``day`` is no working day, in German ("Samstag", "Fronleichnam"); empty on a working day."""
        weekend = [WEEKDAYS_DE[day.weekday()]] if day.weekday() >= 5 else []
        return weekend + self.holidays_on(day)

    def describe(self) -> str:
        where = f", Ort {self.place}" if self.place else ""
        extra = f", {len(self.days)} eigene Tage" if self.days else ""
        return f"{self.subdivision or 'DE'} ({', '.join(self.categories)}{where}{extra})"


def _days(items: list[LocalDay]) -> tuple[tuple[str, str], ...]:
    return tuple((d.date, d.name) for d in items)


def place_of(rules: Holidays, ags: str | None) -> HolidayPlace | None:
    """The place entry whose ``ags`` is the longest prefix of the authority's AGS, if any."""
    if not ags:
        return None
    matching = [p for p in rules.places if ags.startswith(p.ags)]
    return max(matching, key=lambda p: len(p.ags)) if matching else None


def calendar_for(rules: Holidays, ags: str | None = None) -> WorkingCalendar:
    """The working calendar of an authority with the AGS ``ags`` (Gemeinde 8 digits, Kreis 5, state 2; None: the
    state's calendar) under the tenant's holiday rules."""
    state = rules.state              # TenantRules fills it from state_key; None: the nationwide holidays only
    place = place_of(rules, ags)
    if place is None:
        return WorkingCalendar(state, tuple(rules.categories), _days(rules.days))
    categories = tuple(dict.fromkeys([*rules.categories, *place.categories]))
    return WorkingCalendar(place.subdivision or state, categories, _days(rules.days) + _days(place.days),
                           place=place.ags)


def holidays_of(raw_rules: dict | None) -> Holidays:
    """The holiday rules of a tenant's stored rules. Rules that do not validate (a tenant created without rules)
    still get the calendar of their ``state_key``, or the nationwide holidays, with a warning: the periods of such a
    tenant's cases must end on working days all the same."""
    raw = raw_rules or {}
    try:
        return parse_rules(raw).holidays
    except UnprocessableEntity as exc:
        state = STATE_BY_AGS.get(str(raw.get("state_key")))
        log.warning("tenant rules do not validate (%s); periods end on the working days of %s", exc.detail,
                    state or "the nationwide holidays")
        return Holidays(state=state)
