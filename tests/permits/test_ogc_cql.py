"""CQL2 filters, sort keys and queryables (permits/gis/cql.py): every operator parsed, translated and EXECUTED on
applications and cases made through the API in the test database; every error a 400 invalid-parameter naming the
parameter, the property and, for syntax errors, the position; injection attempts stay string literals."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text

from breitband.errors import ProblemError
from geo.crs import transformer
from permits.gis import cql
from permits.gis.params import BadParameter
from permits.models import Application, Case
from tests.support.api import collection, draft_body, trench

QUERYABLES = {q.name: q for q in (
    cql.Queryable("reference", Application.reference, "string", "Aktenzeichen"),
    cql.Queryable("project_name", Application.project_name, "string", "Vorhaben"),
    cql.Queryable("operator_reference", Application.operator_reference, "string", "Zeichen des Betreibers"),
    cql.Queryable("status", Application.status, "string", "Stand",
                  enum=("draft", "submitted", "granted")),
    cql.Queryable("version", Application.current_version, "integer", "Version"),
    cql.Queryable("length_m", lambda: func.ST_Length(func.ST_Transform(Application.route_geom, 25832)), "number",
                  "Länge in m"),
    cql.Queryable("submitted_at", Application.submitted_at, "datetime", "eingereicht"),
    cql.Queryable("works_started_on", Application.works_started_on, "date", "Baubeginn"),
    cql.Queryable("is_submitted", Application.submitted_at.is_not(None), "boolean", "eingereicht?"),
    cql.Queryable("case_status", Case.status, "string", "Stand des Verfahrens"),
    cql.Queryable("decision_due", Case.decision_due, "date", "Entscheidung fällig"),
)}


@pytest.fixture
def apps(api, he, lines, clock, session):
    """Three applications of one operator: two submitted (Neu-Isenburg, its case confirmed complete; Frankfurt
    K 823), one draft."""
    clock.set("2026-01-15T10:00:00+01:00")
    ni = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])),
                       project_name="Gravenbruch 100% Glasfaser", operator_reference="GRM_NI_1")
    clock.set("2026-01-15T11:00:00+01:00")
    ffm = api.submitted(he.operator, collection(trench(lines["k823"])), project_name="Frankfurt K 823",
                        operator_reference="GRMX823")
    draft = api.create(he.operator, {**_draft(lines), "project_name": "O'Brien-Weg",
                                     "operator_reference": "NI\\BUCHEN"})
    assert draft.status_code == 201, draft.text
    case_id = api.case_of(ni, "Stadt Neu-Isenburg")
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/confirm-complete", {"note": "vollständig"})
    assert r.status_code == 200, r.text
    return {"ni": ni, "ffm": ffm, "draft": draft.json(), "org": he.orgs["operator"]}


def _draft(lines):
    return draft_body(collection(trench(lines["neu_isenburg_2"])))


def names(session, apps, filter_text: str, lang: str | None = None, **kw) -> list[str]:
    """The project names of the operator's applications (joined to their cases) that the filter selects."""
    where = cql.parse_filter(filter_text, lang, QUERYABLES, geometry=Application.route_geom, **kw)
    stmt = (select(Application.project_name).distinct().outerjoin(Case, Case.application_id == Application.id)
            .where(Application.applicant_org_id == apps["org"], where).order_by(Application.project_name))
    return list(session.scalars(stmt))


ALL = ["Frankfurt K 823", "Gravenbruch 100% Glasfaser", "O'Brien-Weg"]
NI, FFM, DRAFT = "Gravenbruch 100% Glasfaser", "Frankfurt K 823", "O'Brien-Weg"


