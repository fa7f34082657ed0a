"""Fixtures of the notification tests with real workers: people in tenant "he" whose data is committed, and an HTTP
client on an app whose requests commit. The SMTP server, the webhook receiver, the worker and the permit fixtures
they use are shared (tests/support/).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from breitband import identity
from breitband.app import create_app
from breitband.db import Database
from breitband.models import OrgKind, Role
from notifications import contacts
from permits.participation import service as participation
from tests.support.api import draft_body
from tests.support.committed import delete_applications_of, kept_reference_counters
from tests.support.hessen import NEU_ISENBURG, authority_org
from tests.support.people import person


@dataclass
class CommittedWorld:
    """People in tenant "he" whose data is COMMITTED (workers use their own connections), and an HTTP client on an
    app whose requests commit. Everything is deleted again afterwards."""

    client: Any
    operator: Any
    admin: Any
    authority: Any                 # a reviewer of Stadt Neu-Isenburg
    body: Any                      # a reviewer of the traffic authority registered for Neu-Isenburg
    operator_org: Any
    body_org: Any
    contact_email: str
    authority_email: str
    body_email: str

    def submit(self, sections: dict, **overrides) -> dict:
        body = draft_body(sections, planned_start="2027-03-01", planned_end="2027-04-30",
                          contact={"name": "Rita Zuverlässig", "email": self.contact_email}, **overrides)
        r = self.client.post("/api/v1/applications", json=body, headers=self.operator.headers)
        assert r.status_code == 201, r.text
        r = self.client.post(f"/api/v1/applications/{r.json()['id']}/submit", json={},
                             headers={**self.operator.headers, "If-Match": r.headers["etag"]})
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def committed(engine, he_data, settings):
    with kept_reference_counters(engine):
        yield from _committed(engine, settings)


def _committed(engine, settings):
    tag = uuid.uuid4().hex[:8]
    with Session(bind=engine) as s:
        op = identity.create_organisation(s, "he", OrgKind.operator, f"Zuverlässig Netz {tag} GmbH")
        office = identity.create_organisation(s, "he", OrgKind.operating_office, f"Servicestelle {tag}")
        body_org = identity.create_organisation(s, "he", OrgKind.participating_body,
                                                f"Straßenverkehrsbehörde Neu-Isenburg {tag}")
        participation.add_body(s, "he", body_org, "traffic", "06438009", datetime.now(timezone.utc))
        ni = authority_org(s, key=NEU_ISENBURG)
        people = {name: person(s, org, f"{name}-{tag}@{domain}", role) for name, org, domain, role in (
            ("planer", op, "zuverlaessig-netz.example", Role.operator_member),
            ("admin", office, "servicestelle.example", Role.tenant_admin),
            ("tiefbau", ni, "neu-isenburg.example", Role.authority_reviewer),
            ("svb", body_org, "neu-isenburg.example", Role.authority_reviewer))}
        org_ids = [op.id, office.id, body_org.id]
        # the application's contact confirmed the address, so it gets the operator's notices (contacts.py)
        contacts.mark_confirmed(s, tenant_key="he", org_id=op.id, email=f"kontakt-{tag}@zuverlaessig-netz.example",
                                now=datetime.now(timezone.utc))
        s.commit()
    database = Database.from_settings(settings)
    app = create_app(settings, db=database)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield CommittedWorld(client=client, operator=people["planer"], admin=people["admin"],
                             authority=people["tiefbau"], body=people["svb"], operator_org=org_ids[0],
                             body_org=org_ids[2], contact_email=f"kontakt-{tag}@zuverlaessig-netz.example",
                             authority_email=f"tiefbau-{tag}@neu-isenburg.example",
                             body_email=f"svb-{tag}@neu-isenburg.example")
    database.dispose()
    delete_applications_of(engine, org_ids[:1])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE email LIKE :t"), {"t": f"%-{tag}@%"})
        conn.execute(text("DELETE FROM organisations WHERE id = ANY(:o)"), {"o": org_ids})
