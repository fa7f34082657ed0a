"""Participation (Beteiligung, § 127 (5) TKG): which other bodies must be heard, and their statement requests.

**Bodies** are organisations of kind ``participating_body`` registered with a *role* (traffic, water, nature,
monument) and the place they are responsible for (``ags``: a Gemeinde (8 digits), a Kreis (5), the Land (2), or
none = the whole tenant): ``breitband participation bodies add``. For a place the most specific body wins
(Gemeinde, then Kreis, then Land/tenant), so a Straßenverkehrsbehörde of a town takes precedence over its Kreis'.

**Protected areas** are an importable layer per tenant and kind (``breitband import areas --kind
water|nature|monument``); an area may name its body (attribute ``body`` or ``--body``), otherwise the body with the
rule's role for the place where the route meets the area is asked.

**Rules** per tenant (``breitband participation rules load --tenant KEY FILE``, Hessen:
``data/tenants/he_participation.toml``; without a file, ``DEFAULT_RULES``)::

    [[rules]]
    id = "wasserschutz"          # stable id, shown in the request
    trigger = "area"             # a route piece inside (or within buffer_m of) an area of area_kind
    area_kind = "water"
    role = "water"               # which body to ask
    buffer_m = 0
    deadline_days = 28
    reason = "Die Trasse berührt das Wasserschutzgebiet {area} ({length_m} m)."

    [[rules]]
    id = "verkehrsrechtliche-anordnung"
    trigger = "traffic_restriction"   # any traffic restriction (or only restriction_kinds) in the application
    role = "traffic"                  # → the Straßenverkehrsbehörde of every Gemeinde (or its Kreis) on the route
    deadline_days = 14
    reason = "Verkehrsbeschränkungen ({restrictions}) in {gemeinde}."

``evaluate`` applies the rules (the pipeline's ``checks`` step records the result); ``step_participation`` creates
one statement request per body and submitted version, with the triggers as its reasons and the longest deadline of
the rules involved. A supplement asks only bodies not asked yet, unless the route changed: then the open requests
of earlier versions are superseded and every body is asked about the new route.
"""

from __future__ import annotations

import tomllib
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from breitband.errors import UnprocessableEntity
from breitband.models import Organisation, OrgKind, Tenant
from geo.crs import parse_crs, transform_geometry
from permits import core, deadlines, repository
from permits.cases import related
from permits.models import Application
from permits.participation.models import (
    CloseReason,
    ParticipationBody,
    ParticipationRuleSet,
    StatementRequest,
    StatementStatus,
)
from permits.pipeline.models import PipelineRun
from permits.pipeline.service import StepError
from permits.schemas import TRAFFIC_RESTRICTION_DE

ROLE_DE = {"traffic": "Straßenverkehrsbehörde", "water": "Wasserbehörde", "nature": "Naturschutzbehörde",
           "monument": "Denkmalschutzbehörde"}
AREA_DE = {"water": "Wasserschutzgebiet", "nature": "Naturschutzgebiet", "monument": "Kulturdenkmal"}


# --- rules ------------------------------------------------------------------------------------------------------------

class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    trigger: Literal["area", "traffic_restriction"]
    area_kind: Literal["water", "nature", "monument"] | None = None
    role: Literal["traffic", "water", "nature", "monument"]
    buffer_m: float = Field(0.0, ge=0, le=500)
    restriction_kinds: list[str] = Field(default_factory=list)
    deadline_days: int = Field(28, ge=1, le=180)
    reason: str = Field(min_length=1, max_length=1000)
    # statement: the body is heard; decision: the body issues its own decision (traffic order, nature, water or
    # monument permit) together with the consent, as a case in its inbox (§ 127 (5) TKG; permits.cases.related)
    procedure: Literal["statement", "decision"] = "statement"

    @model_validator(mode="after")
    def _area(self) -> "Rule":
        if self.trigger == "area" and self.area_kind is None:
            raise ValueError("an area rule needs area_kind (water, nature or monument)")
        if self.trigger != "area" and self.area_kind is not None:
            raise ValueError("area_kind belongs to area rules")
        return self


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule]

    @model_validator(mode="after")
    def _unique(self) -> "RuleSet":
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique")
        return self


DEFAULT_RULES: dict[str, Any] = {"rules": [
    {"id": "wasserschutz", "trigger": "area", "area_kind": "water", "role": "water", "deadline_days": 28,
     "reason": "Die Trasse berührt das Wasserschutzgebiet {area} ({length_m} m)."},
    {"id": "naturschutz", "trigger": "area", "area_kind": "nature", "role": "nature", "deadline_days": 28,
     "reason": "Die Trasse berührt das Schutzgebiet {area} ({length_m} m)."},
    {"id": "denkmalschutz", "trigger": "area", "area_kind": "monument", "role": "monument", "buffer_m": 10,
     "deadline_days": 28, "reason": "Die Trasse verläuft am Kulturdenkmal {area} (Abstand bis {buffer_m} m)."},
    {"id": "verkehrsrechtliche-anordnung", "trigger": "traffic_restriction", "role": "traffic", "deadline_days": 14,
     "reason": "Verkehrsbeschränkungen ({restrictions}) in {gemeinde} (§ 45 StVO)."},
]}


