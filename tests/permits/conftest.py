"""Fixtures of the permit tests: real routes from the Hessen OSM data, people in tenant "he" attached to the real
authority organisations, a controllable clock, and a small client that carries ETags and idempotency keys.

Routes are stretches of real roads (road_segments of the committed he_data), shifted a few metres sideways as a
trench in the verge runs, in EPSG:4326.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pytest
import shapely
import shapely.ops
from sqlalchemy import select, text

import breitband.clock
from breitband import identity
from breitband.models import Organisation, OrgKind, Role
from geo.crs import transformer
from geo.models import Authority
from permits import deadlines

PROBLEM = "application/problem+json"
NEU_ISENBURG = "06438009"
FRANKFURT = "06412000"
KREIS_OFFENBACH = "06438"

# (where, offset m, start m, length m) of real roads; see routes()
STRETCHES = {
    "a5": ("ref = 'A 5' AND highway = 'motorway'", 12, 100, 300),
    "l3262": ("ref = 'L 3262' AND ST_Within(geom, (SELECT geom FROM admin_areas WHERE tenant_key = 'he' "
              "AND ags = '06438009'))", 8, 50, 300),
    "k163": ("ref = 'K 163'", 8, 20, 300),
    "k823": ("ref = 'K 823'", 8, 0, 250),
    "neu_isenburg": ("name = 'Admiral-Rosendahl-Straße'", 6, 0, 200),
    "neu_isenburg_2": ("name = 'Buchenring'", 6, 0, 150),
    "forest": ("ref = 'A 3' AND highway = 'motorway'", 150, 100, 150),
}


def _road_line(conn, where: str):
    wkb = conn.execute(text("SELECT ST_AsBinary(ST_LineMerge(ST_Union(geom))) FROM road_segments "
                            f"WHERE tenant_key = 'he' AND {where}")).scalar()
    geom = shapely.from_wkb(bytes(wkb))
    if geom.geom_type == "MultiLineString":
        geom = max(geom.geoms, key=lambda g: g.length)
    return geom


def _to_4326(geom) -> dict[str, Any]:
    t = transformer(25832, 4326)
    geom = shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    return json.loads(shapely.to_geojson(shapely.set_precision(geom, 1e-7)))


@pytest.fixture(scope="session")
def lines(engine, he_data) -> dict[str, dict[str, Any]]:
    """GeoJSON LineStrings (EPSG:4326) along real roads of the Frankfurter Kreuz extract."""
    out = {}
    with engine.connect() as conn:
        for name, (where, offset, start, length) in STRETCHES.items():
            line = _road_line(conn, where)
            piece = shapely.ops.substring(line, start, min(start + length, line.length))
            out[name] = _to_4326(piece.offset_curve(offset))
    return out


def trench(geometry: dict[str, Any], method: str = "open_trench", **props: Any) -> dict[str, Any]:
    properties = {"laying_method": method, "depth_cm": 60, "width_cm": 40}
    if method in ("micro_trenching", "mini_trenching", "milling"):
        properties.update(depth_cm=30, width_cm=12, reduced_depth=True)
    properties.update(props)
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def draft_body(sections: dict[str, Any] | None, **overrides: Any) -> dict[str, Any]:
    body = {"project_name": "FTTH Neu-Isenburg Gravenbruch, Bauabschnitt 3", "operator_reference": "GRM-NI-0815",
            "contact": {"name": "Olaf Planer", "email": "olaf.planer@glasfaser-test.example", "phone": "+49 69 1234"},
            "sections": sections, "planned_start": "2026-06-01", "planned_end": "2026-07-31",
            "traffic_restrictions": [{"kind": "sidewalk_closure", "description": "Gehweg halbseitig gesperrt"}]}
    body.update(overrides)
    return body


@dataclass
class Person:
    user_id: uuid.UUID
    organisation_id: uuid.UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class He:
    operator: Person
    colleague: Person            # same operator organisation
    other_operator: Person
    admin: Person
    neu_isenburg: Person
    frankfurt: Person
    hessen_mobil: Person
    autobahn: Person
    kreis_offenbach: Person
    orgs: dict[str, uuid.UUID] = field(default_factory=dict)


def authority_org(session, *, key: str | None = None, name: str | None = None) -> Organisation:
    stmt = select(Organisation).join(Authority, Authority.organisation_id == Organisation.id).where(
        Authority.tenant_key == "he")
    stmt = stmt.where(Authority.key == key) if key else stmt.where(Organisation.name == name)
    return session.scalars(stmt).one()


def person(session, org: Organisation, email: str, role: Role) -> Person:
    user = identity.create_user(session, org, email, email.split("@")[0], role)
    _, secret = identity.create_token(session, user, "test")
    return Person(user.id, org.id, secret)


def build_he(session, prefix: str = "") -> He:
    operator = identity.create_organisation(session, "he", OrgKind.operator, f"{prefix}Glasfaser Test GmbH")
    other = identity.create_organisation(session, "he", OrgKind.operator, f"{prefix}Faser Konkurrenz AG")
    office = identity.create_organisation(session, "he", OrgKind.operating_office, f"{prefix}Servicestelle Test")
    ni = authority_org(session, key=NEU_ISENBURG)
    ffm = authority_org(session, key=FRANKFURT)
    mobil = authority_org(session, name="Hessen Mobil")
    autobahn = authority_org(session, name="Die Autobahn GmbH des Bundes")
    kreis = authority_org(session, key=KREIS_OFFENBACH)
    he = He(
        operator=person(session, operator, f"{prefix}planer@glasfaser-test.example", Role.operator_member),
        colleague=person(session, operator, f"{prefix}kollegin@glasfaser-test.example", Role.operator_member),
        other_operator=person(session, other, f"{prefix}planer@faser-konkurrenz.example", Role.operator_member),
        admin=person(session, office, f"{prefix}admin@servicestelle-test.example", Role.tenant_admin),
        neu_isenburg=person(session, ni, f"{prefix}tiefbau@neu-isenburg.example", Role.authority_reviewer),
        frankfurt=person(session, ffm, f"{prefix}asv@frankfurt.example", Role.authority_reviewer),
        hessen_mobil=person(session, mobil, f"{prefix}pruefer@hessen-mobil.example", Role.authority_admin),
        autobahn=person(session, autobahn, f"{prefix}pruefer@autobahn.example", Role.authority_reviewer),
        kreis_offenbach=person(session, kreis, f"{prefix}pruefer@kreis-offenbach.example", Role.authority_reviewer),
        orgs={"operator": operator.id, "other_operator": other.id, "neu_isenburg": ni.id, "frankfurt": ffm.id,
              "hessen_mobil": mobil.id, "autobahn": autobahn.id, "kreis_offenbach": kreis.id},
    )
    session.flush()
    return he


@pytest.fixture
def he(session, he_data) -> He:
    """People in tenant he, inside the test's rolled-back transaction; the Hessen catalogue loaded."""
    from breitband.settings import PROJECT_ROOT
    from permits.cases.catalogue import load_catalogue_file

    people = build_he(session)
    load_catalogue_file(session, "he", PROJECT_ROOT / "data" / "tenants" / "he_conditions.toml")
    session.commit()
    return people


