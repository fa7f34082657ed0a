"""The deadline calculator for staff and for checks (``GET /api/v1/deadlines``, ``breitband deadlines compute``):
from a receipt (and a complete receipt, and whether the decision period is extended) to the completeness due,
the decision due and the extended due on the tenant's working calendar, with the reason for every move. The same
functions compute the clocks of real cases (permits/deadlines.py, permits/core.py); nothing is stored."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from breitband.dates import BERLIN, iso, parse_instant
from breitband.errors import UnprocessableEntity
from permits import core, deadlines, workdays

FIRST, LAST = date(2000, 1, 1), date(2999, 12, 31)


def parse_moment(text: str | None, field: str) -> datetime:
    """A receipt given as ISO 8601 date (start of that day in Europe/Berlin) or date-time; → UTC instant. A bad
    value → 422 naming ``field``."""
    try:
        if text is None or not text.strip():
            raise ValueError
        value = parse_instant(text)
        day = value.astimezone(BERLIN).date()
    except (ValueError, OverflowError):
        raise UnprocessableEntity(f"{field}: {text!r} is not an ISO 8601 date (YYYY-MM-DD) or date-time",
                                  type="validation-error", field=field) from None
    if not FIRST <= day <= LAST:
        raise UnprocessableEntity(f"{field}: {text!r} is not between {FIRST} and {LAST}", type="validation-error",
                                  field=field)
    return value


def _due(due: deadlines.Due) -> dict[str, Any]:
    return {**due.as_json(), "label": due.label(), "expires_at": iso(deadlines.period_end(due.end))}


def compute(session: Session, tenant_key: str, received: str, complete: str | None = None, extended: bool = False,
            place: str | None = None) -> dict[str, Any]:
    """The three period ends for a receipt ``received`` (complete receipt ``complete``, default the receipt) on the
    calendar of the tenant, or of the place with AGS ``place`` where the tenant's rules name one."""
    received_at = parse_moment(received, "received")
    complete_at = parse_moment(complete, "complete") if complete is not None else received_at
    if complete_at < received_at:
        raise UnprocessableEntity(f"complete: {complete!r} lies before the receipt {received!r}",
                                  type="validation-error", field="complete")
    if place is not None and not (place.isdigit() and 2 <= len(place) <= 8):
        raise UnprocessableEntity(f"place: {place!r} is not an AGS (2 to 8 digits, e.g. 09761000 for Augsburg)",
                                  type="validation-error", field="place")
    holidays = core.tenant_holidays(session, tenant_key)
    cal = workdays.calendar_for(holidays, place)
    completeness = deadlines.completeness(received_at, cal)
    decision = deadlines.decision(complete_at, cal)
    longer = deadlines.extension(decision.end, cal)
    last = longer if extended else decision
    return {
        "tenant": tenant_key,
        "calendar": {"state": holidays.state, "subdivision": cal.subdivision,
                     "categories": list(cal.categories), "place": cal.place, "local_days": len(cal.days)},
        "received_on": deadlines.local_date(received_at).isoformat(),
        "complete_on": deadlines.local_date(complete_at).isoformat(),
        "completeness": _due(completeness),
        "decision": _due(decision),
        "extended": _due(longer),
        "applies_extension": extended,
        "deemed_approval_at": iso(deadlines.period_end(last.end)),
    }


def lines(result: dict[str, Any]) -> list[str]:
    """The result for people (the CLI's text output), German labels."""
    cal = result["calendar"]
    where = f", Ort {cal['place']}" if cal["place"] else ""
    out = [f"Mandant {result['tenant']}, Feiertage {cal['subdivision']} ({', '.join(cal['categories'])}{where})",
           f"Eingang {deadlines.de_date(date.fromisoformat(result['received_on']))}, vollständig seit "
           f"{deadlines.de_date(date.fromisoformat(result['complete_on']))}"]
    names = {"completeness": "Vollständigkeitsprüfung (1 Monat)", "decision": "Entscheidungsfrist (3 Monate)",
             "extended": "verlängert (§ 150 TKG, + 1 Monat)"}
    for key, name in names.items():
        due = result[key]
        statutory = date.fromisoformat(due["statutory"])
        text = f"{name}: Fristende {due['label']}"
        if due["moved_days"]:
            n = due["moved_days"]
            text += f" (gesetzlich {deadlines.de_date(statutory)}, +{n} {'Tag' if n == 1 else 'Tage'})"
        out.append(text)
    out.append(f"Zustimmungsfiktion ab {result['deemed_approval_at']}"
               f"{' (mit Verlängerung)' if result['applies_extension'] else ''}")
    return out