def test_comparisons_logic_and_null(session, apps):
    q = lambda t, **kw: names(session, apps, t, **kw)  # noqa: E731
    assert q("status = 'submitted'") == [FFM, NI]
    assert q("status <> 'submitted'") == [DRAFT]
    assert q("status = 'draft' OR project_name = 'Frankfurt K 823'") == [FFM, DRAFT]
    assert q("status = 'submitted' AND NOT project_name = 'Frankfurt K 823'") == [NI]
    assert q("NOT (status = 'draft' OR project_name = 'Frankfurt K 823')") == [NI]          # NOT of a group
    assert q("not not status = 'draft'") == [DRAFT]                                           # keywords any case
    assert q("(status = 'draft' OR status = 'submitted') AND version = 1") == ALL
    assert q("status = 'draft' OR status = 'submitted' AND version = 2") == [DRAFT]          # AND binds tighter
    assert q("version >= 1 AND version <= 1 AND version > 0 AND version < 2") == ALL
    assert q("version > 1") == []
    assert q("length_m > 175 AND length_m < 400.5") == [FFM, NI]         # trenches of 250 m and 200 m …
    assert q("length_m < 175") == [DRAFT]                                # … and 150 m
    assert q("project_name < 'G'") == [FFM]                                                   # strings order too
    assert q("submitted_at IS NULL") == [DRAFT]
    assert q("submitted_at IS NOT NULL") == [FFM, NI]
    assert q("works_started_on IS NULL") == ALL
    assert q("is_submitted") == [FFM, NI]                                                     # a boolean property
    assert q("NOT is_submitted") == [DRAFT]
    assert q("is_submitted = FALSE") == [DRAFT]
    assert q("TRUE") == ALL and q("false") == []
    assert q("project_name = project_name AND reference <> project_name") == ALL            # property-property
    assert q('"project_name" = \'Frankfurt K 823\'') == [FFM]                                 # quoted name


def test_like_in_between_casei(session, apps):
    q = lambda t, **kw: names(session, apps, t, **kw)  # noqa: E731
    assert q("project_name LIKE 'Gravenbruch%'") == [NI]
    assert q("project_name LIKE '%100\\%%'") == [NI]                 # \% is a percent sign
    assert q("project_name LIKE '%1_0\\%%'") == [NI]                 # _ one character
    assert q("project_name LIKE '%10\\%%'") == []
    assert q("operator_reference LIKE 'GRM_%'") == [FFM, NI]         # _ matches the X of GRMX823 …
    assert q("operator_reference LIKE 'GRM\\_%'") == [NI]            # … \_ only an underscore
    assert q("operator_reference LIKE 'NI\\\\BUCHEN'") == [DRAFT]    # \\ a backslash
    assert q("project_name NOT LIKE '%a%'") == [DRAFT]
    assert q("CASEI(project_name) LIKE casei('frankfurt%')") == [FFM]
    assert q("CASEI(project_name) = CASEI('FRANKFURT K 823')") == [FFM]
    assert q("project_name LIKE 'frankfurt%'") == []                 # LIKE itself is case-sensitive
    assert q("status IN ('draft', 'granted')") == [DRAFT]
    assert q("status NOT IN ('draft')") == [FFM, NI]
    assert q("version IN (1, 2.0)") == ALL
    assert q("version BETWEEN 1 AND 1") == ALL
    assert q("version NOT BETWEEN 2 AND 5") == ALL
    assert q("length_m BETWEEN 0 AND 1") == []


def test_dates_and_timestamps(session, apps):
    q = lambda t, **kw: names(session, apps, t, **kw)  # noqa: E731
    # submitted 09:00Z and 10:00Z; decision due three months after receipt: 2026-04-15
    assert q("submitted_at >= TIMESTAMP('2026-01-15T09:30:00Z')") == [FFM]
    assert q("submitted_at < TIMESTAMP('2026-01-15T10:30:00+01:00')") == [NI]                 # an offset counts
    assert q("submitted_at BETWEEN TIMESTAMP('2026-01-15T08:00:00Z') AND TIMESTAMP('2026-01-15T09:00:00Z')") == [NI]
    assert q("decision_due = DATE('2026-04-15')") == [FFM, NI]
    assert q("decision_due < DATE('2026-04-15')") == []
    assert q("case_status IN ('received', 'in_review') AND decision_due < DATE('2027-03-01')") == [FFM, NI]
    assert q("case_status = 'in_review'") == [NI]
    assert q("decision_due BETWEEN DATE('2026-04-01') AND DATE('2026-04-30') AND case_status = 'received'") \
        == [FFM]


