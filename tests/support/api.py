"""Talking to the HTTP API in tests: request bodies of applications (a trench along a route, a draft) and a small
client that carries ETags and idempotency keys."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.people import Person

PROBLEM = "application/problem+json"


def trench(geometry: dict[str, Any], method: str = "open_trench", **props: Any) -> dict[str, Any]:
    """A section feature: ``geometry`` laid with ``method`` at the usual depth and width (shallower for the
    reduced-depth methods); ``props`` override the properties."""
    properties = {"laying_method": method, "depth_cm": 60, "width_cm": 40}
    if method in ("micro_trenching", "mini_trenching", "milling"):
        properties.update(depth_cm=30, width_cm=12, reduced_depth=True)
    properties.update(props)
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def draft_body(sections: dict[str, Any] | None, **overrides: Any) -> dict[str, Any]:
    """The body of POST /applications: a complete draft with these sections; ``overrides`` replace fields."""
    body = {"project_name": "FTTH Neu-Isenburg Gravenbruch, Bauabschnitt 3", "operator_reference": "GRM-NI-0815",
            "contact": {"name": "Olaf Planer", "email": "olaf.planer@glasfaser-test.example", "phone": "+49 69 1234"},
            "sections": sections, "planned_start": "2026-06-01", "planned_end": "2026-07-31",
            "traffic_restrictions": [{"kind": "sidewalk_closure", "description": "Gehweg halbseitig gesperrt"}]}
    body.update(overrides)
    return body


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