def parse_rules(data: dict[str, Any], source: str = "rules") -> RuleSet:
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise UnprocessableEntity(f"{source}: invalid participation rules: {problems}",
                                  type="invalid-participation-rules") from None


def read_rules_file(path: Path) -> RuleSet:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UnprocessableEntity(f"{path}: file does not exist", type="import-file-missing") from None
    except tomllib.TOMLDecodeError as exc:
        raise UnprocessableEntity(f"{path}: not valid TOML: {exc}", type="invalid-participation-rules") from None
    return parse_rules(data, str(path))


def store_rules(session: Session, tenant_key: str, rules: RuleSet, source: str | None, now: datetime) -> None:
    stmt = insert(ParticipationRuleSet).values(tenant_key=tenant_key, rules=rules.model_dump(mode="json"),
                                               source=source, updated_at=now)
    session.execute(stmt.on_conflict_do_update(index_elements=[ParticipationRuleSet.tenant_key],
                                               set_={"rules": stmt.excluded.rules, "source": stmt.excluded.source,
                                                     "updated_at": stmt.excluded.updated_at}))


def tenant_rules(session: Session, tenant_key: str) -> tuple[RuleSet, str]:
    row = session.get(ParticipationRuleSet, tenant_key)
    if row is None:
        return parse_rules(DEFAULT_RULES), "default"
    return parse_rules(row.rules), row.source or "tenant"


# --- bodies -----------------------------------------------------------------------------------------------------------

def add_body(session: Session, tenant_key: str, org: Organisation, role: str, ags: str | None,
             now: datetime) -> ParticipationBody:
    if org.tenant_key != tenant_key or org.kind != OrgKind.participating_body.value:
        raise UnprocessableEntity(f"{org.name} is a {org.kind}; bodies to be heard are organisations of kind "
                                  "participating_body", type="not-a-participating-body", field="org")
    if role not in ROLE_DE:
        raise UnprocessableEntity(f"role {role!r}: one of {', '.join(ROLE_DE)}", field="role")
    if ags is not None and (not ags.isdigit() or len(ags) not in (2, 5, 8)):
        raise UnprocessableEntity(f"ags {ags!r}: the key of a Land (2 digits), Kreis (5) or Gemeinde (8)",
                                  field="ags")
    existing = session.scalars(select(ParticipationBody).where(
        ParticipationBody.tenant_key == tenant_key, ParticipationBody.role == role,
        ParticipationBody.ags.is_(None) if ags is None else ParticipationBody.ags == ags)).first()
    if existing is not None:
        existing.organisation_id = org.id
        session.flush()
        return existing
    body = ParticipationBody(tenant_key=tenant_key, organisation_id=org.id, role=role, ags=ags, created_at=now)
    session.add(body)
    session.flush()
    return body


def find_body(session: Session, tenant_key: str, role: str, ags: str | None) -> Organisation | None:
    """The most specific body with ``role`` for the place ``ags`` (Gemeinde → Kreis → Land → whole tenant)."""
    places = [ags, ags[:5], ags[:2]] if ags else []
    rows = session.execute(select(ParticipationBody.ags, Organisation).join(
        Organisation, Organisation.id == ParticipationBody.organisation_id).where(
        ParticipationBody.tenant_key == tenant_key, ParticipationBody.role == role,
        ParticipationBody.ags.in_(places) | ParticipationBody.ags.is_(None))).all()
    rows.sort(key=lambda r: -len(r[0] or ""))
    return rows[0][1] if rows else None


# --- evaluation -------------------------------------------------------------------------------------------------------

AREAS_SQL = text("""
WITH r AS (SELECT ST_GeomFromWKB(:all, :srid) AS g, ST_GeomFromWKB(:lines, :srid) AS l)
SELECT a.id, a.name, a.designation, a.ref, a.body_org_id,
       ST_Length(ST_Intersection(r.l, CASE WHEN :buf > 0 THEN ST_Buffer(a.geom, :buf) ELSE a.geom END)) AS length_m,
       gem.ags, gem.name AS gemeinde
FROM protected_areas a CROSS JOIN r
LEFT JOIN LATERAL (
    SELECT g.ags, g.name FROM admin_areas g
    WHERE g.tenant_key = :tenant AND g.level = 'gemeinde' AND ST_DWithin(g.geom, ST_ClosestPoint(a.geom, r.g), 150)
    ORDER BY ST_Distance(g.geom, ST_ClosestPoint(a.geom, r.g)) LIMIT 1
) gem ON true
WHERE a.tenant_key = :tenant AND a.kind = :kind AND ST_DWithin(a.geom, r.g, :buf)
ORDER BY a.name, a.id
""")


