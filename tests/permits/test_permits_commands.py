"""Command mechanics and bad input: If-Match, Idempotency-Key, validation errors as problem+json."""

from __future__ import annotations

from breitband.models import Organisation
from tests.support.api import PROBLEM, collection, draft_body, trench

TYPE = "https://breitband.dev/problems/"


def test_if_match_is_required_and_stale_versions_are_refused(api, he, lines, clock):
    created = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg"]))))
    app_id, etag = created.json()["id"], created.headers["etag"]
    assert api.get(he.operator, f"/applications/{app_id}").headers["etag"] == etag

    r = api.c.patch(f"/api/v1/applications/{app_id}", json={"project_name": "A"}, headers=he.operator.headers)
    assert (r.status_code, r.headers["content-type"], r.json()["type"]) == (428, PROBLEM, TYPE + "if-match-required")

    r = api.c.patch(f"/api/v1/applications/{app_id}", json={"project_name": "A"},
                    headers={**he.operator.headers, "If-Match": etag})
    assert r.status_code == 200
    new_etag = r.headers["etag"]
    assert new_etag != etag and r.json()["content"]["project_name"] == "A"

    # the colleague still holds the old ETag: 412, and nothing changes
    r = api.c.patch(f"/api/v1/applications/{app_id}", json={"project_name": "B"},
                    headers={**he.colleague.headers, "If-Match": etag})
    assert (r.status_code, r.json()["type"], r.json()["current_etag"]) == (412, TYPE + "stale-version", new_etag)
    assert api.get(he.operator, f"/applications/{app_id}").json()["content"]["project_name"] == "A"
    r = api.command(he.colleague, f"/applications/{app_id}/submit", etag=etag)
    assert r.status_code == 412
    r = api.command(he.colleague, f"/applications/{app_id}/submit", etag="W/\"1\"")
    assert (r.status_code, r.json()["type"]) == (412, TYPE + "stale-version")
    r = api.command(he.colleague, f"/applications/{app_id}/submit", if_match=False)
    assert r.status_code == 428
    r = api.command(he.colleague, f"/applications/{app_id}/submit", etag=f'"999", {new_etag}')
    assert r.status_code == 200

    # cases carry their own ETag
    case_id = r.json()["cases"][0]["id"]
    case_etag = api.etag(he.neu_isenburg, f"/cases/{case_id}")
    assert api.command(he.neu_isenburg, f"/cases/{case_id}/confirm-complete", {}, etag=case_etag).status_code == 200
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/decision", {"outcome": "granted"}, etag=case_etag)
    assert (r.status_code, r.json()["current_etag"]) == (412, api.etag(he.neu_isenburg, f"/cases/{case_id}"))


