"""The collections of the OGC API - Features (``permits/gis/endpoints.py``) and their SQL: one geometry type per
collection, so that every GIS layer has one (GDAL and QGIS take a layer's type from its first features and cannot
write a GeometryCollection into a Shapefile).

- ``applications``: the trenches (lines) of the applications, always a MultiLineString;
- ``application-points``: their pits, cabinets and manholes, a MultiPoint;
- ``application-areas``: their construction areas, a MultiPolygon;
- ``case-parts`` (lines), ``case-part-points``, ``case-part-areas``: the pieces of the cases, one feature per
  piece as the resolution stored it with the case (``cases.part.pieces``: road, class, length, the rule that made
  the authority responsible, Gemeinde), with the case's state and days left. Nothing is resolved again: the pieces
  are read from the case, their geometry in the CRS of the resolution that made them (the ``crs`` of the stored
  resolution of the case's application version).

Scope: the application collections hold what ``permits.gis.scope.gis_applications`` gives the caller (operators
their own, authorities those with a case of theirs, participating bodies those they are asked about, tenant admins
all); the case collections the cases of ``permits.repository.readable_cases`` (an authority its own cases, an
operator the cases of its applications — who decides which piece —, a tenant admin all; a body none).

Each collection is a ``Query``: a SELECT of the rows with their properties as named columns, so that ``bbox``,
``datetime``, ``filter`` (CQL2, ``permits/gis/cql.py``) and ``sortby`` are WHERE and ORDER BY clauses on it, and the
geometry is transformed into the requested CRS by PostGIS in the same statement.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Date, Integer, Select, String, and_, case, cast, column, func, literal, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import aliased
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnElement

from breitband.identity import Principal
from breitband.models import Organisation
from permits import repository
from permits.gis.params import Crs
from permits.gis.scope import gis_applications, is_body, own_statement
from permits.models import OPEN_CASE_STATUSES, Application, ApplicationVersion, Case

OPEN = [s.value for s in OPEN_CASE_STATUSES]


@dataclass(frozen=True)
class Collection:
    id: str
    title: str
    description: str
    geometry_type: str              # the one GeoJSON type of every feature
    source: str                     # "applications" | "cases"
    dim: int                        # ST_CollectionExtract: 1 points, 2 lines, 3 polygons
    piece_kind: str                 # the kind of a case's piece: line, point, area


_APP = ("Anträge, die Sie lesen dürfen (Betreiber: eigene; Behörden: mit eigenem Verfahren; Beteiligte: zu denen "
        "eine Stellungnahme erbeten ist), mit Aktenzeichen, Vorhaben, Stand und geplantem Bauzeitraum / the "
        "applications you may read")
_PARTS = ("Abschnitte der Verfahren, je Stück wie die Zuständigkeitsprüfung es dem Verfahren zugeordnet hat: "
          "Straße, Straßenklasse, Länge, Regel, Gemeinde, Stand und verbleibende Tage / the pieces of the cases, "
          "one per resolved piece")
COLLECTIONS: dict[str, Collection] = {c.id: c for c in (
    Collection("applications", "Anträge: Trassen / applications: trenches",
               f"Trassen (Linien, MultiLineString) der {_APP}", "MultiLineString", "applications", 2, "line"),
    Collection("application-points", "Anträge: Gruben und Schächte / applications: pits",
               f"Gruben, Schächte, Verteiler (Punkte, MultiPoint) der {_APP}", "MultiPoint", "applications", 1,
               "point"),
    Collection("application-areas", "Anträge: Baufelder / applications: areas",
               f"Baufelder (Flächen, MultiPolygon) der {_APP}", "MultiPolygon", "applications", 3, "area"),
    Collection("case-parts", "Verfahren: Trassenabschnitte / cases: route pieces",
               f"Trassenabschnitte (MultiLineString): {_PARTS}", "MultiLineString", "cases", 2, "line"),
    Collection("case-part-points", "Verfahren: Gruben und Schächte / cases: pits",
               f"Gruben und Schächte (MultiPoint): {_PARTS}", "MultiPoint", "cases", 1, "point"),
    Collection("case-part-areas", "Verfahren: Baufelder / cases: areas",
               f"Baufelder (MultiPolygon): {_PARTS}", "MultiPolygon", "cases", 3, "area"),
)}


@dataclass
class Property:
    """A property of the features: its column in the collection's SELECT, its JSON Schema type (for queryables and
    the collection's schema) and a title."""

    column: ColumnElement
    type: str                        # string | integer | number | date | datetime | boolean
    title: str
    enum: tuple[str, ...] | None = None