def route_in_tenant_crs(content: dict[str, Any], srid: int) -> tuple[Any, Any]:
    """→ (all features as a GeometryCollection, the lines as a MultiLineString) in the tenant's metric CRS."""
    src = parse_crs(content.get("crs"))
    geoms = [transform_geometry(shapely.geometry.shape(f["geometry"]), src, srid)
             for f in (content.get("sections") or {}).get("features") or []]
    lines = [part for g in geoms for part in getattr(g, "geoms", [g]) if part.geom_type == "LineString"]
    return shapely.GeometryCollection(geoms), shapely.MultiLineString(lines)


def gemeinden_of(resolution: dict[str, Any]) -> list[dict[str, str]]:
    """The Gemeinden the route runs through (from the resolution's pieces), in route order."""
    seen: dict[str, dict[str, str]] = {}
    pieces = [p for a in resolution.get("authorities") or [] for p in a.get("pieces") or []]
    pieces += (resolution.get("private_roads") or {}).get("pieces") or []
    pieces += (resolution.get("outside_public_roads") or {}).get("pieces") or []
    for p in sorted(pieces, key=lambda p: p.get("section") or 0):
        g = p.get("gemeinde")
        if g and g.get("ags") and g["ags"] not in seen:
            seen[g["ags"]] = {"ags": g["ags"], "name": g.get("name")}
    return list(seen.values())


def _fmt(template: str, **values: Any) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def evaluate(session: Session, tenant_key: str, content: dict[str, Any], resolution: dict[str, Any]
             ) -> dict[str, Any]:
    """Apply the tenant's rules to a submitted version. → {"requests": [one per body], "unresolved": [...]}"""
    rules, source = tenant_rules(session, tenant_key)
    srid = session.get(Tenant, tenant_key).srid
    everything, lines = route_in_tenant_crs(content, srid)
    gemeinden = gemeinden_of(resolution)
    by_body: dict[tuple[uuid.UUID, str, str], dict[str, Any]] = {}
    unresolved: list[dict[str, Any]] = []

    def ask(org: Organisation, rule: Rule, trigger: dict[str, Any]) -> None:
        # a statement per body; a decision per body and role (a body may issue, say, a water and a nature permit)
        key = (org.id, rule.procedure, rule.role if rule.procedure == "decision" else "")
        entry = by_body.setdefault(key, {"body_org_id": str(org.id), "body_name": org.name, "role": rule.role,
                                         "deadline_days": 0, "triggers": []})
        entry["deadline_days"] = max(entry["deadline_days"], rule.deadline_days)
        entry["triggers"].append(trigger)

    for rule in rules.rules:
        if rule.trigger == "area":
            rows = session.execute(AREAS_SQL, {"all": shapely.to_wkb(everything), "lines": shapely.to_wkb(lines),
                                               "srid": srid, "buf": rule.buffer_m, "tenant": tenant_key,
                                               "kind": rule.area_kind}).mappings().all()
            for row in rows:
                length = round(float(row["length_m"] or 0), 1)
                place = {"ags": row["ags"], "name": row["gemeinde"]} if row["ags"] else None
                trigger = {"rule": rule.id, "trigger": "area", "area": {
                    "id": row["id"], "name": row["name"], "kind": rule.area_kind, "designation": row["designation"],
                    "ref": row["ref"]}, "length_m": length, "gemeinde": place,
                    "reason": _fmt(rule.reason, area=row["name"], length_m=f"{length:g}", buffer_m=f"{rule.buffer_m:g}",
                                   designation=row["designation"] or AREA_DE[rule.area_kind],
                                   gemeinde=(place or {}).get("name") or "")}
                org = session.get(Organisation, row["body_org_id"]) if row["body_org_id"] else \
                    find_body(session, tenant_key, rule.role, row["ags"])
                if org is None:
                    where = f"{place['name']} ({place['ags']})" if place else "diesen Ort"
                    unresolved.append({"rule": rule.id, "role": rule.role, "gemeinde": place, "area": row["name"],
                                       "message": f"Regel {rule.id}: keine {ROLE_DE[rule.role]} für {where}, ihren "
                                                  f"Kreis oder das Land hinterlegt (Gebiet {row['name']})"})
                else:
                    ask(org, rule, trigger)
        else:
            restrictions = [r for r in content.get("traffic_restrictions") or []
                            if not rule.restriction_kinds or r.get("kind") in rule.restriction_kinds]
            if not restrictions:
                continue
            kinds = ", ".join(dict.fromkeys(TRAFFIC_RESTRICTION_DE.get(r.get("kind"), str(r.get("kind")))
                                            for r in restrictions))
            for place in gemeinden:
                org = find_body(session, tenant_key, rule.role, place["ags"])
                trigger = {"rule": rule.id, "trigger": "traffic_restriction", "gemeinde": place,
                           "restrictions": [r.get("kind") for r in restrictions],
                           "reason": _fmt(rule.reason, restrictions=kinds, gemeinde=place["name"] or place["ags"])}
                if org is None:
                    unresolved.append({"rule": rule.id, "role": rule.role, "gemeinde": place,
                                       "message": f"Regel {rule.id}: keine {ROLE_DE[rule.role]} für {place['name']} "
                                                  f"({place['ags']}) oder ihren Kreis hinterlegt"})
                else:
                    ask(org, rule, trigger)
    def of(procedure: str) -> list[dict[str, Any]]:
        return sorted((e for k, e in by_body.items() if k[1] == procedure), key=lambda e: (e["body_name"], e["role"]))

    return {"rules_source": source, "rules": [r.id for r in rules.rules], "requests": of("statement"),
            "decisions": of("decision"), "unresolved": unresolved}


