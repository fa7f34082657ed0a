"""Exports of cases and applications as GIS files and tables: which records, with which attributes.

The records are exactly what the caller may read — ``permits.repository.readable_cases`` for cases,
``readable_applications`` for applications (a participating body: the applications it is asked about, through
``permits.participation.statements.readable_statements``) — under the same filters as the lists. The files are
written by ``geo.exports``.

In GeoPackage, Shapefile and GeoJSON every record is a feature of up to three layers, one geometry type each, so
that every GIS takes them (a CSV has one row per record):
``trenches`` (the route's lines as MultiLineString; every record is here, with no geometry if its route has no
lines yet, so the layer counts the whole export), ``points`` (pits, cabinets, manholes, house connections as
MultiPoint) and ``areas`` (construction areas as MultiPolygon) — the latter two only for records that have such
features. All layers carry the same attributes (``CASE_COLUMNS`` / ``APPLICATION_COLUMNS``, with their Shapefile
names). Geometries are the application's route as submitted (EPSG:4326 in the database), for a case the whole route
of its application; the case's own share is its ``length_m``, road numbers and Gemeinden. Lists of values (roads,
Gemeinden, conditions) are joined with ", ".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import shapely
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from breitband.errors import UnprocessableEntity
from breitband.identity import Principal
from breitband.models import OrgKind
from geo.exports import Column, LayerNames
from permits import deadlines, repository, views
from permits.models import OPEN_CASE_STATUSES, Application, ApplicationVersion, Case
from permits.participation.models import StatementRequest
from permits.participation.statements import readable_statements

# More records than this in one file: narrow the filters (the file is built in memory and a temporary directory).
MAX_RECORDS = 50_000
OPEN = {s.value for s in OPEN_CASE_STATUSES}

_COMMON_HEAD = [
    Column("reference", "reference", "str", "Aktenzeichen des Antrags (HE-2026-000123)"),
    Column("project_name", "project", "str", "Vorhaben"),
    Column("operator_reference", "op_ref", "str", "Zeichen des Netzbetreibers"),
]
CASE_COLUMNS = [
    *_COMMON_HEAD,
    Column("status", "status", "str", "Stand des Falls (received, incomplete, in_review, granted, …)"),
    Column("application_status", "app_status", "str", "Stand des Antrags"),
    Column("authority", "authority", "str", "Wegebaulastträger / Straßenbaubehörde des Falls"),
    Column("operator", "operator", "str", "Antragsteller (Netzbetreiber)"),
    Column("road_refs", "road_refs", "str", "Straßen des Falls: Nummern (L 3262), sonst Namen"),
    Column("gemeinden", "gemeinden", "str", "Gemeinden, durch die der Anteil des Falls führt"),
    Column("length_m", "length_m", "float", "Länge des Anteils des Falls in Metern"),
    Column("route_length_m", "route_m", "float", "Länge der ganzen Trasse in Metern"),
    Column("received_on", "received", "date", "Eingang (Tag, Europe/Berlin)"),
    Column("complete_on", "complete", "date", "Vollständiger Eingang (leer, solange die Frist angehalten ist)"),
    Column("planned_start", "plan_start", "date", "Geplanter Baubeginn"),
    Column("planned_end", "plan_end", "date", "Geplantes Bauende"),
    Column("decision_due", "due", "date", "Entscheidungsfrist (letzter Tag)"),
    Column("days_left", "days_left", "int", "Tage bis zum Fristende (offene Fälle)"),
    Column("overdue", "overdue", "bool", "Frist abgelaufen (offene Fälle)"),
    Column("decided_on", "decided", "date", "Entschieden am (Tag)"),
    Column("conditions", "cond_codes", "str", "Nebenbestimmungen: Kennungen"),
    Column("condition_titles", "cond_title", "str", "Nebenbestimmungen: Titel"),
    Column("case_id", "case_id", "str", "Kennung des Falls"),
    Column("application_id", "app_id", "str", "Kennung des Antrags"),
    Column("url", "url", "str", "Der Fall in der Web-Anwendung"),
]
APPLICATION_COLUMNS = [
    *_COMMON_HEAD,
    Column("status", "status", "str", "Stand des Antrags (draft, submitted, information_requested, granted, …)"),
    Column("operator", "operator", "str", "Antragsteller (Netzbetreiber)"),
    Column("authorities", "authority", "str", "Beteiligte Wegebaulastträger"),
    Column("road_refs", "road_refs", "str", "Straßen: Nummern (L 3262), sonst Namen"),
    Column("gemeinden", "gemeinden", "str", "Gemeinden, durch die die Trasse führt"),
    Column("length_m", "length_m", "float", "Länge der Trasse in Metern"),
    Column("submitted_on", "submitted", "date", "Eingereicht am (Tag, Europe/Berlin)"),
    Column("planned_start", "plan_start", "date", "Geplanter Baubeginn"),
    Column("planned_end", "plan_end", "date", "Geplantes Bauende"),
    Column("decision_due", "due", "date", "Früheste Entscheidungsfrist der offenen Fälle"),
    Column("days_left", "days_left", "int", "Tage bis zur frühesten Frist (offene Fälle)"),
    Column("overdue", "overdue", "bool", "Eine Frist ist abgelaufen"),
    Column("decided_on", "decided", "date", "Letzte Entscheidung (Tag)"),
    Column("conditions", "cond_codes", "str", "Nebenbestimmungen aller Entscheidungen: Kennungen"),
    Column("condition_titles", "cond_title", "str", "Nebenbestimmungen: Titel"),
    Column("application_id", "app_id", "str", "Kennung des Antrags"),
    Column("url", "url", "str", "Der Antrag in der Web-Anwendung"),
]
# (geometry of the route in EPSG:4326 or None, attributes by column name)
Record = tuple[Any, dict[str, Any]]
LAYERS = LayerNames(lines="trenches", points="points", areas="areas")


# --- attributes ---------------------------------------------------------------------------------------------------

def _joined(values: Iterable[Any]) -> str | None:
    seen = list(dict.fromkeys(str(v) for v in values if v))
    return ", ".join(seen) if seen else None


def _roads(pieces: list[dict[str, Any]]) -> str | None:
    return _joined(p.get("road_ref") or p.get("road_name") for p in pieces)


def _gemeinden(pieces: list[dict[str, Any]]) -> str | None:
    return _joined((p.get("gemeinde") or {}).get("name") for p in pieces)


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def _local(instant: datetime | None) -> date | None:
    return deadlines.local_date(instant) if instant is not None else None


def _conditions(cases: list[Case]) -> tuple[str | None, str | None]:
    found: dict[str, str] = {}
    for c in cases:
        for cond in (c.decision or {}).get("conditions") or []:
            found.setdefault(cond.get("code"), cond.get("title"))
    return _joined(found), _joined(found.values())


def _too_many(count: int) -> None:
    if count > MAX_RECORDS:
        raise UnprocessableEntity(f"More than {MAX_RECORDS:,} records match; narrow the export with the filters "
                                  "(status, due_before, bbox, …)", type="export-too-large", limit=MAX_RECORDS)


def _geometries(session: Session, app_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    if not app_ids:
        return {}
    rows = session.execute(select(Application.id, func.ST_AsBinary(Application.route_geom))
                           .where(Application.id.in_(app_ids), Application.route_geom.is_not(None))).all()
    geoms = shapely.from_wkb([bytes(r[1]) for r in rows])
    return {r[0]: g for r, g in zip(rows, geoms, strict=True)}


# --- cases --------------------------------------------------------------------------------------------------------

def case_records(session: Session, principal: Principal, *, statuses: list[str] | None, due_before: date | None,
                overdue_at: datetime | None, bbox: tuple[float, float, float, float] | None,
                application_id: uuid.UUID | None, now: datetime, site: str) -> list[Record]:
    """The caller's cases (``readable_cases``) under the inbox's filters, in the inbox's legal order."""
    stmt = repository.readable_cases(principal)
    if statuses:
        stmt = stmt.where(Case.status.in_(statuses))
    if due_before is not None:
        stmt = stmt.where(Case.decision_due <= due_before)
    if overdue_at is not None:
        stmt = stmt.where(Case.status.in_(OPEN), Case.deadline_at <= overdue_at)
    if bbox is not None:
        stmt = stmt.where(exists().where(
            Application.id == Case.application_id,
            func.ST_Intersects(Application.route_geom, func.ST_MakeEnvelope(*bbox, 4326))))
    if application_id is not None:
        stmt = stmt.where(Case.application_id == application_id)
    version = ApplicationVersion
    stmt = (stmt.join(Application, Application.id == Case.application_id)
            .outerjoin(version, and_(version.application_id == Case.application_id,
                                     version.number == Case.application_version))
            .with_only_columns(Case, Application, version.content["planned_start"].astext,
                               version.content["planned_end"].astext, version.resolution["total_length_m"].astext)
            .order_by(Case.status.in_(OPEN).desc(), func.coalesce(Case.complete_at, repository.INFINITY),
                      Case.received_at, Case.id)
            .limit(MAX_RECORDS + 1))
    rows = session.execute(stmt).all()
    _too_many(len(rows))
    orgs = repository.organisations(session, [r[0].authority_org_id for r in rows] + [r[1].applicant_org_id
                                                                                      for r in rows])
    geoms = _geometries(session, list({r[1].id for r in rows}))

    def name(org_id: uuid.UUID) -> str:
        org = orgs.get(org_id)
        return org.name if org else "(deleted)"

    records = []
    for case, app, start, end, total in rows:
        pieces = (case.part or {}).get("pieces") or []
        codes, titles = _conditions([case])
        records.append((geoms.get(app.id), {
            "reference": app.reference, "project_name": app.project_name,
            "operator_reference": app.operator_reference, "status": case.status,
            "application_status": app.status, "authority": name(case.authority_org_id),
            "operator": name(app.applicant_org_id), "road_refs": _roads(pieces), "gemeinden": _gemeinden(pieces),
            "length_m": (case.part or {}).get("length_m"), "route_length_m": float(total) if total else None,
            "received_on": _local(case.received_at), "complete_on": _local(case.complete_at),
            "planned_start": _day(start), "planned_end": _day(end), "decision_due": case.decision_due,
            "days_left": views.days_left(case, now), "overdue": views.overdue(case, now) if case.status in OPEN
            else None, "decided_on": _local(case.decided_at), "conditions": codes, "condition_titles": titles,
            "case_id": str(case.id), "application_id": str(app.id), "url": f"{site}/#/case/{case.id}"}))
    return records


