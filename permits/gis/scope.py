"""Which applications a GIS reader sees as its own, for the map (``permits/gis/tiles.py``) and the OGC API
(``permits/gis/endpoints.py``) alike: one definition, built from the scopes of ``permits.repository``
(``readable_applications``) and ``permits.participation.statements`` (``readable_statements``), never a copy.

- an operator, an authority and a tenant admin: what they may read (``readable_applications``);
- a participating body: the applications it has a statement request for (it reads no application itself, only its
  requests, which carry what it is asked about).
"""

from __future__ import annotations

from sqlalchemy import Select, select

from breitband.identity import Principal
from breitband.models import OrgKind
from permits.models import Application
from permits.participation.models import StatementRequest
from permits.participation.statements import readable_statements
from permits.repository import readable_applications


def is_body(principal: Principal) -> bool:
    return principal.organisation_kind is OrgKind.participating_body and not principal.is_tenant_admin


def gis_applications(principal: Principal) -> Select[tuple[Application]]:
    """SELECT Application … of the applications the caller sees as its own on the map and in the OGC API."""
    if is_body(principal):
        asked = readable_statements(principal).with_only_columns(StatementRequest.application_id)
        return select(Application).where(Application.tenant_key == principal.tenant_key, Application.id.in_(asked))
    return readable_applications(principal)


def own_statement(principal: Principal):
    """LATERAL (id, status, due_on) of the body's newest statement request about ``Application``."""
    return (readable_statements(principal)
            .with_only_columns(StatementRequest.id, StatementRequest.status, StatementRequest.due_on)
            .where(StatementRequest.application_id == Application.id)
            .order_by(StatementRequest.requested_at.desc(), StatementRequest.id)
            .limit(1).lateral("my_request"))