def test_spatial_in_filter_crs(session, apps, lines):
    q = lambda t, **kw: names(session, apps, t, **kw)  # noqa: E731
    xs = [c[0] for c in lines["k823"]["coordinates"]]
    ys = [c[1] for c in lines["k823"]["coordinates"]]
    x0, y0, x1, y1 = min(xs) - 0.0005, min(ys) - 0.0005, max(xs) + 0.0005, max(ys) + 0.0005
    assert q(f"S_INTERSECTS(geometry, BBOX({x0}, {y0}, {x1}, {y1}))") == [FFM]
    assert q(f"s_intersects(geometry, polygon(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0})))") == [FFM]
    assert q(f"S_DISJOINT(geometry, BBOX({x0}, {y0}, {x1}, {y1}))") == [NI, DRAFT]
    lon, lat = lines["k823"]["coordinates"][0]
    # EPSG:4326 is latitude first; CRS84 longitude first: the same point both ways
    assert q(f"S_INTERSECTS(geometry, BBOX({lat - 0.0002}, {lon - 0.0002}, {lat + 0.0002}, {lon + 0.0002}))",
             filter_crs="http://www.opengis.net/def/crs/EPSG/0/4326") == [FFM]
    assert q(f"S_INTERSECTS(geometry, BBOX({lat - 0.0002}, {lon - 0.0002}, {lat + 0.0002}, {lon + 0.0002}))") \
        == []                                                                    # read as CRS84: somewhere else
    e, n = transformer(4326, 25832).transform(lon, lat)
    assert q(f"S_INTERSECTS(geometry, POLYGON(({e - 20} {n - 20}, {e + 20} {n - 20}, {e + 20} {n + 20}, "
             f"{e - 20} {n + 20}, {e - 20} {n - 20})))", filter_crs="http://www.opengis.net/def/crs/EPSG/0/25832") \
        == [FFM]
    assert q(f"S_INTERSECTS(geometry, POINT({e} {n}))", filter_crs="EPSG:25832") == []        # beside the trench
    assert q("S_WITHIN(geometry, BBOX(5, 47, 15, 55)) AND status = 'submitted'") == [FFM, NI]


def test_cql2_json(session, apps, lines):
    q = lambda node, **kw: names(session, apps, json.dumps(node), "cql2-json", **kw)  # noqa: E731
    prop = lambda n: {"property": n}  # noqa: E731
    assert q({"op": "and", "args": [{"op": "in", "args": [prop("case_status"), ["received", "in_review"]]},
                                    {"op": "<", "args": [prop("decision_due"), {"date": "2027-03-01"}]}]}) == [FFM, NI]
    either = {"op": "or", "args": [{"op": "=", "args": [prop("status"), "draft"]},
                                   {"op": "like", "args": [prop("project_name"), "Frank%"]}]}
    assert q({"op": "not", "args": [either]}) == [NI]
    assert q({"op": "between", "args": [prop("version"), 1, 3]}) == ALL
    assert q({"op": "isNull", "args": [prop("submitted_at")]}) == [DRAFT]
    assert q({"op": ">", "args": [prop("submitted_at"), {"timestamp": "2026-01-15T09:30:00Z"}]}) == [FFM]
    assert q({"op": "=", "args": [{"op": "casei", "args": [prop("project_name")]},
                                  {"op": "casei", "args": ["frankfurt k 823"]}]}) == [FFM]
    xs = [c[0] for c in lines["k823"]["coordinates"]]
    ys = [c[1] for c in lines["k823"]["coordinates"]]
    box = [min(xs) - 0.0005, min(ys) - 0.0005, max(xs) + 0.0005, max(ys) + 0.0005]
    assert q({"op": "s_intersects", "args": [prop("geometry"), {"bbox": box}]}) == [FFM]
    assert q({"op": "s_intersects", "args": [prop("geometry"), {"type": "Polygon", "coordinates": [[
        [box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]], [box[0], box[1]]]]}]}) == [FFM]
    assert q(prop("is_submitted")) == [FFM, NI] and q(True) == ALL


