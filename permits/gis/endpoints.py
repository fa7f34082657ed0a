"""OGC API - Features (Part 1: Core, GeoJSON; Part 2: CRS by reference) for permit applications and cases, so that
authorities' and operators' GIS tools (QGIS: "Add WFS / OGC API - Features layer", with the API token as the password
of HTTP Basic, or as a Bearer header; GDAL's OAPIF driver) read them directly.

    GET /api/v1/ogc                                          landing page
    GET /api/v1/ogc/conformance                              the conformance classes implemented
    GET /api/v1/ogc/collections                              the collections (permits/gis/features.py)
    GET /api/v1/ogc/collections/{id}                         one (extent: the tenant's territory; crs, storageCrs)
    GET /api/v1/ogc/collections/{id}/items                   GeoJSON, ?bbox=&bbox-crs=&crs=&datetime=&limit=&offset=
    GET /api/v1/ogc/collections/{id}/items/{fid}             one feature, ?crs=

Every collection has one geometry type (``permits/gis/features.py``: trenches, pits and areas of the applications;
the pieces of the cases), so that every GIS layer has one. Geometry in CRS84 (longitude, latitude) unless ``crs``
asks for another offered CRS (``permits/gis/params.py``); PostGIS transforms it in the same statement, and the
answer names its CRS in ``Content-Crs``. ``datetime`` filters by the planned works period (start and end day of the
current version), so a GIS user sees the works in a time window.
Invalid or unknown query parameters are 400 problem+json (OGC requirement /req/core/query-param-invalid and
/query-param-unknown); ``limit`` above 1,000 is served as 1,000.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from breitband import clock, dates
from breitband.auth import require
from breitband.db import get_read_session
from breitband.errors import NotFound
from breitband.identity import Principal
from geo.service import tenant_srid
from geo.tiles import tenant_bounds
from permits import deadlines
from permits.gis import cql, features
from permits.gis.features import COLLECTIONS, Collection
from permits.gis.params import (
    BBOX,
    BBOX_CRS,
    CRS84,
    CRS_PARAM,
    DATETIME,
    DEFAULT_LIMIT,
    FILTER,
    FILTER_CRS,
    FILTER_LANG,
    LIMIT,
    MAX_LIMIT,
    OFFSET,
    SORTBY,
    BadParameter,
    Crs,
    F,
    offered_crs,
    parse_bbox,
    parse_crs,
    parse_datetime,
    parse_int,
)

router = APIRouter(prefix="/api/v1/ogc", tags=["OGC API - Features"])
# Any role; Bearer or, for GIS desktops, HTTP Basic with the token as the password (breitband.auth).
GIS_READER = require(basic=True)

GEOJSON = "application/geo+json"
# What is true: Core, GeoJSON, Part 2 (CRS by reference), Part 3 (queryables, as query parameters too, filter,
# features-filter) with the CQL2 classes permits/gis/cql.py implements, and sorting (Part 5 sortables: sortby and
# /sortables). Not "oas30": /openapi.json is OpenAPI 3.1.
CONFORMANCE = ["http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
               "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
               "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
               *cql.CONFORMANCE,
               "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/sortables"]
ITEM_PARAMS = {"bbox", "bbox-crs", "crs", "datetime", "limit", "offset", "f", "filter", "filter-lang", "filter-crs",
               "sortby"}
SCHEMA_JSON = "application/schema+json"


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON


class SchemaResponse(JSONResponse):
    media_type = "application/schema+json"


_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_CONTENT_CRS = {"Content-Crs": {"description": "The CRS of the geometries, as <URI> (OGC API - Features Part 2)",
                                "schema": {"type": "string"}}}


def _doc(answer: str, *params: dict[str, Any], geojson: bool = False, crs: bool = False) -> dict[str, Any]:
    """The operation's query parameters (the endpoints read them themselves, so FastAPI does not see them) and its
    answers: 200 (what it returns, ``Content-Crs`` where geometries come back) and 400 for a bad parameter."""
    ok: dict[str, Any] = {"description": answer}
    if geojson:
        ok["content"] = {GEOJSON: {"schema": {"type": "object", "required": ["type"],
                                              "properties": {"type": {"type": "string"}}}}}
    if crs:
        ok["headers"] = _CONTENT_CRS
    return {"parameters": list(params), "responses": {
        "200": ok,
        "400": {"description": "An invalid or unknown query parameter, or a CRS not offered (type invalid-parameter, "
                               "with parameter)", "content": _PROBLEM}}}


def _site(request: Request) -> str:
    """The service's address as configured (``public_base_url``), never taken from the request: a Host or
    X-Forwarded-Host header chosen by a client must not end up in links that GIS tools follow with the token."""
    return request.app.state.settings.public_base_url.rstrip("/")


def _base(request: Request) -> str:
    return _site(request) + router.prefix


def _page(request: Request, collection_id: str, params: dict[str, str]) -> str:
    query = urlencode(params)
    return f"{_base(request)}/collections/{collection_id}/items" + (f"?{query}" if query else "")


def _json(body: dict[str, Any], media_type: str = "application/json",
          headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, media_type=media_type, headers=headers)


def _only(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise BadParameter(f"Unknown query parameter {unknown[0]!r}; this resource takes "
                           f"{', '.join(sorted(allowed)) or 'none'}", parameter=unknown[0])
    f = request.query_params.get("f")
    if f is not None and f not in ("json", "geojson"):
        raise BadParameter(f"f={f!r}: only JSON (f=json) is offered", parameter="f")


def _storage_srid(session: Session, principal: Principal) -> int:
    """The tenant's metric CRS (its ``srid``), in which lengths are measured: the collections' storageCrs."""
    return tenant_srid(session, principal.tenant_key)


@router.get("", summary="Landing page of the OGC API - Features",
            openapi_extra=_doc("Links to the API definition, the conformance classes and the collections", F))
def landing(request: Request, principal: Principal = Depends(GIS_READER)) -> JSONResponse:
    _only(request, {"f"})
    base = _base(request)
    return _json({
        "title": "Breitband – Genehmigungsanträge (OGC API - Features)",
        "description": "Trassen der Anträge nach § 127 TKG und die Abschnitte der Verfahren, die Sie lesen dürfen / "
                       "routes of the permit applications and the pieces of the cases you may read",
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


@router.get("/conformance", summary="Conformance classes implemented",
            openapi_extra=_doc("The conformance classes (conformsTo)", F))
def conformance(request: Request, principal: Principal = Depends(GIS_READER)) -> JSONResponse:
    _only(request, {"f"})
    return _json({"conformsTo": CONFORMANCE})


def _collection(request: Request, coll: Collection, bounds: list[float], storage_srid: int) -> dict[str, Any]:
    base = _base(request)
    storage = next(c for c in offered_crs(storage_srid)[1:] if c.srid == storage_srid)
    return {
        "id": coll.id,
        "title": coll.title,
        "description": coll.description,
        "itemType": "feature",
        # one geometry type per collection, as pygeoapi and ldproxy announce it (not part of Part 1)
        "geometryType": coll.geometry_type,
        "crs": [c.uri for c in offered_crs(storage_srid)],
        "storageCrs": storage.uri,
        "extent": {"spatial": {"bbox": [bounds], "crs": CRS84},
                   "temporal": {"interval": [[None, None]]}},
        "links": [
            {"href": f"{base}/collections/{coll.id}", "rel": "self", "type": "application/json"},
            {"href": f"{base}/collections/{coll.id}/items", "rel": "items", "type": GEOJSON,
             "title": f"{coll.title} as GeoJSON"},
            {"href": f"{base}/collections/{coll.id}/queryables", "type": SCHEMA_JSON,
             "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables", "title": "what filter and the query "
                                                                               "parameters take"},
            {"href": f"{base}/collections/{coll.id}/sortables", "type": SCHEMA_JSON,
             "rel": "http://www.opengis.net/def/rel/ogc/1.0/sortables", "title": "what sortby takes"},
        ],
    }


def _bounds(session: Session, principal: Principal) -> list[float]:
    return tenant_bounds(session, principal.tenant_key) or [-180, -90, 180, 90]


@router.get("/collections", summary="The collections: applications (trenches, points, areas), case pieces",
            openapi_extra=_doc("The collections, each with one geometry type", F))
def collections(request: Request, principal: Principal = Depends(GIS_READER),
                session: Session = Depends(get_read_session)) -> JSONResponse:
    _only(request, {"f"})
    base = _base(request)
    bounds, storage = _bounds(session, principal), _storage_srid(session, principal)
    return _json({"links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
                  "collections": [_collection(request, c, bounds, storage) for c in COLLECTIONS.values()]})


@router.get("/collections/{collection_id}", summary="One collection",
            openapi_extra=_doc("The collection: extent, CRS offered, storageCrs, links", F))
def collection(collection_id: str, request: Request, principal: Principal = Depends(GIS_READER),
               session: Session = Depends(get_read_session)) -> JSONResponse:
    _only(request, {"f"})
    coll = _known(collection_id)
    return _json(_collection(request, coll, _bounds(session, principal), _storage_srid(session, principal)))


def _known(collection_id: str) -> Collection:
    coll = COLLECTIONS.get(collection_id)
    if coll is None:
        raise NotFound(f"No collection {collection_id!r}; there are {', '.join(COLLECTIONS)}",
                       type="collection-not-found")
    return coll


# --- items ---------------------------------------------------------------------------------------------------

def _envelope(box: tuple[float, float, float, float], crs: Crs):
    """The box in EPSG:4326. A projected box's edges are densified before the transformation (64 points a side),
    so that its curved outline in degrees is followed, not cut short between the corners."""
    env = func.ST_MakeEnvelope(*box, crs.srid)
    if crs.srid == 4326:
        return env
    side = max(box[2] - box[0], box[3] - box[1]) / 64 or 1.0
    return func.ST_Transform(func.ST_Segmentize(env, side), 4326)


@router.get("/collections/{collection_id}/items",
            summary="The features of a collection as GeoJSON (bbox, bbox-crs, crs, datetime, filter, sortby, "
                    "limit, offset; a queryable as a parameter compares for equality)",
            response_class=GeoJSONResponse,
            openapi_extra=_doc("A GeoJSON FeatureCollection with numberMatched, numberReturned and next/prev links",
                               F, BBOX, BBOX_CRS, CRS_PARAM, DATETIME, LIMIT, OFFSET, FILTER, FILTER_LANG,
                               FILTER_CRS, SORTBY, geojson=True, crs=True))
def items(collection_id: str, request: Request, principal: Principal = Depends(GIS_READER),
          session: Session = Depends(get_read_session)) -> JSONResponse:
    coll = _known(collection_id)
    q = request.query_params
    # the queryables are query parameters too (Part 3): known only with the caller's collection
    storage = _storage_srid(session, principal)
    _only(request, ITEM_PARAMS | set(features.query(principal, coll, offered_crs(storage)[0], date.min, "").props))
    crs = parse_crs(q.get("crs"), "crs", storage)
    bbox_crs = parse_crs(q.get("bbox-crs"), "bbox-crs", storage)
    bbox = parse_bbox(q.get("bbox"), bbox_crs)
    window = parse_datetime(q.get("datetime"))
    limit = min(parse_int(q.get("limit"), "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
    offset = parse_int(q.get("offset"), "offset", 0, 0)
    base, site = _base(request), _site(request)
    qry = features.query(principal, coll, crs, deadlines.local_date(clock.now()), site)
    conditions: list[Any] = []
    if bbox is not None:
        env = _envelope(bbox, bbox_crs)
        conditions += [qry.index_geom.op("&&")(env), func.ST_Intersects(qry.geom_4326, env)]
    if window is not None:
        first, last = window
        conditions += [qry.start.is_not(None), qry.end.is_not(None),
                       *([qry.end >= first] if first else []), *([qry.start <= last] if last else [])]
    queryables = _queryables(qry, coll)
    where = _filters(q, queryables, qry)
    if where is not None:
        conditions.append(where)
    stmt = qry.stmt.where(*conditions)
    order = cql.parse_sortby(q["sortby"], queryables) if q.get("sortby") else []
    rows = session.execute(stmt.order_by(*order, *qry.order).limit(limit + 1).offset(offset)).all()
    matched = len(rows) + offset if len(rows) <= limit and (rows or not offset) else \
        _matched(session, qry, stmt, conditions)
    found = [features.feature(r, qry, coll, base, site) for r in rows[:limit]]
    here = {k: v for k, v in q.items()}
    links = [{"href": _page(request, coll.id, here), "rel": "self", "type": GEOJSON, "title": "this page"},
             {"href": f"{base}/collections/{coll.id}", "rel": "collection", "type": "application/json"}]
    if len(rows) > limit:
        links.append({"href": _page(request, coll.id, {**here, "offset": str(offset + limit), "limit": str(limit)}),
                      "rel": "next", "type": GEOJSON, "title": "next page"})
    if offset:
        links.append({"href": _page(request, coll.id, {**here, "offset": str(max(0, offset - limit)),
                                                       "limit": str(limit)}),
                      "rel": "prev", "type": GEOJSON, "title": "previous page"})
    return _json({"type": "FeatureCollection", "features": found, "numberMatched": matched,
                  "numberReturned": len(found), "timeStamp": dates.iso_seconds(clock.now()),
                  "links": links}, GEOJSON, {"Content-Crs": f"<{crs.uri}>"})


def _matched(session: Session, qry: features.Query, stmt: Any, conditions: list[Any]) -> int:
    """All the caller may read under these filters (GDAL and QGIS show it and page by it). The pieces of cases are
    counted from the cases' stored counts when no condition reads a piece (0.5–1 s less for a large authority's open
    cases at 200,000 applications: docs/benchmarks.md), else by unpacking them."""
    if qry.count is not None and not any(qry.reads_piece(c) for c in conditions):
        return int(session.scalar(qry.count(conditions)))
    return int(session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())))


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature as GeoJSON (crs)",
            response_class=GeoJSONResponse,
            openapi_extra=_doc("A GeoJSON Feature", F, CRS_PARAM, geojson=True, crs=True))
def item(collection_id: str, feature_id: str, request: Request, principal: Principal = Depends(GIS_READER),
         session: Session = Depends(get_read_session)) -> JSONResponse:
    _only(request, {"f", "crs"})
    coll = _known(collection_id)
    crs = parse_crs(request.query_params.get("crs"), "crs", _storage_srid(session, principal))
    base, site = _base(request), _site(request)
    qry = features.query(principal, coll, crs, deadlines.local_date(clock.now()), site)
    where = qry.by_id(feature_id)
    row = None if where is None else session.execute(qry.stmt.where(where).limit(1)).first()
    if row is None:
        raise NotFound(f"No feature {feature_id!r} in {coll.id} that you may read", type="feature-not-found")
    feature = features.feature(row, qry, coll, base, site)
    feature["links"].append({"href": f"{base}/collections/{coll.id}", "rel": "collection",
                             "type": "application/json"})
    return _json(feature, GEOJSON, {"Content-Crs": f"<{crs.uri}>"})


# --- queryables, filters, sort keys (OGC API - Features Part 3, Part 5 sortables; permits/gis/cql.py) -------------

def _queryables(qry: features.Query, coll: Collection) -> dict[str, cql.Queryable]:
    """Every property of the collection's features (as the caller gets them) and the geometry, in EPSG:4326."""
    out = {name: cql.Queryable(name, p.column, p.type, p.title, enum=p.enum) for name, p in qry.props.items()}
    out["geometry"] = cql.Queryable("geometry", qry.geom_4326, "geometry-" + coll.geometry_type.lower(),
                                    "Geometrie / geometry")
    return out