class Clock:
    def __init__(self) -> None:
        self.now = deadlines.parse_instant("2026-01-15T10:00:00+01:00")

    def set(self, iso: str) -> datetime:
        self.now = deadlines.parse_instant(iso)
        return self.now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """The one clock (``breitband.clock.now``: the endpoints' ``Depends(clock.now)`` and whatever else asks for the
    time), set by the test and restored afterwards."""
    c = Clock()
    with breitband.clock.frozen(c):
        yield c


class Api:
    """Thin helpers over the HTTP API; every call returns the raw response."""

    def __init__(self, client) -> None:
        self.c = client

    def create(self, who: Person, body: dict[str, Any], key: str | None = None):
        headers = dict(who.headers)
        if key:
            headers["Idempotency-Key"] = key
        return self.c.post("/api/v1/applications", json=body, headers=headers)

    def get(self, who: Person, path: str, **params):
        return self.c.get(f"/api/v1{path}", headers=who.headers, params=params or None)

    def etag(self, who: Person, path: str) -> str:
        r = self.get(who, path)
        assert r.status_code == 200, r.text
        return r.headers["etag"]

    def command(self, who: Person, path: str, body: dict[str, Any] | None = None, *, etag: str | None = None,
                key: str | None = None, if_match: bool = True):
        headers = dict(who.headers)
        if if_match:
            resource = "/".join(path.split("/")[:3])       # /applications/{id} or /cases/{id}
            headers["If-Match"] = etag or self.etag(who, resource)
        if key:
            headers["Idempotency-Key"] = key
        return self.c.post(f"/api/v1{path}", json=body if body is not None else {}, headers=headers)

    def submitted(self, who: Person, sections: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        r = self.create(who, draft_body(sections, **overrides))
        assert r.status_code == 201, r.text
        r = self.command(who, f"/applications/{r.json()['id']}/submit", etag=r.headers["etag"])
        assert r.status_code == 200, r.text
        return r.json()

    def case_of(self, app: dict[str, Any], authority_name: str) -> str:
        return next(c["id"] for c in app["cases"] if c["authority"]["name"] == authority_name)


@pytest.fixture
def api(client) -> Api:
    return Api(client)
