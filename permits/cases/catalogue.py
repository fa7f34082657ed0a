"""The per-tenant catalogue of standard conditions (Nebenbestimmungen) and refusal reason codes.

Loaded from a TOML file (``data/tenants/he_conditions.toml`` is the Hessen set) by
``breitband conditions load --tenant KEY FILE`` and by the demo loader. Loading is an upsert: entries in the file
are created or updated, entries of the tenant missing from the file are deactivated (never deleted: decisions
refer to them by code and also keep a copy of code, title and text).
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from breitband import clock, identity
from breitband.errors import UnprocessableEntity
from permits.models import CatalogueEntry, CatalogueKind

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")
SECTIONS = {"conditions": CatalogueKind.condition, "refusal_reasons": CatalogueKind.refusal_reason,
            # the traffic order's own catalogue (verkehrsrechtliche Anordnung, § 45 StVO; issue 15 part 2)
            "traffic_order_conditions": CatalogueKind.order_condition,
            "traffic_order_reasons": CatalogueKind.order_reason}


def parse_catalogue(data: dict[str, Any], source: str = "catalogue") -> list[dict[str, Any]]:
    """Validate the TOML structure; → rows. Every problem is reported with its place in the file."""
    errors: list[dict[str, str]] = []
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        errors.append({"field": ", ".join(unknown), "message": "unknown table; expected [[conditions]], "
                       "[[refusal_reasons]], [[traffic_order_conditions]] and [[traffic_order_reasons]]"})
    rows: list[dict[str, Any]] = []
    for section, kind in SECTIONS.items():
        entries = data.get(section, [])
        if not isinstance(entries, list):
            errors.append({"field": section, "message": f"must be an array of tables ([[{section}]])"})
            continue
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            where = f"{section}[{i}]"
            if not isinstance(entry, dict):
                errors.append({"field": where, "message": "must be a table"})
                continue
            extra = sorted(set(entry) - {"code", "title", "text", "category"})
            if extra:
                errors.append({"field": where, "message": f"unknown keys {', '.join(extra)}"})
            code = entry.get("code")
            if not isinstance(code, str) or not CODE_RE.match(code):
                errors.append({"field": f"{where}.code", "message": "a code of 1-32 upper-case letters, digits, "
                                                                    "'.', '_' or '-' is required"})
                continue
            if code in seen:
                errors.append({"field": f"{where}.code", "message": f"duplicate code {code}"})
            seen.add(code)
            for key in ("title", "text"):
                if not isinstance(entry.get(key), str) or not entry[key].strip():
                    errors.append({"field": f"{where}.{key}", "message": f"a non-empty {key} is required"})
            if len(str(entry.get("title", ""))) > 300:
                errors.append({"field": f"{where}.title", "message": "at most 300 characters"})
            rows.append({"kind": kind.value, "code": code, "title": str(entry.get("title", "")).strip(),
                         "text": " ".join(str(entry.get("text", "")).split()),
                         "category": entry.get("category"), "position": i})
    if errors:
        raise UnprocessableEntity(f"{source}: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                                  type="invalid-catalogue", errors=errors)
    return rows


def read_catalogue_file(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UnprocessableEntity(f"catalogue file {path} does not exist", type="invalid-catalogue") from None
    except tomllib.TOMLDecodeError as exc:
        raise UnprocessableEntity(f"catalogue file {path} is not valid TOML: {exc}", type="invalid-catalogue") from None
    return parse_catalogue(data, str(path))


def load_catalogue(session: Session, tenant_key: str, rows: list[dict[str, Any]],
                   now: datetime | None = None) -> dict[str, int]:
    """Upsert the rows for a tenant; deactivate the tenant's entries that are not in ``rows``."""
    identity.get_tenant(session, tenant_key)
    now = now or clock.now()
    for row in rows:
        stmt = insert(CatalogueEntry).values(tenant_key=tenant_key, active=True, updated_at=now, **row)
        session.execute(stmt.on_conflict_do_update(
            index_elements=[CatalogueEntry.tenant_key, CatalogueEntry.kind, CatalogueEntry.code],
            set_={"title": stmt.excluded.title, "text": stmt.excluded.text, "category": stmt.excluded.category,
                  "position": stmt.excluded.position, "active": True, "updated_at": now}))
    summary = {section: 0 for section in SECTIONS} | {"deactivated": 0}
    for section, kind in SECTIONS.items():
        codes = [r["code"] for r in rows if r["kind"] == kind.value]
        summary[section] = len(codes)
        result = session.execute(
            update(CatalogueEntry)
            .where(CatalogueEntry.tenant_key == tenant_key, CatalogueEntry.kind == kind.value,
                   CatalogueEntry.active.is_(True), CatalogueEntry.code.not_in(codes))
            .values(active=False, updated_at=now))
        summary["deactivated"] += result.rowcount or 0
    session.flush()
    return summary


def load_catalogue_file(session: Session, tenant_key: str, path: Path) -> dict[str, int]:
    return load_catalogue(session, tenant_key, read_catalogue_file(path))


def entries(session: Session, tenant_key: str, kind: CatalogueKind, *, include_inactive: bool = False
            ) -> list[CatalogueEntry]:
    stmt = select(CatalogueEntry).where(CatalogueEntry.tenant_key == tenant_key, CatalogueEntry.kind == kind.value)
    if not include_inactive:
        stmt = stmt.where(CatalogueEntry.active.is_(True))
    return list(session.scalars(stmt.order_by(CatalogueEntry.position, CatalogueEntry.code)))


def resolve_codes(session: Session, tenant_key: str, kind: CatalogueKind, codes: list[str], field: str
                  ) -> list[dict[str, str]]:
    """Active entries for the codes, in the order given; unknown or inactive codes → 422 naming them."""
    if not codes:
        return []
    found = {e.code: e for e in session.scalars(select(CatalogueEntry).where(
        CatalogueEntry.tenant_key == tenant_key, CatalogueEntry.kind == kind.value, CatalogueEntry.code.in_(codes),
        CatalogueEntry.active.is_(True)))}
    errors = [{"field": f"{field}[{i}]", "message": f"unknown or inactive {kind.value.replace('_', ' ')} code "
                                                    f"{code!r}"} for i, code in enumerate(codes) if code not in found]
    if errors:
        raise UnprocessableEntity("; ".join(f"{e['field']}: {e['message']}" for e in errors),
                                  type="unknown-catalogue-code", errors=errors)
    dupes = sorted({c for c in codes if codes.count(c) > 1})
    if dupes:
        raise UnprocessableEntity(f"{field}: codes given twice: {', '.join(dupes)}", type="validation-error",
                                  errors=[{"field": field, "message": f"duplicate codes {', '.join(dupes)}"}])
    return [{"code": found[c].code, "title": found[c].title, "text": found[c].text} for c in codes]