def _literal(name: str, raw: str, kind: str) -> str:
    """A query parameter's value as a CQL2 text literal of the queryable's type (bound by cql.py, never SQL)."""
    if kind == "string":
        return "'" + raw.replace("'", "''") + "'"
    if kind in ("integer", "number"):
        try:
            value = int(raw) if kind == "integer" else float(raw)
        except ValueError:
            raise BadParameter(f"{name}={raw[:40]!r}: {'a whole number' if kind == 'integer' else 'a number'} "
                               "expected", parameter=name) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise BadParameter(f"{name}={raw[:40]!r}: a finite number expected", parameter=name)
        return repr(value)
    if kind == "boolean":
        if raw.lower() not in ("true", "false"):
            raise BadParameter(f"{name}={raw[:40]!r}: true or false expected", parameter=name)
        return raw.upper()
    return ("DATE" if kind == "date" else "TIMESTAMP") + "('" + raw.replace("'", "''") + "')"


def _filters(q: Any, queryables: dict[str, cql.Queryable], qry: features.Query):
    """``filter`` (CQL2 text or JSON; filter-lang, filter-crs) and every queryable given as a query parameter
    (equality), ANDed; None when there is none."""
    clauses = []
    if "filter" in q:
        clauses.append(cql.parse_filter(q["filter"], q.get("filter-lang"), queryables, geometry=qry.geom_4326,
                                        filter_crs=q.get("filter-crs"), storage_srid=4326))
    elif "filter-lang" in q or "filter-crs" in q:
        name = "filter-lang" if "filter-lang" in q else "filter-crs"
        raise BadParameter(f"{name} without filter", parameter=name)
    for name, queryable in queryables.items():
        if name in q and name != "geometry":
            try:
                clauses.append(cql.parse_filter(f"{name} = {_literal(name, q[name], queryable.type)}", None,
                                                queryables))
            except BadParameter as exc:
                raise BadParameter(f"{name}={q[name][:40]!r}: {exc.detail.removeprefix('filter: ')}",
                                   parameter=name) from None
    return and_(*clauses) if clauses else None


