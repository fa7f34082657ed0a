"""``GET /api/v1/search``: the search box over the map.

One query, one answer, best first: coordinates (when the query is a coordinate pair), references of applications
and cases the caller may read, Gemeinden, Kreise, streets (with their Gemeinde) and road numbers (geo/search.py), each
with its extent (``bbox``, EPSG:4326 west, south, east, north) for the map to fit to.

References are searched only through the caller's scope (``readable_applications``, ``readable_cases``): what the
caller may not read is not found, as everywhere else. Operators and tenant admins find applications (their own, or
all of the tenant), authorities their cases (``kind: "case"``, the case id, so the web app opens the case). A
reference is matched in full or in part ("HE-2026-000123", "000123"), and so is the operator's own reference.
"""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, literal, or_
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from breitband.auth import require
from breitband.identity import Principal
from geo import search
from geo.service import tenant_srid
from permits.models import Application, Case
from permits.repository import is_authority, readable_applications, readable_cases

router = APIRouter(prefix="/api/v1", tags=["search"])

Kind = Literal["coordinates", "application", "case", "gemeinde", "kreis", "street", "road"]


class SearchResult(BaseModel):
    kind: Kind
    label: str = Field(description="What to show: the name, road number, reference or the coordinates as read")
    context: str | None = Field(None, description="A street's Gemeinde, a Gemeinde's Kreis, a Kreis' type, the "
                                                  "Gemeinde of coordinates, an application's project name")
    bbox: list[float] | None = Field(None, description="Extent in EPSG:4326: west, south, east, north (none for "
                                                       "an application without a route)")
    score: float = Field(description="Match quality, 1 = exact")
    id: uuid.UUID | None = Field(None, description="application or case: its id")
    ags: str | None = Field(None, description="gemeinde, kreis: the official key (AGS)")
    road_class: str | None = Field(None, description="road: autobahn | bund | land | kreis | gemeinde")
    point: list[float] | None = Field(None, description="coordinates: longitude, latitude (EPSG:4326)")
    crs: str | None = Field(None, description="coordinates: what the query was read as (EPSG:4326 or EPSG:25832)")
    status: str | None = Field(None, description="application or case: its status")


class SearchOut(BaseModel):
    query: str
    results: list[SearchResult]


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search_references(session: Session, principal: Principal, q: str, limit: int) -> list[dict]:
    """Applications (operators, tenant admins) or cases (authorities) whose reference or operator reference holds
    the query, through the caller's scope; exact references first."""
    pattern = _like(q)
    matches = or_(Application.reference.ilike(pattern), Application.operator_reference.ilike(pattern))
    exact = or_(func.upper(Application.reference) == q.upper(), func.upper(Application.operator_reference) == q.upper())
    box = func.ST_Envelope(Application.route_geom)
    cols = (Application.reference, Application.project_name, exact.label("exact"),
            func.ST_XMin(box), func.ST_YMin(box), func.ST_XMax(box), func.ST_YMax(box),
            func.similarity(Application.reference, q).label("sim"))
    if is_authority(principal):
        stmt = (readable_cases(principal).with_only_columns(Case.id, Case.status, *cols)
                .join(Application, Application.id == Case.application_id).add_columns(literal("case")))
    else:
        stmt = readable_applications(principal).with_only_columns(Application.id, Application.status, *cols) \
            .add_columns(literal("application"))
    stmt = stmt.where(matches).order_by(exact.desc(), func.similarity(Application.reference, q).desc(),
                                        Application.reference.desc()).limit(limit)
    out = []
    for id_, status, reference, project, is_exact, xmin, ymin, xmax, ymax, sim, kind in session.execute(stmt):
        out.append({"kind": kind, "id": id_, "label": reference, "context": project, "status": status,
                    "bbox": None if xmin is None else [round(v, 6) for v in (xmin, ymin, xmax, ymax)],
                    "score": 1.0 if is_exact else round(float(sim or 0), 3)})
    return out


Q = Query(..., max_length=1000, description="Gemeinde, street (with or without its Gemeinde), road number "
                                            "(\"L 3262\"), application or case reference, or coordinates: "
                                            "longitude, latitude (\"8.681, 50.050\") or EPSG:25832 easting "
                                            f"northing (\"478123 5545123\"); at most {search.MAX_QUERY} "
                                            "characters are searched")


def _search(request: Request, principal: Principal, query: str, limit: int) -> list[dict]:
    """The whole search in one worker-thread hop on a read-only session without a transaction around its two or
    three statements (as the resolution dry run, geo/api.py: a session dependency would cost more hops and the
    BEGIN/ROLLBACK round trips, several times the query itself)."""
    with request.app.state.db.statement_session(readonly=True) as session:
        coords = search.parse_coordinates(query)
        if coords is not None:
            return [search.coordinate_result(session, principal.tenant_key,
                                             tenant_srid(session, principal.tenant_key), coords)]
        # a reference holds digits; a road number ("L 3262") is taken as one, not as part of a reference
        wants_refs = any(c.isdigit() for c in query) and search.ref_key(query) is None
        refs = search_references(session, principal, query, limit) if wants_refs else []
        # a query that found a reference is one: places only when they start with it, no fuzzy match besides
        places = search.search_places(session, principal.tenant_key, query, limit,
                                      fuzzy=not refs) if len(query) >= 2 else []
    exact_refs = [r for r in refs if r["score"] == 1.0]
    return exact_refs + places + [r for r in refs if r["score"] < 1.0]


@router.get("/search", response_model=SearchOut, response_model_exclude_none=True,
            summary="Search places, roads, references and coordinates for the map (any role)")
async def search_endpoint(request: Request, q: str = Q,
                          limit: int = Query(10, ge=1, le=25, description="Results at most"),
                          principal: Principal = Depends(require())) -> SearchOut:
    """Best first; each result with its extent (``bbox``) for the map to fit to. 422 problem+json for an empty or
    too long query (``search-query-empty``, ``search-query-too-long``) and for numbers that are no coordinate pair
    (``invalid-coordinates``)."""
    query = search.check_query(q)
    results = await run_in_threadpool(_search, request, principal, query, limit)
    return SearchOut(query=query, results=[SearchResult(**r) for r in results[:limit]])


__all__ = ["router", "search_references"]