# --- applications -------------------------------------------------------------------------------------------------

def readable_for_export(principal: Principal):
    """The applications the caller may read: ``readable_applications``; for a participating body (which reads no
    application itself) those it is asked about, from ``readable_statements``."""
    if principal.organisation_kind is OrgKind.participating_body and not principal.is_tenant_admin:
        asked = readable_statements(principal).with_only_columns(StatementRequest.application_id)
        return select(Application).where(Application.tenant_key == principal.tenant_key,
                                         Application.id.in_(asked))
    return repository.readable_applications(principal)


def application_records(session: Session, principal: Principal, *, statuses: list[str] | None,
                       reference: str | None, now: datetime, site: str) -> list[Record]:
    """The caller's applications under the list's filters, newest first. Case facts (deadlines, decisions,
    conditions) come from the cases the caller may see as its own: an authority its own cases, an operator and a
    tenant admin all; a participating body none."""
    stmt = readable_for_export(principal)
    if statuses:
        stmt = stmt.where(Application.status.in_(statuses))
    if reference:
        stmt = stmt.where(Application.reference == reference)
    version = ApplicationVersion
    stmt = (stmt.outerjoin(version, and_(version.application_id == Application.id,
                                         version.number == Application.current_version))
            .with_only_columns(Application, version.content["planned_start"].astext,
                               version.content["planned_end"].astext, version.resolution)
            .order_by(Application.created_at.desc(), Application.id).limit(MAX_RECORDS + 1))
    rows = session.execute(stmt).all()
    _too_many(len(rows))
    cases = repository.cases_of(session, [r[0].id for r in rows])
    orgs = repository.organisations(session, [r[0].applicant_org_id for r in rows]
                                    + [c.authority_org_id for cs in cases.values() for c in cs])
    geoms = _geometries(session, [r[0].id for r in rows])
    body = principal.organisation_kind is OrgKind.participating_body and not principal.is_tenant_admin

    records = []
    for app, start, end, resolution in rows:
        mine = [] if body else [c for c in cases[app.id] if not repository.is_authority(principal)
                                or c.authority_org_id == principal.organisation_id]
        open_ = [c for c in mine if c.status in OPEN and c.decision_due is not None]
        decided = [c.decided_at for c in mine if c.decided_at is not None]
        pieces = [p for a in (resolution or {}).get("authorities") or [] for p in a.get("pieces") or []]
        codes, titles = _conditions(mine)
        first_due = min(open_, key=lambda c: c.decision_due) if open_ else None
        records.append((geoms.get(app.id), {
            "reference": app.reference, "project_name": app.project_name,
            "operator_reference": app.operator_reference, "status": app.status,
            "operator": orgs[app.applicant_org_id].name if app.applicant_org_id in orgs else "(deleted)",
            "authorities": _joined(orgs[c.authority_org_id].name for c in cases[app.id]
                                   if c.status != "forwarded" and c.authority_org_id in orgs),
            "road_refs": _roads(pieces), "gemeinden": _gemeinden(pieces),
            "length_m": (resolution or {}).get("total_length_m"), "submitted_on": _local(app.submitted_at),
            "planned_start": _day(start), "planned_end": _day(end),
            "decision_due": first_due.decision_due if first_due else None,
            "days_left": views.days_left(first_due, now) if first_due else None,
            "overdue": any(views.overdue(c, now) for c in open_) if open_ else None,
            "decided_on": _local(max(decided)) if decided else None, "conditions": codes,
            "condition_titles": titles, "application_id": str(app.id),
            "url": None if body else f"{site}/#/application/{app.id}"}))
    return records