def _schema(request: Request, session: Session, principal: Principal, coll: Collection, sortables: bool
            ) -> JSONResponse:
    qry = features.query(principal, coll, offered_crs(4326)[0], date.min, "")
    queryables = list(_queryables(qry, coll).values())
    if sortables:
        queryables = [q for q in queryables if q.type in cql.SCALAR_TYPES]
    url = f"{_base(request)}/collections/{coll.id}"
    doc = cql.queryables_document(url, f"{coll.title}: {'sortby' if sortables else 'filter'}", queryables)
    if sortables:
        doc["$id"] = url + "/sortables"
    return _json(doc, SCHEMA_JSON)


@router.get("/collections/{collection_id}/queryables", summary="What filter and the query parameters take",
            response_class=SchemaResponse,
            openapi_extra=_doc("A JSON Schema (2020-12) whose properties are the queryables", F))
def queryables(collection_id: str, request: Request, principal: Principal = Depends(GIS_READER),
               session: Session = Depends(get_read_session)) -> JSONResponse:
    _only(request, {"f"})
    return _schema(request, session, principal, _known(collection_id), sortables=False)


@router.get("/collections/{collection_id}/sortables", summary="What sortby takes",
            response_class=SchemaResponse,
            openapi_extra=_doc("A JSON Schema (2020-12) whose properties are the sortable properties", F))
def sortables(collection_id: str, request: Request, principal: Principal = Depends(GIS_READER),
              session: Session = Depends(get_read_session)) -> JSONResponse:
    _only(request, {"f"})
    return _schema(request, session, principal, _known(collection_id), sortables=True)