def test_idempotency_key_replays_the_stored_response(api, he, lines, clock):
    body = draft_body(collection(trench(lines["neu_isenburg"])))
    first = api.create(he.operator, body, key="create-ni-1")
    again = api.create(he.operator, body, key="create-ni-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert (again.headers["etag"], again.headers["location"]) == (first.headers["etag"], first.headers["location"])
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    listed = api.get(he.operator, "/applications").json()["items"]
    assert [a["id"] for a in listed] == [first.json()["id"]]

    # the same key with another body: 422, nothing created
    other = api.create(he.operator, {**body, "project_name": "Anderes Projekt"}, key="create-ni-1")
    assert (other.status_code, other.headers["content-type"], other.json()["type"]) == (
        422, PROBLEM, TYPE + "idempotency-key-reused")
    assert other.json()["original"] == {"method": "POST", "path": "/api/v1/applications"}
    # keys are scoped per user: the colleague's identical key is a new request
    colleague = api.create(he.colleague, body, key="create-ni-1")
    assert colleague.status_code == 201 and colleague.json()["id"] != first.json()["id"]
    assert len(api.get(he.operator, "/applications").json()["items"]) == 2

    # commands: the replay returns the first outcome even though repeating it would now be a 409
    app_id = first.json()["id"]
    etag = first.headers["etag"]
    r1 = api.command(he.operator, f"/applications/{app_id}/submit", etag=etag, key="submit-1")
    r2 = api.command(he.operator, f"/applications/{app_id}/submit", etag=etag, key="submit-1")
    assert (r1.status_code, r2.status_code, r2.json()) == (200, 200, r1.json())
    assert api.command(he.operator, f"/applications/{app_id}/submit", key="submit-2").status_code == 409
    # the same key on another endpoint is another request
    r = api.command(he.operator, f"/applications/{app_id}/withdraw", {}, key="submit-1")
    assert (r.status_code, r.json()["type"]) == (422, TYPE + "idempotency-key-reused")
    case_id = r1.json()["cases"][0]["id"]
    decision = {"outcome": "granted", "conditions": ["HE-N01"]}
    d1 = api.command(he.neu_isenburg, f"/cases/{case_id}/decision", decision, key="d-1")
    d2 = api.command(he.neu_isenburg, f"/cases/{case_id}/decision", decision, key="d-1")
    assert (d1.status_code, d2.status_code, d2.json()) == (200, 200, d1.json())
    history = api.get(he.operator, f"/applications/{app_id}/history").json()
    assert [h["command"] for h in history] == ["create", "submit", "decision"]

    r = api.create(he.operator, body, key="k" * 256)
    assert (r.status_code, r.json()["type"]) == (422, TYPE + "invalid-idempotency-key")


def test_section_attributes_are_checked_with_their_place(api, he, lines, clock):
    sections = collection(
        trench(lines["neu_isenburg"], "micro_trenching", reduced_depth=None),
        trench(lines["k823"], "laser_cutting"),
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [8.6, 50.0]}, "properties": {}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [8.6, 50.0]},
         "properties": {"kind": "construction_area"}},
        trench(lines["k163"], "open_trench", depth_cm=-5, width_cm=None))
    r = api.create(he.operator, draft_body(sections))
    assert (r.status_code, r.headers["content-type"], r.json()["type"]) == (422, PROBLEM, TYPE + "invalid-sections")
    assert [(e["field"], e["message"]) for e in r.json()["errors"]] == [
        ("sections.features[0].properties.reduced_depth",
         "micro_trenching needs an express statement whether the line is laid at reduced depth (§ 127 (7) TKG): "
         "true or false"),
        ("sections.features[1].properties.laying_method",
         "unknown laying method 'laser_cutting'; one of open_trench, micro_trenching, mini_trenching, "
         "directional_drilling, press_drilling, ploughing, milling, aerial, existing_duct"),
        ("sections.features[2].properties.kind",
         "points and areas need a kind: pit, cabinet, manhole, house_connection or construction_area"),
        ("sections.features[3].geometry", "a construction_area cannot be a Point"),
        ("sections.features[4].properties.depth_cm", "must be between 1 and 1000 cm"),
        ("sections.features[4].properties.width_cm", "required for open_trench")]
    # reduced depth stated as false is fine; aerial lines need no depth
    ok = collection(trench(lines["neu_isenburg"], "milling", reduced_depth=False),
                    trench(lines["k823"], "aerial", depth_cm=None, width_cm=None))
    r = api.create(he.operator, draft_body(ok))
    assert r.status_code == 201, r.text
    assert [f["properties"]["reduced_depth"] for f in r.json()["content"]["sections"]["features"]] == [False, False]