def test_injection_attempts_stay_literals(session, apps):
    q = lambda t, **kw: names(session, apps, t, **kw)  # noqa: E731
    assert q("status = 'x'' OR 1=1 --'") == []                              # '' is a quote inside the string
    assert q("project_name = 'O''Brien-Weg'") == [DRAFT]
    assert q("project_name = 'x''); DROP TABLE applications; --'") == []
    assert q("project_name LIKE '%'' OR ''1''=''1'") == []
    assert session.scalar(select(func.count()).select_from(Application)) >= 3             # the table is there
    for attack, prop in (('"status; DROP TABLE applications" = 1', "status; DROP TABLE applications"),
                         ("pg_sleep(10) IS NULL", None), ('"applications.id" IS NULL', "applications.id")):
        with pytest.raises(BadParameter) as err:
            q(attack)
        assert err.value.extra.get("property") == prop, attack
    # a statement that only binds: no client text in the SQL
    where = cql.parse_filter("status = 'x'' OR 1=1 --'", None, QUERYABLES)
    assert "1=1" not in str(where.compile()) and "OR" not in str(where.compile())


def test_enum_values_are_written_into_the_sql_and_nothing_else(session, apps, engine):
    """A status compared with one of its enum values is rendered as a constant (a partial index's predicate can be
    proven from it); any other string stays a bound parameter."""
    def sql(filter_text: str) -> str:
        where = cql.parse_filter(filter_text, None, QUERYABLES)
        return str(select(Application.id).where(where).compile(engine, compile_kwargs={"render_postcompile": True}))

    assert "applications.status IN ('draft', 'granted')" in sql("status IN ('draft', 'granted')")
    assert "'submitted' != applications.status" in sql("'submitted' <> status")
    assert "'draft'" not in sql("project_name = 'draft'")                  # no enum: bound
    bound = sql("status IN ('draft', 'draft'' OR 1=1 --')")
    assert "'draft'" in bound and "1=1" not in bound                      # not an enum value: bound
    assert names(session, apps, "status IN ('draft', 'granted')") == [DRAFT]
    assert names(session, apps, "status IN ('draft', 'draft'' OR 1=1 --')") == [DRAFT]