@dataclass
class Query:
    """One collection's rows for one caller, ready for WHERE and ORDER BY clauses and a page."""

    stmt: Select                                       # the rows: id, the properties, geometry (GeoJSON text)
    props: dict[str, Property]
    geom_4326: ColumnElement                           # for bbox
    index_geom: ColumnElement                          # Application.route_geom: a cheap && before the exact test
    start: ColumnElement                               # planned works period (datetime)
    end: ColumnElement
    order: list[Any]                                   # the default order (newest first), unique
    by_id: Callable[[str], ColumnElement | None]       # a feature id → its WHERE clause (None: not an id of ours)
    url: Callable[[dict[str, Any], str], str]          # a row → its page in the web app
    hidden: tuple[str, ...] = field(default=())        # columns in the SELECT that are no properties
    # The case collections: the number of features under case-level conditions (a SELECT of one number) without
    # unpacking the pieces (``cases.line_pieces`` …), and whether a condition reads a piece (then it cannot serve)
    count: Callable[[list[ColumnElement]], Select] | None = None
    reads_piece: Callable[[ColumnElement], bool] = field(default=lambda clause: True)


def _iso(value) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _output(geom: ColumnElement, crs: Crs) -> ColumnElement:
    """The geometry (EPSG:4326 or the pieces' CRS) as GeoJSON text in ``crs``, axes in its order."""
    out = func.ST_Transform(geom, crs.srid)
    if crs.lat_first:
        out = func.ST_FlipCoordinates(out)
    return func.ST_AsGeoJSON(out, crs.digits)


def _days_left(status: ColumnElement, due: ColumnElement, today: date) -> ColumnElement:
    """Whole days from today (Europe/Berlin) to the last day of the decision period, of an open case (as
    ``permits.views.days_left``); NULL for a closed one."""
    return case((and_(status.in_(OPEN), due.is_not(None)), cast(due - literal(today, Date), Integer)), else_=None)


def query(principal: Principal, coll: Collection, crs: Crs, today: date, site: str) -> Query:
    return (_applications if coll.source == "applications" else _case_parts)(principal, coll, crs, today, site)


