"""The authority directory derived from the boundaries and the rules: one authority per Gemeinde (a kreisfreie
Stadt being one authority for its Gemeinde and Kreis roads), per Kreis that is not kreisfrei, and per agency named
in the rules. Created or updated, never deleted: users and later data hang on the organisations.

Matching: an existing authority by (tenant, kind, key); otherwise an organisation of the tenant with exactly that
name that has no authority yet (agencies: with exactly that name, even if it has one), so that organisations made
before the import (the demo's "Hessen Mobil", with its users) are reused.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from breitband.models import Organisation, OrgKind
from geo.importers.common import Area, Summary
from geo.models import Authority
from geo.rules import TenantRules

CLASS_ORDER = ("autobahn", "bund", "land", "kreis", "gemeinde")
CLASS_LABELS = {"autobahn": "Bundesautobahnen", "bund": "Bundesstraßen", "land": "Landesstraßen",
                "kreis": "Kreisstraßen", "gemeinde": "Gemeindestraßen"}


def authority_name(area: Area) -> str:
    if area.kreisfrei:
        return f"Stadt {area.name}"
    if area.level == "kreis" and "kreis" in area.name.lower():
        return area.name
    return f"{area.bez} {area.name}" if area.bez else area.name


def sync_authorities(session: Session, tenant_key: str, state_name: str, rules: TenantRules, areas: list[Area],
                     summary: Summary) -> dict[str, int]:
    """Create or update the authorities for the areas and the rules' agencies; never delete one."""
    session.flush()
    auths = list(session.scalars(select(Authority).where(Authority.tenant_key == tenant_key)))
    by_slot = {(a.kind, a.key): a for a in auths if a.key is not None}
    by_org = {a.organisation_id: a for a in auths}
    orgs = list(session.scalars(select(Organisation).where(Organisation.tenant_key == tenant_key)
                                .order_by(Organisation.created_at, Organisation.id)))
    org_by_id = {o.id: o for o in orgs}
    org_by_name: dict[str, Organisation] = {}
    for o in orgs:
        if o.kind == OrgKind.road_authority.value:
            org_by_name.setdefault(o.name, o)
    stats = {"created": 0, "updated": 0, "unchanged": 0}

    def new_org(name: str) -> Organisation:
        org = Organisation(id=uuid.uuid4(), tenant_key=tenant_key, kind=OrgKind.road_authority.value,
                           name=name[:300])
        session.add(org)
        org_by_id[org.id] = org
        org_by_name.setdefault(org.name, org)
        return org

    def upsert(kind: str, key: str | None, name: str, jurisdiction: str, *, by_name_always: bool = False) -> None:
        auth = by_slot.get((kind, key)) if key is not None and not by_name_always else None
        org = org_by_id.get(auth.organisation_id) if auth else None
        if org is None:
            candidate = org_by_name.get(name)
            if (candidate is not None and candidate.kind == OrgKind.road_authority.value
                    and (by_name_always or candidate.id not in by_org)):
                org = candidate
                auth = by_org.get(org.id)
        if org is None:
            org = new_org(name)
        if key is not None:
            holder = by_slot.get((kind, key))
            if holder is not None and holder.organisation_id != org.id:
                # the slot moves to another organisation (renamed agency): the old one keeps its row as "other"
                summary.warnings.append(f"authority {kind} {key} moves from {org_by_id[holder.organisation_id].name!r}"
                                        f" to {org.name!r}")
                holder.kind, holder.key = "other", None
                by_slot.pop((kind, key))
                session.flush()
        if auth is None:
            auth = Authority(organisation_id=org.id, tenant_key=tenant_key, kind=kind, key=key,
                             jurisdiction=jurisdiction[:500])
            session.add(auth)
            by_org[org.id] = auth
            stats["created"] += 1
        else:
            changed = (auth.kind, auth.key, auth.jurisdiction, org.name) != (kind, key, jurisdiction[:500], name)
            if auth.key is not None and (auth.kind, auth.key) != (kind, key):
                by_slot.pop((auth.kind, auth.key), None)
            auth.kind, auth.key, auth.jurisdiction = kind, key, jurisdiction[:500]
            if org.name != name and not by_name_always:
                org.name = name[:300]
            stats["updated" if changed else "unchanged"] += 1
        if key is not None:
            by_slot[(kind, key)] = auth

    counts = {"gemeinde": 0, "kreis": 0, "agency": 0}
    for a in sorted(areas, key=lambda a: (a.level, a.ags)):
        if a.level == "gemeinde" and not a.gemeindefrei:
            if a.kreisfrei:
                what = f"Gemeindestraßen, Kreisstraßen und Ortsdurchfahrten in {a.name} (kreisfreie Stadt)"
            else:
                what = f"Gemeindestraßen und Ortsdurchfahrten in {a.name}"
            upsert("gemeinde", a.ags, authority_name(a), what)
            counts["gemeinde"] += 1
        elif a.level == "kreis" and not a.kreisfrei:
            name = authority_name(a)
            upsert("kreis", a.ags, name, f"Kreisstraßen im {name}")
            counts["kreis"] += 1

    served: dict[str, list[str]] = {}
    for cls in CLASS_ORDER:
        name = rules.agencies.get(cls)
        if name:
            served.setdefault(name, []).append(cls)
    ka = rules.kreis_agency
    for name, classes in served.items():
        kind = classes[-1]
        what = " und ".join(CLASS_LABELS[c] for c in classes) + f" in {state_name}"
        if kind != "autobahn":
            what += " (außerhalb der Ortsdurchfahrten in der Baulast der Gemeinden)"
        if ka is not None and ka.name == name and ka.kreise:
            what += "; verwaltet die Kreisstraßen der Kreise " + ", ".join(ka.kreise)
        upsert(kind, None if kind == "autobahn" else rules.state_key, name, what, by_name_always=True)
        counts["agency"] += 1
    if ka is not None and ka.name not in served:
        what = "Verwaltung der Kreisstraßen im Auftrag der Kreise " + (", ".join(ka.kreise) or "(keine benannt)")
        upsert("other", None, ka.name, what, by_name_always=True)
        counts["agency"] += 1
    session.flush()
    return {**counts, **stats}