ERRORS = [
    # (filter, lang, property, words in the detail, position)
    ("status = ", None, None, "syntax error at character 10", 10),
    ("status = 'a' AND", None, None, "syntax error at character 17", 17),
    ("status == 'a'", None, None, "syntax error at character 9", 9),
    ("status = 'open", None, None, "syntax error at character 10", 10),
    ("(status = 'a'", None, None, "syntax error", 14),
    ("status = 'a' @", None, None, "syntax error at character 14", 14),
    ("nonsense = 1", None, "nonsense", "unknown property 'nonsense'; the queryables are case_status", None),
    ("status = 5", None, "status", "'status' is a string but 5 is an integer", None),
    ("version = 'eins'", None, "version", "'version' is an integer but 'eins' is a string", None),
    ("decision_due < '2027-03-01'", None, "decision_due", "write a date as DATE('YYYY-MM-DD')", None),
    ("submitted_at < DATE('2027-03-01')", None, "submitted_at", "is a timestamp but DATE('2027-03-01') is a date",
     None),
    ("decision_due < DATE('2027-02-30')", None, None, "is not a calendar date", None),
    ("decision_due < DATE('1.3.2027')", None, None, "a date YYYY-MM-DD expected", None),
    ("submitted_at < TIMESTAMP('2027-03-01T10:00:00')", None, None, "with its time zone expected", None),
    ("version LIKE '1%'", None, "version", "LIKE compares strings", None),
    ("project_name LIKE 'abc\\'", None, "project_name", "ends in its escape character", None),
    ("project_name LIKE reference", None, "project_name", "must be a string literal", None),
    ("status IN ('a', 1)", None, "status", "'status' is a string but 1 is an integer", None),
    ("is_submitted < TRUE", None, "is_submitted", "does not order", None),
    ("status BETWEEN 'a' AND 'c' AND is_submitted BETWEEN FALSE AND TRUE", None, "is_submitted", "ordered values",
     None),
    ("status", None, "status", "is a string, not a condition", None),
    ("version = 1 AND 2", None, None, "2 is an integer, not a condition", None),
    ("T_BEFORE(decision_due, DATE('2027-01-01'))", None, None, "temporal functions (T_BEFORE) are not supported",
     None),
    ("ACCENTI(project_name) = 'a'", None, None, "ACCENTI is not supported", None),
    ("UPPER(project_name) = 'A'", None, None, "unknown function 'UPPER'", None),
    ("S_INTERSECTS(status, POINT(8 50))", None, "status", "compares geometries", None),
    ("S_INTERSECTS(geometry, POINT(8 95))", None, None, "outside ±180/±90", None),
    ("S_INTERSECTS(geometry, POLYGON((8 50, 9 51, 9 50, 8 51, 8 50)))", None, None, "not a valid geometry", None),
    ("S_INTERSECTS(geometry, POLYGON((8 50, 9 51)))", None, None, "not valid WKT", 24),
    ("S_INTERSECTS(geometry, BBOX(9, 50, 8, 51))", None, None, "the minimum comes first", None),
    ("S_INTERSECTS(geometry, POINT EMPTY)", None, None, "an empty geometry matches nothing", None),
    ("geometry = POINT(8 50)", None, "geometry", "S_EQUALS", None),
    ("version = 1e999", None, None, "not a finite number", None),
    ("(" * 70 + "version = 1" + ")" * 70, "cql2-text", None, None, None),       # parses: parentheses collapse
    ('{"op": "=", "args": [{"property": "status"}]}', "cql2-json", None, "= takes 2 arguments", None),
    ('{"op": "=", "args": [{"property": "nope"}, 1]}', "cql2-json", "nope", "unknown property 'nope'", None),
    ('{"op": "like", "args": [{"property": "status"}, 1]', "cql2-json", None, "is not JSON", 51),
    ('{"op": "in", "args": [{"property": "status"}, []]}', "cql2-json", None, "non-empty list", None),
    ('"status"', "cql2-json", None, "a condition", None),
    ('{"op": "=", "args": [{"property": "status"}, "a\\u0000b"]}', "cql2-json", None, "NUL", None),
    ('{"op": "not", "args": [' * 70 + "true" + "]}" * 70, "cql2-json", None, "nested more than 60", None),
]


@pytest.mark.parametrize(("filter_text", "lang", "prop", "words", "position"), ERRORS)
def test_errors_are_400_naming_parameter_property_and_position(session, apps, filter_text, lang, prop, words,
                                                               position):
    if words is None:                                          # the deep parentheses: valid, one condition
        assert names(session, apps, filter_text, lang) == ALL
        return
    with pytest.raises(BadParameter) as err:
        names(session, apps, filter_text, lang)
    e = err.value
    assert isinstance(e, ProblemError) and (e.status, e.type) == (400, "invalid-parameter")
    assert e.extra["parameter"] == "filter" and e.extra.get("property") == prop, e.extra
    assert words in e.detail, e.detail
    assert e.extra.get("position") == position, (e.detail, e.extra)
    problem = e.to_problem()
    assert problem["type"].endswith("/invalid-parameter") and problem["parameter"] == "filter"