def _uuid(feature_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(feature_id)
    except ValueError:
        return None


def _applications(principal: Principal, coll: Collection, crs: Crs, today: date, site: str) -> Query:
    current = aliased(ApplicationVersion)
    start = cast(current.content["planned_start"].astext, Date)
    end = cast(current.content["planned_end"].astext, Date)
    geom = func.ST_Multi(func.ST_CollectionExtract(Application.route_geom, coll.dim))
    props: dict[str, Property] = {
        "reference": Property(Application.reference, "string", "Aktenzeichen / reference"),
        "project_name": Property(Application.project_name, "string", "Vorhaben / project"),
        "operator_reference": Property(Application.operator_reference, "string",
                                       "Zeichen des Betreibers / operator's reference"),
        "status": Property(Application.status, "string", "Stand des Antrags / application status",
                           ("draft", "submitted", "information_requested", "granted", "partially_granted",
                            "refused", "withdrawn")),
        "applicant": Property(Organisation.name, "string", "Antragsteller (Betreiber) / operator"),
        "submitted_at": Property(Application.submitted_at, "datetime", "eingereicht / submitted"),
        "updated_at": Property(Application.updated_at, "datetime", "geändert / updated"),
        "planned_start": Property(start, "date", "geplanter Baubeginn / planned start"),
        "planned_end": Property(end, "date", "geplantes Bauende / planned end"),
    }
    stmt = (gis_applications(principal)
            .join(Organisation, Organisation.id == Application.applicant_org_id)
            .outerjoin(current, and_(current.application_id == Application.id,
                                     current.number == Application.current_version))
            .where(Application.route_geom.is_not(None), func.ST_NumGeometries(geom) > 0))
    hidden: list[ColumnElement] = []
    if is_body(principal):              # what the body is asked: its request's state and due date
        mine = own_statement(principal)
        stmt = stmt.join(mine, true())
        props["statement_status"] = Property(mine.c.status, "string", "Stand der Stellungnahme / statement status")
        props["statement_due"] = Property(mine.c.due_on, "date", "Stellungnahme fällig am / statement due")
        hidden.append(mine.c.id.label("statement_id"))
    elif repository.is_authority(principal):     # the caller's own case: its state, decision date, days left
        my_case = repository.own_case(principal)
        stmt = stmt.outerjoin(my_case, true())
        props["case_status"] = Property(my_case.c.status, "string", "Stand Ihres Verfahrens / your case's status")
        props["decision_due"] = Property(my_case.c.decision_due, "date", "Entscheidung fällig am / decision due")
        props["days_left"] = Property(_days_left(my_case.c.status, my_case.c.decision_due, today), "integer",
                                      "verbleibende Tage / days left")
        hidden.append(my_case.c.id.label("case_id"))
    cols = [Application.id.label("id"), *[p.column.label(name) for name, p in props.items()], *hidden,
            _output(geom, crs).label("geometry")]

    def url(m: dict[str, Any], site_: str) -> str:
        if m.get("statement_id"):
            return f"{site_}/#/statement/{m['statement_id']}"
        if m.get("case_id"):
            return f"{site_}/#/case/{m['case_id']}"
        return f"{site_}/#/application/{m['id']}"

    def by_id(feature_id: str) -> ColumnElement | None:
        app_id = _uuid(feature_id)
        return None if app_id is None else Application.id == app_id

    return Query(stmt.with_only_columns(*cols), props, geom, Application.route_geom, start, end,
                 [Application.created_at.desc(), Application.id], by_id, url,
                 tuple(c.name for c in hidden))


def _case_parts(principal: Principal, coll: Collection, crs: Crs, today: date, site: str) -> Query:
    current = aliased(ApplicationVersion)
    resolved = aliased(ApplicationVersion)      # the version whose resolution made the case's pieces
    authority = aliased(Organisation)
    applicant = aliased(Organisation)
    piece = (func.jsonb_array_elements(Case.part["pieces"])
             .table_valued(column("value", JSONB), with_ordinality="n").render_derived().lateral("piece"))
    p = piece.c.value
    start = cast(current.content["planned_start"].astext, Date)
    end = cast(current.content["planned_end"].astext, Date)
    srid = func.coalesce(cast(func.nullif(func.split_part(resolved.resolution["crs"].astext, ":", 2), ""), Integer),
                         4326)
    src = func.ST_SetSRID(func.ST_GeomFromGeoJSON(func.jsonb_extract_path_text(p, "geometry")), srid)
    geom = func.ST_Multi(src)
    index = (piece.c.n - 1)
    props: dict[str, Property] = {
        "case_id": Property(cast(Case.id, String), "string", "Verfahren / case"),
        "piece_index": Property(cast(index, Integer), "integer",
                                "Nummer des Stücks im Verfahren (für die Weitergabe) / piece index"),
        "reference": Property(Application.reference, "string", "Aktenzeichen / reference"),
        "project_name": Property(Application.project_name, "string", "Vorhaben / project"),
        "application_id": Property(cast(Application.id, String), "string", "Antrag / application"),
        "applicant": Property(applicant.name, "string", "Antragsteller (Betreiber) / operator"),
        "authority": Property(authority.name, "string", "zuständige Behörde / authority"),
        "case_status": Property(Case.status, "string", "Stand des Verfahrens / case status",
                                ("received", "incomplete", "in_review", "granted", "partially_granted", "refused",
                                 "deemed_granted", "forwarded", "withdrawn")),
        "received_at": Property(Case.received_at, "datetime", "eingegangen / received"),
        "decision_due": Property(Case.decision_due, "date", "Entscheidung fällig am / decision due"),
        "days_left": Property(_days_left(Case.status, Case.decision_due, today), "integer",
                              "verbleibende Tage / days left"),
        "road_ref": Property(p["road_ref"].astext, "string", "Straßennummer / road number (e.g. L 3262)"),
        "road_name": Property(p["road_name"].astext, "string", "Straßenname / road name"),
        "road_class": Property(p["road_class"].astext, "string", "Straßenklasse / road class",
                               ("autobahn", "bund", "land", "kreis", "gemeinde")),
        "length_m": Property(p["length_m"].as_float(), "number", "Länge in m / length in metres"),
        "area_m2": Property(p["area_m2"].as_float(), "number", "Fläche in m² / area in square metres"),
        "rule": Property(p["rule"].astext, "string", "Regel, nach der die Behörde zuständig ist / the rule"),
        "gemeinde": Property(p["gemeinde"]["name"].astext, "string", "Gemeinde / municipality"),
        "gemeinde_ags": Property(p["gemeinde"]["ags"].astext, "string", "Gemeindeschlüssel (AGS)"),
        "ortsdurchfahrt_on_file": Property(p["ortsdurchfahrt_on_file"].as_boolean(), "boolean",
                                           "Ortsdurchfahrt erfasst / Ortsdurchfahrt on file"),
        "section": Property(p["section"].as_integer(), "integer", "Nummer des Trassenabschnitts im Antrag / "
                                                                   "section of the application"),
        "planned_start": Property(start, "date", "geplanter Baubeginn / planned start"),
        "planned_end": Property(end, "date", "geplantes Bauende / planned end"),
    }
    if coll.piece_kind != "area":
        del props["area_m2"]
    if coll.piece_kind != "line":
        del props["length_m"]
    kind = func.coalesce(p["feature_type"].astext, "line")
    cases = (repository.readable_cases(principal)
             .join(Application, Application.id == Case.application_id)
             .join(authority, authority.id == Case.authority_org_id)
             .join(applicant, applicant.id == Application.applicant_org_id)
             .outerjoin(current, and_(current.application_id == Application.id,
                                      current.number == Application.current_version)))
    stmt = (cases.outerjoin(resolved, and_(resolved.application_id == Case.application_id,
                                           resolved.number == Case.application_version))
            .join(piece, true())
            .where(kind == coll.piece_kind, p["geometry"].is_not(None)))
    pieces = {"line": Case.line_pieces, "point": Case.point_pieces, "area": Case.area_pieces}[coll.piece_kind]

    def count(conditions: list[ColumnElement]) -> Select:
        # the joins only when a condition reads them (each costs a lookup per matching case)
        read = {getattr(el, "table", None) for c in conditions for el in visitors.iterate(c)} - {None}
        base = repository.readable_cases(principal) if read <= {Case.__table__} else cases
        return base.with_only_columns(func.coalesce(func.sum(pieces), 0)).where(*conditions)

    def reads_piece(clause: ColumnElement) -> bool:
        return any(getattr(el, "table", None) is piece or el is piece for el in visitors.iterate(clause))
    cols = [func.concat(Case.id, ".", index).label("id"),
            *[pr.column.label(name) for name, pr in props.items()],
            _output(geom, crs).label("geometry")]

    def url(m: dict[str, Any], site_: str) -> str:
        return f"{site_}/#/case/{m['case_id']}"

    def by_id(feature_id: str) -> ColumnElement | None:
        case_part, _, n = feature_id.rpartition(".")
        case_id = _uuid(case_part)
        if case_id is None or not n.isdigit() or len(n) > 6:
            return None
        return and_(Case.id == case_id, piece.c.n == int(n) + 1)

    return Query(stmt.with_only_columns(*cols), props, func.ST_Transform(src, 4326), Application.route_geom, start,
                 end, [Case.created_at.desc(), Case.id, piece.c.n], by_id, url, count=count, reads_piece=reads_piece)


def feature(row: Any, q: Query, coll: Collection, base: str, site: str) -> dict[str, Any]:
    m = dict(row._mapping)
    props = {name: _iso(m[name]) for name in q.props}
    web = q.url(m, site)
    props["url"] = web
    return {"type": "Feature", "id": str(m["id"]), "geometry": json.loads(m["geometry"]), "properties": props,
            "links": [{"href": f"{base}/collections/{coll.id}/items/{m['id']}", "rel": "self",
                       "type": "application/geo+json"},
                      {"href": web, "rel": "alternate", "type": "text/html", "title": "in the web app"}]}
