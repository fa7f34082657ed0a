"""Export endpoints: the caller's cases and applications as a GeoPackage, Shapefile (zip), CSV or GeoJSON file.

    GET /api/v1/exports/cases?format=gpkg&crs=EPSG:25832&status=received&…       the inbox's filters
    GET /api/v1/exports/applications?format=shp&status=submitted&…                the list's filters

The format comes from ``format=`` or else from ``Accept`` (``geo.exports.choose_format``): an unknown format is 400,
an Accept that names none of ours 406, both problem+json naming the supported ones. The CRS from ``crs=``
(CRS84/EPSG:4326, EPSG:4258, 25832, 25833, 3857); by default the tenant's metric CRS for GeoPackage and Shapefile,
CRS84 for CSV and GeoJSON. The file is written into a private temporary directory, sent as an attachment
(``Content-Disposition``) and the directory removed once it is sent. Which records and attributes:
``permits.exports.service``.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from breitband import clock
from breitband.db import get_read_session
from breitband.errors import UnprocessableEntity
from breitband.identity import Principal
from geo import exports
from geo.service import tenant_srid
from permits import deadlines
from permits.cases.endpoints import bbox_filter, day_filter
from permits.exports import service
from permits.http import ANYONE
from permits.models import ApplicationStatus, CaseStatus

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])

_FORMAT = Query(None, description="gpkg (GeoPackage), shp (Shapefile as zip), csv or geojson; without it the "
                                  "Accept header decides (default GeoPackage)")
_CRS = Query(None, description="CRS84, EPSG:4326, EPSG:4258, EPSG:25832, EPSG:25833 or EPSG:3857; default the "
                               "tenant's metric CRS for GeoPackage and Shapefile, CRS84 for CSV and GeoJSON")
_RESPONSES = {
    200: {"description": "The file, as an attachment",
          "content": {f.media_type: {"schema": {"type": "string", "format": "binary"}}
                      for f in exports.FORMATS.values()}},
    400: {"description": "Unknown format or CRS (`unknown-export-format`, `unsupported-export-crs`)"},
    406: {"description": "The Accept header names no format offered here (`not-acceptable`)"},
}


def _send(principal: Principal, records: list[service.Record], columns: list[exports.Column], kind: str,
          now: datetime, fmt: exports.Format, epsg: int) -> FileResponse:
    """Write the file, send it as an attachment named ``<kind>-<tenant>-<day>.<ext>``, then remove it."""
    name = f"{kind}-{principal.tenant_key}-{deadlines.local_date(now).isoformat()}"
    written = exports.write(records, columns, service.LAYERS, fmt, epsg, name)
    crs_uri = "http://www.opengis.net/def/crs/OGC/1.3/CRS84" if epsg == 4326 else \
        f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"
    return FileResponse(written.path, media_type=written.media_type, filename=written.filename,
                        background=BackgroundTask(written.cleanup),
                        headers={"Content-Crs": f"<{crs_uri}>", "Cache-Control": "private, no-store"})


def _choose(request: Request, session: Session, principal: Principal, format: str | None, crs: str | None
            ) -> tuple[exports.Format, int]:
    fmt = exports.choose_format(format, request.headers.get("accept"))
    srid = tenant_srid(session, principal.tenant_key)
    default = 4326 if fmt.key in ("geojson", "csv") else srid
    return fmt, exports.choose_crs(crs, default if default in exports.CRSS else 4326)


@router.get("/cases", summary="Export the caller's cases (inbox filters) as GeoPackage, Shapefile, CSV or GeoJSON",
            response_class=FileResponse, responses=_RESPONSES)
def export_cases(request: Request, format: str | None = _FORMAT, crs: str | None = _CRS,
                 status: list[CaseStatus] | None = Query(None),
                 due_before: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="Only cases "
                                                "whose decision is due on or before this day (YYYY-MM-DD)"),
                 overdue: bool | None = Query(None, description="Only open cases whose decision period expired"),
                 bbox: str | None = Query(None, description="minLon,minLat,maxLon,maxLat (EPSG:4326)"),
                 application_id: uuid.UUID | None = Query(None),
                 principal: Principal = Depends(ANYONE), session: Session = Depends(get_read_session),
                 now: datetime = Depends(clock.now)) -> FileResponse:
    fmt, epsg = _choose(request, session, principal, format, crs)
    records = service.case_records(
        session, principal, statuses=[s.value for s in status] if status else None,
        due_before=day_filter(due_before, "due_before"), overdue_at=now if overdue else None,
        bbox=bbox_filter(bbox), application_id=application_id, now=now, site=_site(request))
    return _send(principal, records, service.CASE_COLUMNS, "cases", now, fmt, epsg)


@router.get("/applications", summary="Export the caller's applications as GeoPackage, Shapefile, CSV or GeoJSON",
            response_class=FileResponse, responses=_RESPONSES)
def export_applications(request: Request, format: str | None = _FORMAT, crs: str | None = _CRS,
                        status: list[str] | None = Query(None, description="Filter by application status"),
                        reference: str | None = Query(None, max_length=32),
                        principal: Principal = Depends(ANYONE), session: Session = Depends(get_read_session),
                        now: datetime = Depends(clock.now)) -> FileResponse:
    bad = [s for s in status or [] if s not in {v.value for v in ApplicationStatus}]
    if bad:
        raise UnprocessableEntity(f"status: unknown {', '.join(bad)}; one of "
                                  + ", ".join(v.value for v in ApplicationStatus), field="status")
    fmt, epsg = _choose(request, session, principal, format, crs)
    records = service.application_records(session, principal, statuses=status, reference=reference, now=now,
                                        site=_site(request))
    return _send(principal, records, service.APPLICATION_COLUMNS, "applications", now, fmt, epsg)


def _site(request: Request) -> str:
    """Links in the file start with the configured address, never one taken from the request's Host header."""
    return request.app.state.settings.public_base_url.rstrip("/")