# --- the pipeline step -----------------------------------------------------------------------------------------------

def step_participation(session: Session, run: PipelineRun, app: Application, now: datetime) -> dict[str, Any]:
    version = repository.version_row(session, app.id, run.version)
    plan = evaluate(session, app.tenant_key, version.content, version.resolution or {})
    if plan["unresolved"]:
        raise StepError("Beteiligung nicht möglich / participation not possible: "
                        + "; ".join(u["message"] for u in plan["unresolved"])
                        + ". Hinterlegen Sie die Stelle (breitband participation bodies add) und wiederholen Sie "
                          "den Schritt.")
    # the commands' lock order (application, its cases, then its statement requests): a decision closing requests
    # and this step never wait for each other crosswise
    app = repository.lock_application(session, app.id)
    cases = repository.lock_cases(session, app.id)
    existing = list(session.scalars(select(StatementRequest).where(StatementRequest.application_id == app.id)
                                    .order_by(StatementRequest.created_at).with_for_update()))
    open_statuses = (StatementStatus.requested.value, StatementStatus.answered.value)
    requested, kept, superseded = [], [], []
    new_ids: dict[str, uuid.UUID] = {}
    for item in plan["requests"]:
        body_id = uuid.UUID(item["body_org_id"])
        mine = [r for r in existing if r.body_org_id == body_id and r.status in open_statuses]
        current = [r for r in mine if r.version == run.version]
        if current or (mine and not version.route_changed):
            kept.append({"statement_id": str((current or mine)[-1].id), "body_name": item["body_name"]})
            continue
        request = StatementRequest(
            id=uuid.uuid4(), tenant_key=app.tenant_key, application_id=app.id, version=run.version, run_id=run.id,
            body_org_id=body_id, role=item["role"], triggers=item["triggers"],
            status=StatementStatus.requested.value, requested_at=now,
            due_on=deadlines.local_date(now) + timedelta(days=item["deadline_days"]), conditions=[],
            created_at=now, updated_at=now)
        session.add(request)
        session.flush()
        new_ids[item["body_org_id"]] = request.id
        core.event(session, "statement.requested", app, now, statement_id=str(request.id), body_org_id=str(body_id),
                   body_name=item["body_name"], role=item["role"], due_on=request.due_on, version=run.version,
                   triggers=[{"rule": t["rule"], "reason": t["reason"]} for t in item["triggers"]])
        requested.append({"statement_id": str(request.id), "body_name": item["body_name"],
                          "due_on": request.due_on.isoformat()})
    if version.route_changed:
        for r in existing:
            if r.version < run.version and r.status == StatementStatus.requested.value:
                r.status, r.updated_at = StatementStatus.superseded.value, now
                r.closed_reason, r.closed_at = CloseReason.route_changed.value, now
                r.superseded_by = new_ids.get(str(r.body_org_id))
                core.event(session, "statement.superseded", app, now, statement_id=str(r.id),
                           body_org_id=str(r.body_org_id), superseded_by=str(r.superseded_by or ""),
                           reason=CloseReason.route_changed.value, due_on=r.due_on, version=r.version,
                           new_version=run.version)
                superseded.append(str(r.id))
    session.flush()
    decisions = related.create_for_plan(session, app, cases, plan["decisions"], run.version, version.route_changed,
                                        now)
    if decisions["created"] or decisions["withdrawn"]:
        core.touch(session, app, cases, now)
        session.flush()
    return {"requested": requested, "kept": kept, "superseded": superseded, "decisions": decisions}
