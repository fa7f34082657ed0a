"""Migration 0014: open cases get period ends moved off weekends and holidays of their authority's place, with the
statutory days beside them, and the migration says how many moved; closed cases keep their stored deadlines."""

from __future__ import annotations

import json
import tomllib
import uuid
from datetime import date, datetime, timezone

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from breitband.migrate import create_database, drop_database, upgrade
from breitband.settings import PROJECT_ROOT
from geo.rules import validate_rules
from tests.conftest import TEST_DATABASE_URL


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).astimezone(timezone.utc)


def test_open_cases_are_recomputed_and_closed_ones_kept(capsys):
    url = make_url(TEST_DATABASE_URL).set(database="breitband_test_migration_0014").render_as_string(
        hide_password=False)
    drop_database(url)
    create_database(url)
    engine = create_engine(url)
    with open(PROJECT_ROOT / "data" / "tenants" / "by.toml", "rb") as fh:
        by = validate_rules(tomllib.load(fh), "by")          # Bavaria, with Augsburg as a place of its own
    try:
        upgrade(url, "0013")
        ids = {k: uuid.uuid4() for k in ("op", "augsburg", "muenchen", "app", "open", "augsburg_case", "extended",
                                         "stopped", "granted")}
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants (key, name, srid, rules) VALUES ('by', 'Bayern', 25832, "
                              "CAST(:r AS jsonb)), ('xm', 'M', 25832, '{}')"), {"r": json.dumps(by)})
            for key, kind, name in (("op", "operator", "Netz GmbH"), ("augsburg", "road_authority", "Stadt Augsburg"),
                                    ("muenchen", "road_authority", "Landeshauptstadt München")):
                conn.execute(text("INSERT INTO organisations (id, tenant_key, kind, name) VALUES (:id, 'by', :k, :n)"),
                             {"id": ids[key], "k": kind, "n": name})
            for key, ags in (("augsburg", "09761000"), ("muenchen", "09162000")):
                conn.execute(text("INSERT INTO authorities (organisation_id, tenant_key, kind, key, jurisdiction) "
                                  "VALUES (:id, 'by', 'gemeinde', :ags, 'Gemeindestraßen')"),
                             {"id": ids[key], "ags": ags})
            conn.execute(text("INSERT INTO applications (id, tenant_key, reference, applicant_org_id, status, "
                              "current_version, created_at, updated_at, row_version) VALUES (:id, 'by', "
                              "'BY-2027-000001', :op, 'submitted', 1, :at, :at, 1)"),
                         {"id": ids["app"], "op": ids["op"], "at": at("2027-02-27T10:00:00+01:00")})

            def case(key, authority, status, received, complete, completeness_due, decision_due, extension=None,
                     effective_on=None):
                deadline = None if decision_due is None else datetime.combine(
                    decision_due, datetime.min.time()).replace(tzinfo=timezone.utc)
                conn.execute(text(
                    "INSERT INTO cases (id, tenant_key, application_id, authority_org_id, applicant_org_id, status, "
                    "application_version, part, received_at, completeness_due, complete_at, decision_due, "
                    "deadline_at, extension, information_requests, effective_on, created_at, updated_at, "
                    "row_version) VALUES (:id, 'by', :app, :auth, :op, :status, 1, '{}', :rec, :cdue, :comp, :ddue, "
                    ":dl, CAST(:ext AS jsonb), '[]', :eff, :rec, :rec, 1)"),
                    {"id": ids[key], "app": ids["app"], "auth": ids[authority], "op": ids["op"], "status": status,
                     "rec": at(received), "cdue": completeness_due,
                     "comp": at(complete) if complete else None, "ddue": decision_due, "dl": deadline,
                     "ext": json.dumps(extension), "eff": effective_on})

            # received 27 Feb 2027: month ends Sat 27 Mar (→ Tue 30 Mar after Easter), period Thu 27 May
            # (Fronleichnam, a Bavarian holiday → Fri 28 May)
            case("open", "muenchen", "received", "2027-02-27T10:00:00+01:00", "2027-02-27T10:00:00+01:00",
                 date(2027, 3, 27), date(2027, 5, 27))
            # received 8 May 2028 in Augsburg: period ends 8 Aug 2028, the Friedensfest, a holiday in Augsburg only
            case("augsburg_case", "augsburg", "in_review", "2028-05-08T10:00:00+02:00", "2028-05-08T10:00:00+02:00",
                 date(2028, 6, 8), date(2028, 8, 8))
            # extended: 28 Jan 2027 + 3 months = Wed 28 Apr (no move), + 1 month = Fri 28 May: nothing moves
            case("extended", "muenchen", "in_review", "2027-01-28T10:00:00+01:00", "2027-01-28T10:00:00+01:00",
                 date(2027, 2, 28), date(2027, 5, 28), {"reason": "x", "previous_due": "2027-04-28",
                                                        "decision_due": "2027-05-28"})
            # clock stopped (information requested in time): only the month moves (28 Mar 2027: Easter Sunday)
            case("stopped", "muenchen", "incomplete", "2027-02-28T10:00:00+01:00", None, date(2027, 3, 28), None)
            # closed before the migration: keeps its unmoved deadline (27 May 2027, Fronleichnam)
            case("granted", "muenchen", "deemed_granted", "2027-02-27T11:00:00+01:00", "2027-02-27T11:00:00+01:00",
                 date(2027, 3, 27), date(2027, 5, 27), effective_on=date(2027, 5, 27))
        upgrade(url, "head")
        printed = capsys.readouterr().out
        assert "0014: recomputed 4 open cases on working days (§ 193 BGB): 4 moved (3 completeness ends, " \
               "2 decision ends)" in printed
        with engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(text(
                "SELECT id, completeness_due_statutory, completeness_due, decision_due_statutory, decision_due, "
                "deadline_at, due_moves, effective_on FROM cases"))}
        name = {v: k for k, v in ids.items()}
        got = {name[i]: (r.completeness_due_statutory, r.completeness_due, r.decision_due_statutory,
                         r.decision_due) for i, r in rows.items()}
        assert got == {
            "open": (date(2027, 3, 27), date(2027, 3, 30), date(2027, 5, 27), date(2027, 5, 28)),
            "augsburg_case": (date(2028, 6, 8), date(2028, 6, 8), date(2028, 8, 8), date(2028, 8, 9)),
            "extended": (date(2027, 2, 28), date(2027, 3, 1), date(2027, 5, 28), date(2027, 5, 28)),
            "stopped": (date(2027, 3, 28), date(2027, 3, 30), None, None),
            "granted": (date(2027, 3, 27), date(2027, 3, 27), date(2027, 5, 27), date(2027, 5, 27)),
        }
        assert rows[ids["open"]].deadline_at == at("2027-05-29T00:00:00+02:00")
        assert rows[ids["open"]].due_moves["decision"]["reason"] == "der 27.05.2027 ist Fronleichnam"
        assert rows[ids["augsburg_case"]].due_moves["decision"]["reason"] == \
            "der 08.08.2028 ist Augsburger Hohes Friedensfest"
        assert (rows[ids["granted"]].due_moves, rows[ids["granted"]].effective_on) == ({}, date(2027, 5, 27))
    finally:
        engine.dispose()
        drop_database(url)