def test_parameter_errors_other_than_filter(session, apps):
    for call, parameter in (
            (lambda: cql.parse_filter("status = 'a'", "cql-text", QUERYABLES), "filter-lang"),
            (lambda: cql.parse_filter("   ", None, QUERYABLES), "filter"),
            (lambda: cql.parse_filter("status = '" + "a" * 9000 + "'", None, QUERYABLES), "filter"),
            (lambda: cql.parse_filter("status = 'a\x00'", None, QUERYABLES), "filter"),
            (lambda: cql.parse_filter("S_INTERSECTS(geometry, POINT(8 50))", None, QUERYABLES,
                                      geometry=Application.route_geom, filter_crs="EPSG:999999"), "filter-crs")):
        with pytest.raises(BadParameter) as err:
            call()
        assert err.value.extra["parameter"] == parameter
    # geometry is only a queryable when the caller gives its column
    with pytest.raises(BadParameter) as err:
        cql.parse_filter("S_INTERSECTS(geometry, POINT(8 50))", None, QUERYABLES)
    assert err.value.extra["property"] == "geometry"
    assert session.execute(text("SELECT 1")).scalar() == 1


def test_sortby(session, apps):
    def order(sortby: str) -> list[str]:
        stmt = (select(Application.project_name).where(Application.applicant_org_id == apps["org"])
                .order_by(*cql.parse_sortby(sortby, QUERYABLES), Application.id))
        return list(session.scalars(stmt))

    assert order("project_name") == [FFM, NI, DRAFT]
    assert order("+project_name") == [FFM, NI, DRAFT]
    assert order(" project_name") == [FFM, NI, DRAFT]              # an unencoded + of a URL arrives as a space
    assert order("-project_name") == [DRAFT, NI, FFM]
    assert order("-status, project_name") == [FFM, NI, DRAFT]      # submitted before draft, then by name
    assert order("status,-length_m")[0] == DRAFT
    for bad, prop, words in (("nope", "nope", "unknown property 'nope'; the sortable properties are case_status"),
                             ("project_name,,status", None, "an empty sort key"),
                             ("-", None, "an empty sort key"),
                             ("status,-status", "status", "given twice"),
                             ("geometry", "geometry", "unknown property")):
        with pytest.raises(BadParameter) as err:
            cql.parse_sortby(bad, QUERYABLES)
        assert (err.value.extra["parameter"], err.value.extra.get("property")) == ("sortby", prop), bad
        assert words in err.value.detail, err.value.detail
    geo = {"geom": cql.Queryable("geom", Application.route_geom, "geometry-multilinestring", "Trasse")}
    with pytest.raises(BadParameter, match="is a geometry and does not sort"):
        cql.parse_sortby("geom", geo)


def test_queryables_document():
    doc = cql.queryables_document("https://bb.example/api/v1/ogc/collections/case-parts/", "Verfahren", [
        QUERYABLES["reference"], QUERYABLES["status"], QUERYABLES["version"], QUERYABLES["length_m"],
        QUERYABLES["submitted_at"], QUERYABLES["decision_due"], QUERYABLES["is_submitted"],
        cql.Queryable("geometry", Application.route_geom, "geometry-multilinestring", "Trasse", "die Linien")])
    assert doc == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://bb.example/api/v1/ogc/collections/case-parts/queryables",
        "type": "object", "title": "Verfahren", "additionalProperties": False,
        "properties": {
            "reference": {"type": "string", "title": "Aktenzeichen"},
            "status": {"type": "string", "title": "Stand", "enum": ["draft", "submitted", "granted"]},
            "version": {"type": "integer", "title": "Version"},
            "length_m": {"type": "number", "title": "Länge in m"},
            "submitted_at": {"type": "string", "format": "date-time", "title": "eingereicht"},
            "decision_due": {"type": "string", "format": "date", "title": "Entscheidung fällig"},
            "is_submitted": {"type": "boolean", "title": "eingereicht?"},
            "geometry": {"format": "geometry-multilinestring", "x-ogc-role": "primary-geometry", "title": "Trasse",
                         "description": "die Linien"},
        }}
    with pytest.raises(ValueError, match="unknown type 'text'"):
        cql.Queryable("x", Application.reference, "text", "X")
    assert all(c.startswith("http://www.opengis.net/spec/") for c in cql.CONFORMANCE)
