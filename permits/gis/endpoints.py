"""OGC API - Features (Part 1: Core, GeoJSON) for permit applications, so that authorities' and operators' GIS
tools (QGIS: "Add WFS / OGC API - Features layer", with the API token as the password of HTTP Basic, or as a
Bearer header) read the routes directly.

    GET /api/v1/ogc                                          landing page
    GET /api/v1/ogc/conformance                              the conformance classes implemented
    GET /api/v1/ogc/collections                              one collection: applications
    GET /api/v1/ogc/collections/applications                 its description (extent: the tenant's territory)
    GET /api/v1/ogc/collections/applications/items           GeoJSON, ?bbox=&datetime=&limit=&offset=
    GET /api/v1/ogc/collections/applications/items/{id}      one feature

The collection holds what the caller may read (``permits.repository.readable_applications``: an operator its own
applications, an authority those with a case of its own, with that case's status and decision date, a tenant
admin all), those with a route, newest first. Geometry in CRS84 (longitude, latitude), as simple as the route
allows (trenches only: a LineString or MultiLineString, which GIS layers take; with pits or areas a
GeometryCollection). ``datetime`` filters by the planned works period (start and end day of the current version),
so a GIS user sees the works in a time window.
Invalid or unknown query parameters are 400 problem+json (OGC requirement /req/core/query-param-invalid and
/query-param-unknown); ``limit`` above 1,000 is served as 1,000.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Date, and_, cast, func, literal, select
from sqlalchemy.orm import Session

from breitband import clock, dates
from breitband.auth import require
from breitband.db import get_read_session
from breitband.errors import NotFound
from breitband.identity import Principal
from breitband.models import Organisation
from geo.tiles import tenant_bounds
from permits import deadlines, repository
from permits.gis.params import BadParameter
from permits.models import Application, ApplicationVersion

router = APIRouter(prefix="/api/v1/ogc", tags=["OGC API - Features"])
# Any role; Bearer or, for GIS desktops, HTTP Basic with the token as the password (breitband.auth).
GIS_READER = require(basic=True)

GEOJSON = "application/geo+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
# What is true: Core and GeoJSON. Not "oas30": the service description (/openapi.json) is OpenAPI 3.1.
CONFORMANCE = ["http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson"]
COLLECTION = "applications"
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
ITEM_PARAMS = {"bbox", "datetime", "limit", "offset", "f"}


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON


# The query parameters the endpoints read themselves (unknown ones are 400), for the OpenAPI.
_F = {"name": "f", "in": "query", "required": False, "schema": {"type": "string", "enum": ["json", "geojson"]},
      "description": "Output format; JSON only"}
_ITEM_QUERY = [_F, {"name": "bbox", "in": "query", "required": False, "schema": {"type": "string"},
                    "description": "minLon,minLat,maxLon,maxLat in CRS84 (or 6 numbers of a 3D box)"},
               {"name": "datetime", "in": "query", "required": False, "schema": {"type": "string"},
                "description": "RFC 3339 date or date-time, or an interval a/b with '..' for an open end"},
               {"name": "limit", "in": "query", "required": False, "description": "Above 1,000 served as 1,000",
                "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": DEFAULT_LIMIT}},
               {"name": "offset", "in": "query", "required": False,
                "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0}}]


def _doc(*params: dict[str, Any]) -> dict[str, Any]:
    return {"parameters": list(params), "responses": {"400": {
        "description": "An invalid or unknown query parameter (type invalid-parameter)",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}}


def _site(request: Request) -> str:
    """The service's address as configured (``public_base_url``), never taken from the request: a Host or
    X-Forwarded-Host header chosen by a client must not end up in links that GIS tools follow with the token."""
    return request.app.state.settings.public_base_url.rstrip("/")


def _base(request: Request) -> str:
    return _site(request) + router.prefix


def _page(request: Request, collection_id: str, params: dict[str, str]) -> str:
    query = urlencode(params)
    return f"{_base(request)}/collections/{collection_id}/items" + (f"?{query}" if query else "")


def _json(body: dict[str, Any], media_type: str = "application/json") -> JSONResponse:
    return JSONResponse(body, media_type=media_type)


def _only(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise BadParameter(f"Unknown query parameter {unknown[0]!r}; this resource takes "
                           f"{', '.join(sorted(allowed)) or 'none'}", parameter=unknown[0])
    f = request.query_params.get("f")
    if f is not None and f not in ("json", "geojson"):
        raise BadParameter(f"f={f!r}: only JSON (f=json) is offered", parameter="f")


@router.get("", summary="Landing page of the OGC API - Features", openapi_extra=_doc(_F))
def landing(request: Request, principal: Principal = Depends(GIS_READER)) -> JSONResponse:
    _only(request, {"f"})
    base = _base(request)
    return _json({
        "title": "Breitband – Genehmigungsanträge (OGC API - Features)",
        "description": "Trassen der Anträge nach § 127 TKG, die Sie lesen dürfen / routes of the permit applications "
                       "you may read",
        "links": [
            {"href": base, "rel": "self", "type": "application/json", "title": "this document"},
            {"href": _site(request) + "/openapi.json", "rel": "service-desc",
             "type": "application/vnd.oai.openapi+json;version=3.1", "title": "the API definition"},
            {"href": _site(request) + "/docs", "rel": "service-doc", "type": "text/html",
             "title": "the API documentation"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json",
             "title": "conformance classes"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json", "title": "collections"},
        ]})


@router.get("/conformance", summary="Conformance classes implemented", openapi_extra=_doc(_F))
def conformance(request: Request, principal: Principal = Depends(GIS_READER)) -> JSONResponse:
    _only(request, {"f"})
    return _json({"conformsTo": CONFORMANCE})


def _collection(request: Request, session: Session, principal: Principal) -> dict[str, Any]:
    base = _base(request)
    return {
        "id": COLLECTION,
        "title": "Anträge / applications",
        "description": "Trassen (Linien), Gruben und Schächte (Punkte) und Baufelder (Flächen) der Anträge, die Sie "
                       "lesen dürfen, mit Aktenzeichen, Vorhaben, Stand und geplantem Bauzeitraum",
        "itemType": "feature",
        "crs": [CRS84],
        "extent": {"spatial": {"bbox": [tenant_bounds(session, principal.tenant_key) or [-180, -90, 180, 90]],
                               "crs": CRS84},
                   "temporal": {"interval": [[None, None]]}},
        "links": [
            {"href": f"{base}/collections/{COLLECTION}", "rel": "self", "type": "application/json"},
            {"href": f"{base}/collections/{COLLECTION}/items", "rel": "items", "type": GEOJSON,
             "title": "the applications as GeoJSON"},
        ],
    }


@router.get("/collections", summary="The collections: applications", openapi_extra=_doc(_F))
def collections(request: Request, principal: Principal = Depends(GIS_READER),
                session: Session = Depends(get_read_session)) -> JSONResponse:
    _only(request, {"f"})
    base = _base(request)
    return _json({"links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
                  "collections": [_collection(request, session, principal)]})


@router.get("/collections/{collection_id}", summary="One collection", openapi_extra=_doc(_F))
def collection(collection_id: str, request: Request, principal: Principal = Depends(GIS_READER),
               session: Session = Depends(get_read_session)) -> JSONResponse:
    _only(request, {"f"})
    _known(collection_id)
    return _json(_collection(request, session, principal))


def _known(collection_id: str) -> None:
    if collection_id != COLLECTION:
        raise NotFound(f"No collection {collection_id!r}; there is {COLLECTION!r}", type="collection-not-found")


# --- items ---------------------------------------------------------------------------------------------------

def parse_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    """``minLon,minLat,maxLon,maxLat`` (or the 6 numbers of a 3D box, whose heights are ignored), CRS84."""
    if raw is None:
        return None
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError:
        raise BadParameter(f"bbox={raw!r}: four comma-separated numbers expected (minLon,minLat,maxLon,maxLat)",
                           parameter="bbox") from None
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or not all(map(_finite, values)):
        raise BadParameter(f"bbox={raw!r}: four numbers expected (minLon,minLat,maxLon,maxLat)", parameter="bbox")
    x0, y0, x1, y1 = values
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise BadParameter(f"bbox={raw!r}: longitudes within ±180, latitudes within ±90 (CRS84: longitude first)",
                           parameter="bbox")
    if y0 > y1 or x0 > x1:
        raise BadParameter(f"bbox={raw!r}: the minimum comes first (a box across the antimeridian is not "
                           "supported)", parameter="bbox")
    return x0, y0, x1, y1


def _finite(v: float) -> bool:
    return v == v and abs(v) != float("inf")


def parse_datetime(raw: str | None) -> tuple[date | None, date | None] | None:
    """An instant or an interval (``a/b``, ``../b``, ``a/..``) of RFC 3339 dates or date-times → (first, last) day,
    dates in Europe/Berlin."""
    if raw is None:
        return None
    parts = raw.split("/")
    if len(parts) > 2 or not all(parts):
        raise BadParameter(f"datetime={raw!r}: an RFC 3339 date or date-time, or an interval a/b with '..' for an "
                           "open end", parameter="datetime")
    days = [None if p == ".." else _day(p, raw) for p in parts]
    if len(days) == 1:
        if days[0] is None:
            raise BadParameter(f"datetime={raw!r}: '..' only as one end of an interval", parameter="datetime")
        return days[0], days[0]
    if len(days) == 2 and days == [None, None]:
        return None                                   # open at both ends: no filter
    if days[0] and days[1] and days[0] > days[1]:
        raise BadParameter(f"datetime={raw!r}: the interval ends before it starts", parameter="datetime")
    return days[0], days[1]


def _day(value: str, raw: str) -> date:
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise BadParameter(f"datetime={raw!r}: {value!r} is not an RFC 3339 date or date-time",
                           parameter="datetime") from None
    if moment.tzinfo is None:
        raise BadParameter(f"datetime={raw!r}: {value!r} needs a time zone (Z or +01:00)", parameter="datetime")
    return deadlines.local_date(moment)


def parse_int(raw: str | None, name: str, default: int, low: int, high: int = 1_000_000) -> int:
    if raw is None:
        return default
    try:
        value = int(raw) if len(raw) <= 12 else None
    except ValueError:
        value = None
    if value is None:
        raise BadParameter(f"{name}={raw[:20]!r}: a whole number from {low} to {high} expected",
                           parameter=name) from None
    if not low <= value <= high:
        raise BadParameter(f"{name}={raw!r}: from {low} to {high}", parameter=name)
    return value


def _items_statement(principal: Principal):
    current = ApplicationVersion
    start = cast(current.content["planned_start"].astext, Date)
    end = cast(current.content["planned_end"].astext, Date)
    cols = [Application.id, Application.reference, Application.project_name, Application.operator_reference,
            Application.status, Application.submitted_at, Application.updated_at,
            Organisation.name.label("applicant"), start.label("planned_start"), end.label("planned_end"),
            func.ST_AsGeoJSON(func.ST_CollectionHomogenize(Application.route_geom), 7).label("geometry")]
    stmt = (repository.readable_applications(principal)
            .join(Organisation, Organisation.id == Application.applicant_org_id)
            .outerjoin(current, and_(current.application_id == Application.id,
                                     current.number == Application.current_version))
            .where(Application.route_geom.is_not(None)))
    if repository.is_authority(principal):     # the caller's own case: its state and decision date
        my_case = repository.own_case(principal)
        stmt = stmt.outerjoin(my_case, literal(True))
        cols += [my_case.c.id.label("case_id"), my_case.c.status.label("case_status"),
                 my_case.c.decision_due]
    return stmt.with_only_columns(*cols), start, end


def _feature(row, base: str, site: str) -> dict[str, Any]:
    m = row._mapping
    props: dict[str, Any] = {
        "reference": m["reference"], "project_name": m["project_name"],
        "operator_reference": m["operator_reference"], "status": m["status"], "applicant": m["applicant"],
        "submitted_at": _iso(m["submitted_at"]), "updated_at": _iso(m["updated_at"]),
        "planned_start": _iso(m["planned_start"]), "planned_end": _iso(m["planned_end"]),
    }
    web = f"{site}/#/application/{m['id']}"
    if "case_id" in m:
        props.update(case_status=m["case_status"], decision_due=_iso(m["decision_due"]))
        if m["case_id"] is not None:
            web = f"{site}/#/case/{m['case_id']}"
    props["url"] = web
    return {"type": "Feature", "id": str(m["id"]), "geometry": json.loads(m["geometry"]), "properties": props,
            "links": [{"href": f"{base}/collections/{COLLECTION}/items/{m['id']}", "rel": "self", "type": GEOJSON},
                      {"href": web, "rel": "alternate", "type": "text/html", "title": "in the web app"}]}


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


@router.get("/collections/{collection_id}/items", summary="Applications as GeoJSON (bbox, datetime, limit, offset)",
            response_class=GeoJSONResponse, openapi_extra=_doc(*_ITEM_QUERY))
def items(collection_id: str, request: Request, principal: Principal = Depends(GIS_READER),
          session: Session = Depends(get_read_session)) -> JSONResponse:
    _only(request, ITEM_PARAMS)
    _known(collection_id)
    q = request.query_params
    bbox = parse_bbox(q.get("bbox"))
    window = parse_datetime(q.get("datetime"))
    limit = min(parse_int(q.get("limit"), "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
    offset = parse_int(q.get("offset"), "offset", 0, 0)
    stmt, start, end = _items_statement(principal)
    if bbox is not None:
        stmt = stmt.where(func.ST_Intersects(Application.route_geom, func.ST_MakeEnvelope(*bbox, 4326)))
    if window is not None:
        first, last = window
        stmt = stmt.where(start.is_not(None), end.is_not(None),
                          *([end >= first] if first else []), *([start <= last] if last else []))
    rows = session.execute(stmt.order_by(Application.created_at.desc(), Application.id)
                           .limit(limit + 1).offset(offset)).all()
    # all the caller may read under these filters (GDAL and QGIS show it and page by it)
    matched = len(rows) + offset if len(rows) <= limit and (rows or not offset) else \
        session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    base, site = _base(request), _site(request)
    features = [_feature(r, base, site) for r in rows[:limit]]
    here = {k: v for k, v in q.items()}
    links = [{"href": _page(request, COLLECTION, here), "rel": "self", "type": GEOJSON, "title": "this page"},
             {"href": f"{base}/collections/{COLLECTION}", "rel": "collection", "type": "application/json"}]
    if len(rows) > limit:
        links.append({"href": _page(request, COLLECTION, {**here, "offset": str(offset + limit),
                                                          "limit": str(limit)}),
                      "rel": "next", "type": GEOJSON, "title": "next page"})
    if offset:
        links.append({"href": _page(request, COLLECTION, {**here, "offset": str(max(0, offset - limit)),
                                                          "limit": str(limit)}),
                      "rel": "prev", "type": GEOJSON, "title": "previous page"})
    return _json({"type": "FeatureCollection", "features": features, "numberMatched": matched,
                  "numberReturned": len(features), "timeStamp": dates.iso_seconds(clock.now()),
                  "links": links}, GEOJSON)


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One application as a GeoJSON feature",
            response_class=GeoJSONResponse, openapi_extra=_doc(_F))
def item(collection_id: str, feature_id: str, request: Request, principal: Principal = Depends(GIS_READER),
         session: Session = Depends(get_read_session)) -> JSONResponse:
    _only(request, {"f"})
    _known(collection_id)
    try:
        app_id = uuid.UUID(feature_id)
    except ValueError:
        raise NotFound(f"No application {feature_id!r} in {COLLECTION}", type="feature-not-found") from None
    stmt, _, _ = _items_statement(principal)
    row = session.execute(stmt.where(Application.id == app_id)).first()
    if row is None:
        raise NotFound(f"No application {feature_id} in {COLLECTION} that you may read", type="feature-not-found")
    base = _base(request)
    feature = _feature(row, base, _site(request))
    feature["links"].append({"href": f"{base}/collections/{COLLECTION}", "rel": "collection",
                             "type": "application/json"})
    return _json(feature, GEOJSON)
