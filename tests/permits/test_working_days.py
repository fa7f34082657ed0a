"""Periods end on a working day (§ 31 (3) VwVfG, § 193 BGB) on the real holiday calendars of the states and places
(the ``holidays`` package), with the statutory last day and the reason for every move."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from breitband.dates import parse_instant
from breitband.errors import UnprocessableEntity
from geo.rules import Holidays, parse_rules
from permits import deadlines as d
from permits import workdays as w


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def state(code: str) -> w.WorkingCalendar:
    return w.calendar_for(Holidays(state=code))


HE = state("HE")


def test_a_decision_period_ending_on_a_sunday_ends_on_monday():
    due = d.decision(parse_instant("2027-03-27"), HE)
    assert (due.statutory, due.end, due.moved_days) == (date(2027, 6, 27), date(2027, 6, 28), 1)
    assert due.reason() == "der 27.06.2027 ist ein Sonntag"
    assert due.label() == "Montag, 28.06.2027 — der 27.06.2027 ist ein Sonntag"
    assert due.skipped == ((date(2027, 6, 27), ("Sonntag",)),)


def test_a_period_ending_on_a_saturday_skips_the_whole_weekend():
    due = d.completeness(parse_instant("2027-04-29"), HE)
    assert (due.statutory, due.end) == (date(2027, 5, 29), date(2027, 5, 31))
    assert due.reason() == "der 29.05.2027 ist ein Samstag, der 30.05.2027 ist ein Sonntag"


def test_a_working_day_is_not_moved():
    due = d.decision(parse_instant("2027-02-28"), HE)
    assert (due.statutory, due.end, due.skipped, due.reason()) == (date(2027, 5, 28), date(2027, 5, 28), (), None)
    assert due.label() == "Freitag, 28.05.2027"


@pytest.mark.parametrize(("code", "end"), [
    ("HE", date(2027, 5, 28)), ("BY", date(2027, 5, 28)), ("NW", date(2027, 5, 28)),
    ("SN", date(2027, 5, 27)), ("TH", date(2027, 5, 27)), ("NI", date(2027, 5, 27)),
])
def test_fronleichnam_moves_the_end_only_in_the_states_that_keep_it(code, end):
    due = d.decision(parse_instant("2027-02-27"), state(code))
    assert (due.statutory, due.end) == (date(2027, 5, 27), end)
    if end != due.statutory:
        assert due.label() == "Freitag, 28.05.2027 — der 27.05.2027 ist Fronleichnam"


@pytest.mark.parametrize(("last", "code", "end", "reason"), [
    (date(2027, 11, 17), "SN", date(2027, 11, 18), "der 17.11.2027 ist Buß- und Bettag"),
    (date(2027, 11, 17), "HE", date(2027, 11, 17), None),
    (date(2027, 11, 1), "NW", date(2027, 11, 2), "der 01.11.2027 ist Allerheiligen"),
    (date(2027, 11, 1), "HE", date(2027, 11, 1), None),
    (date(2027, 10, 31), "SN", date(2027, 11, 1), "der 31.10.2027 ist ein Sonntag und Reformationstag"),
    (date(2027, 9, 20), "TH", date(2027, 9, 21), "der 20.09.2027 ist Weltkindertag"),
])
def test_holidays_of_some_states_only(last, code, end, reason):
    due = d.working_end(last, state(code))
    assert (due.end, due.reason()) == (end, reason)


def test_christmas_followed_by_a_weekend():
    # 2026: Christmas Day Friday, Boxing Day Saturday, then Sunday → Monday 28 December
    due = d.decision(parse_instant("2026-09-25"), HE)
    assert (due.statutory, due.end, due.moved_days) == (date(2026, 12, 25), date(2026, 12, 28), 3)
    assert due.reason() == ("der 25.12.2026 ist Erster Weihnachtstag, der 26.12.2026 ist ein Samstag und Zweiter "
                            "Weihnachtstag, der 27.12.2026 ist ein Sonntag")
    # 2027: both Christmas days fall on the weekend
    due = d.decision(parse_instant("2027-09-25"), HE)
    assert (due.end, due.label()) == (date(2027, 12, 27), "Montag, 27.12.2027 — der 25.12.2027 ist ein Samstag und "
                                      "Erster Weihnachtstag, der 26.12.2027 ist ein Sonntag und Zweiter Weihnachtstag")


def test_easter_moves_a_good_friday_end_by_four_days():
    due = d.working_end(date(2026, 4, 3), HE)
    assert (due.end, [day for day, _ in due.skipped]) == (
        date(2026, 4, 7), [date(2026, 4, 3), date(2026, 4, 4), date(2026, 4, 5), date(2026, 4, 6)])


def test_a_moved_end_across_the_autumn_dst_switch_expires_at_local_midnight():
    # statutory Saturday 24 October 2026; Sunday 25 October has 25 hours (CEST → CET); ends Monday 26 October
    due = d.decision(utc("2026-07-24T10:00:00+02:00"), HE)
    assert (due.statutory, due.end) == (date(2026, 10, 24), date(2026, 10, 26))
    assert d.period_end(due.end) == utc("2026-10-27T00:00:00+01:00") == utc("2026-10-26T23:00:00+00:00")
    # and across the spring switch: Easter Sunday 28 March 2027 (23 hours), Easter Monday → Tuesday 30 March,
    # 24:00 CEST
    due = d.completeness(utc("2027-02-28T09:00:00+01:00"), HE)
    assert (due.statutory, due.end) == (date(2027, 3, 28), date(2027, 3, 30))
    assert due.reason().endswith("der 29.03.2027 ist Ostermontag")
    assert d.period_end(due.end) == utc("2027-03-30T22:00:00+00:00")


def test_29_february():
    # 2032-02-29 is a Sunday: receipt on 30 November + 3 months (§ 188 (3)) and 31 January + 1 month end there
    for due in (d.decision(parse_instant("2031-11-30"), HE), d.completeness(parse_instant("2032-01-31"), HE)):
        assert (due.statutory, due.end, due.reason()) == (date(2032, 2, 29), date(2032, 3, 1),
                                                          "der 29.02.2032 ist ein Sonntag")
    # 2028-02-29 is a Tuesday: no move; the extension runs from it to 29 March (§ 190)
    due = d.decision(parse_instant("2027-11-29"), HE)
    assert (due.statutory, due.end) == (date(2028, 2, 29), date(2028, 2, 29))
    assert d.extension(due.end, HE).end == date(2028, 3, 29)


def test_the_extension_runs_from_the_moved_end():
    first = d.working_end(date(2027, 5, 29), HE)                 # Saturday → Monday 31 May
    longer = d.extension(first.end, HE)
    assert (first.end, longer.statutory, longer.end) == (date(2027, 5, 31), date(2027, 6, 30), date(2027, 6, 30))
    assert d.extended(first.statutory) == date(2027, 6, 29)      # what counting from the unmoved day would give
    # the extension's own end is moved too: 1 month after Monday 27 September 2027 is Wednesday 27 October; after
    # Friday 26 November 2027 is Sunday 26 December (Zweiter Weihnachtstag) → Monday 27 December
    assert d.extension(date(2027, 11, 26), HE).end == date(2027, 12, 27)


def test_places_inside_a_state():
    rules = Holidays.model_validate({"state": "BY", "places": [
        {"ags": "09761", "name": "Stadt Augsburg", "subdivision": "Augsburg"},
        {"ags": "0976", "categories": ["catholic"]}]})
    augsburg = w.calendar_for(rules, "09761000")
    assert (augsburg.subdivision, augsburg.place) == ("Augsburg", "09761")      # the longest prefix wins
    assert d.working_end(date(2028, 8, 8), augsburg).reason() == "der 08.08.2028 ist Augsburger Hohes Friedensfest"
    assert d.working_end(date(2028, 8, 8), w.calendar_for(rules, "09162000")).end == date(2028, 8, 8)   # München
    assert d.working_end(date(2028, 8, 8), w.calendar_for(rules)).end == date(2028, 8, 8)              # the state
    # Fronleichnam in Saxony only where the place keeps it (Catholic communities of the Sorbian area)
    sn = Holidays.model_validate({"state": "SN", "places": [{"ags": "14625240", "categories": ["catholic"]}]})
    assert d.working_end(date(2027, 5, 27), w.calendar_for(sn, "14625240")).end == date(2027, 5, 28)
    assert d.working_end(date(2027, 5, 27), w.calendar_for(sn, "14612000")).end == date(2027, 5, 27)   # Dresden


def test_days_the_tenant_adds():
    rules = Holidays.model_validate({"state": "HE", "days": [{"date": "12-24", "name": "Heiligabend (dienstfrei)"},
                                                            {"date": "2027-06-18", "name": "Hessentag"}]})
    cal = w.calendar_for(rules)
    assert d.working_end(date(2027, 12, 24), cal).reason() == (
        "der 24.12.2027 ist Heiligabend (dienstfrei), der 25.12.2027 ist ein Samstag und Erster Weihnachtstag, "
        "der 26.12.2027 ist ein Sonntag und Zweiter Weihnachtstag")
    assert d.working_end(date(2027, 6, 18), cal).end == date(2027, 6, 21)
    assert d.working_end(date(2027, 12, 24), HE).end == date(2027, 12, 24)      # 24 December is no holiday by law


def rules_with(holidays) -> dict:
    return {"key": "xx", "name": "X", "state_key": "06", "crs": "EPSG:25832", "road_classes": {"B": "bund"},
            **({"holidays": holidays} if holidays is not None else {})}


def test_the_tenant_rules_name_the_state():
    assert parse_rules(rules_with("SN")).holidays.state == "SN"
    assert parse_rules(rules_with(None)).holidays.state == "HE"            # from state_key "06"
    assert parse_rules(rules_with({"state": "BY", "places": [{"ags": "09761", "subdivision": "Augsburg"}]})
                       ).holidays.places[0].subdivision == "Augsburg"
    for bad, message in (("XX", "unknown state 'XX'"),
                         ({"state": "BY", "categories": ["school"]}, "unknown holiday categories ['school']"),
                         ({"places": [{"ags": "09761", "subdivision": "Atlantis"}]}, "unknown subdivision 'Atlantis'"),
                         ({"days": [{"date": "2027-02-30", "name": "x"}]}, "'2027-02-30' is not a day")):
        with pytest.raises(UnprocessableEntity) as exc:
            parse_rules(rules_with(bad))
        assert "holidays" in exc.value.detail and message in exc.value.detail, exc.value.detail