def test_submit_needs_a_complete_application_and_a_public_road(api, he, lines, clock):
    r = api.create(he.operator, {"project_name": "Nur ein Name",
                                 "representative": {"name": "Planungsbüro Süd", "email": "info@pb-sued.example"}})
    assert r.status_code == 201
    r = api.command(he.operator, f"/applications/{r.json()['id']}/submit", etag=r.headers["etag"])
    assert (r.status_code, r.json()["type"]) == (422, TYPE + "application-incomplete")
    assert [e["field"] for e in r.json()["errors"]] == [
        "contact", "sections", "planned_start", "planned_end", "representative.power_of_attorney_attachment_id"]

    clock.set("2026-07-01T10:00:00+02:00")
    r = api.create(he.operator, draft_body(collection(trench(lines["forest"]))))
    r = api.command(he.operator, f"/applications/{r.json()['id']}/submit", etag=r.headers["etag"])
    assert (r.status_code, r.json()["type"], r.json()["errors"]) == (
        422, TYPE + "application-incomplete", [{"field": "planned_start", "message": "lies in the past"}])

    clock.set("2026-01-15T10:00:00+01:00")
    created = api.create(he.operator, draft_body(collection(trench(lines["forest"]))))
    r = api.command(he.operator, f"/applications/{created.json()['id']}/submit", etag=created.headers["etag"])
    assert (r.status_code, r.json()["type"], r.json()["field"]) == (422, TYPE + "no-public-road", "sections")
    assert r.json()["outside_public_roads_m"] > 140
    assert api.get(he.operator, f"/applications/{created.json()['id']}").json()["status"] == "draft"

    # geometry errors come from the resolution, with their place
    bad = collection(trench({"type": "LineString", "coordinates": [[8.6, 50.0], [8.6, 50.0]]}))
    created = api.create(he.operator, draft_body(bad))
    r = api.command(he.operator, f"/applications/{created.json()['id']}/submit", etag=created.headers["etag"])
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["feature_index"] == 0


def test_bad_input_is_problem_json_never_500(api, he, lines, clock):
    h = he.operator.headers
    r = api.c.post("/api/v1/applications", content=b"{not json", headers={**h, "content-type": "application/json"})
    assert (r.status_code, r.headers["content-type"]) == (422, PROBLEM)
    r = api.c.post("/api/v1/applications", json={"project_name": "x", "colour": "blau"}, headers=h)
    assert (r.status_code, [e["field"] for e in r.json()["errors"]]) == (422, ["body.colour"])
    r = api.c.post("/api/v1/applications", json={"planned_start": "2026-06-01", "planned_end": "2026-05-01"},
                   headers=h)
    assert (r.status_code, r.json()["errors"]) == (422, [{"field": "planned_end",
                                                         "message": "lies before planned_start"}])
    r = api.c.post("/api/v1/applications", json={"crs": "EPSG:999999"}, headers=h)
    assert (r.status_code, r.json()["type"]) == (422, TYPE + "unknown-crs")
    r = api.c.post("/api/v1/applications", json={"attachment_ids": ["00000000-0000-0000-0000-000000000001"]},
                   headers=h)
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "attachment_ids[0]")
    r = api.c.post("/api/v1/applications", json={"contact": {"name": "Ohne Erreichbarkeit"}}, headers=h)
    assert r.status_code == 422
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    case_id = app["cases"][0]["id"]
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/decision", {"outcome": "refused"})
    assert (r.status_code, r.json()["type"], [e["field"] for e in r.json()["errors"]]) == (
        422, TYPE + "invalid-decision", ["reasons", "explanation"])
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/decision",
                    {"outcome": "granted", "conditions": ["HE-N01", "HE-X99"]})
    assert (r.status_code, r.json()["errors"]) == (422, [
        {"field": "conditions[1]", "message": "unknown or inactive condition code 'HE-X99'"}])
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/decision",
                    {"outcome": "granted", "reasons": ["HE-V01"]})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "reasons")
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/decision", {"outcome": "maybe"})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "body.outcome")
    r = api.get(he.neu_isenburg, "/cases", bbox="8.6,50.0")
    assert (r.status_code, r.json()["field"]) == (422, "bbox")
    r = api.get(he.neu_isenburg, "/cases", status="lost")
    assert r.status_code == 422
    assert api.get(he.neu_isenburg, f"/cases/{case_id}").json()["status"] == "received"


def test_malformed_sections_never_cause_a_500(api, he, clock):
    line = {"type": "LineString", "coordinates": [[8.66, 50.03], [8.67, 50.03]]}
    odd_features = [
        "x", None, [], {"type": "Feature"}, {"type": "Feature", "geometry": None},
        {"type": "Feature", "geometry": {"type": "LineString"}},
        {"type": "Feature", "geometry": {"type": "GeometryCollection", "geometries": []}},
        {"type": "Feature", "geometry": line, "properties": []},
        {"type": "Feature", "geometry": line, "properties": {"kind": [1]}},
        {"type": "Feature", "geometry": line, "properties": {"laying_method": {"a": 1}}},
        {"type": "Feature", "geometry": line, "properties": {"laying_method": "open_trench", "depth_cm": "60",
                                                             "width_cm": True}},
        {"type": "Feature", "geometry": line, "properties": {"laying_method": "milling", "reduced_depth": "yes",
                                                             "depth_cm": 30, "width_cm": 10, "label": 5}},
    ]
    for feature in odd_features:
        r = api.create(he.operator, draft_body({"type": "FeatureCollection", "features": [feature]}))
        assert (r.status_code, r.headers["content-type"]) == (422, PROBLEM), (feature, r.text)
        assert r.json()["errors"][0]["field"].startswith("sections"), feature
    for sections in ("x", [], {"type": "FeatureCollection", "features": "x"}, {"type": "Polygon"}):
        r = api.create(he.operator, draft_body(sections))
        assert r.status_code == 422, sections
    # coordinates that only the resolution can judge: accepted in a draft, refused with a place at submit
    weird = {"type": "FeatureCollection", "features": [
        trench({"type": "LineString", "coordinates": [["a", "b"], [8.67, 50.03]]})]}
    created = api.create(he.operator, draft_body(weird))
    assert created.status_code == 201
    r = api.command(he.operator, f"/applications/{created.json()['id']}/submit", etag=created.headers["etag"])
    assert (r.status_code, r.headers["content-type"]) == (422, PROBLEM)


def test_a_draft_route_is_kept_for_the_map_once_its_geometry_is_usable(api, he, lines, session, clock):
    from sqlalchemy import text

    def stored(app_id):
        return session.execute(text("SELECT ST_AsText(ST_Envelope(route_geom)) FROM applications WHERE id = :id"),
                               {"id": app_id}).scalar()

    created = api.create(he.operator, draft_body(None))
    app_id = created.json()["id"]
    assert stored(app_id) is None
    weird = collection(trench({"type": "LineString", "coordinates": [[1e9, 50.0], [8.67, 50.03]]}))
    r = api.c.patch(f"/api/v1/applications/{app_id}", json={"sections": weird},
                    headers={**he.operator.headers, "If-Match": created.headers["etag"]})
    assert r.status_code == 200 and stored(app_id) is None
    r = api.c.patch(f"/api/v1/applications/{app_id}", json={"sections": collection(trench(lines["neu_isenburg"]))},
                    headers={**he.operator.headers, "If-Match": r.headers["etag"]})
    xs = [c[0] for c in lines["neu_isenburg"]["coordinates"]]
    assert stored(app_id).startswith("POLYGON((") and f"{min(xs)}" in stored(app_id)


def test_submit_through_a_road_without_authority_on_file_is_422_and_keeps_the_draft(api, he, lines, session, clock):
    """A road whose authority is missing from the directory (agency renamed in the rules, boundaries not re-imported,
    gemeindefreies Gebiet) cannot get a case: 422 naming the authority, the draft unchanged, never a 500."""
    autobahn = session.get(Organisation, he.orgs["autobahn"])
    name = autobahn.name
    autobahn.name = name + " (alt)"
    session.commit()
    try:
        created = api.create(he.operator, draft_body(collection(trench(lines["a5"]))))
        r = api.command(he.operator, f"/applications/{created.json()['id']}/submit", etag=created.headers["etag"])
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        body = r.json()
        assert (body["type"], body["field"]) == (TYPE + "authority-missing", "sections")
        assert [(a["name"], a["kind"]) for a in body["authorities"]] == [(name, "autobahn")]
        assert name in body["detail"]
        after = api.get(he.operator, f"/applications/{created.json()['id']}")
        assert (after.json()["status"], after.headers["etag"]) == ("draft", created.headers["etag"])
    finally:
        autobahn.name = name
        session.commit()
