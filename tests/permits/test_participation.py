"""Participation of other bodies: rules per tenant, protected areas imported from a GIS file, statement requests
created by the pipeline, answered by the bodies (scoped to their own requests), adopted into the decision."""

from __future__ import annotations

import json
import math
import uuid

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from sqlalchemy import select
from typer.testing import CliRunner

import breitband.clock
from breitband import identity
from breitband.models import OrgKind, Role
from geo.crs import transformer
from permits.participation import service as participation
from permits.participation.models import ProtectedArea
from permits.pipeline import service as pipeline
from tests.support.api import PROBLEM, collection, draft_body, trench
from tests.support.people import Person, person

STEPS = ["resolution", "checks", "participation", "notifications"]


def cli(*args: str) -> str:
    from breitband.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def buffer_area(line: dict, metres: float, offset: float = 0) -> dict:
    """A polygon around a real road stretch (EPSG:4326 GeoJSON), optionally moved sideways, in ETRS89/UTM 32N."""
    to_m, to_deg = transformer(4326, 25832), transformer(25832, 4326)
    g = shapely.geometry.shape(line)
    g = shapely.transform(g, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
    g = (g.offset_curve(offset) if offset else g).buffer(metres)
    g = shapely.transform(g, lambda xy: np.column_stack(to_deg.transform(xy[:, 0], xy[:, 1])))
    return json.loads(shapely.to_geojson(g))


class Bodies:
    def __init__(self, session):
        def body(name: str, role: str, ags: str | None, email: str) -> Person:
            org = identity.create_organisation(session, "he", OrgKind.participating_body, name)
            participation.add_body(session, "he", org, role, ags, breitband.clock.now())
            return person(session, org, email, Role.authority_reviewer)

        self.water = body("Untere Wasserbehörde Kreis Offenbach", "water", "06438", "uwb@kreis-offenbach.example")
        self.traffic_kreis = body("Straßenverkehrsbehörde Kreis Offenbach", "traffic", "06438",
                                  "svb@kreis-offenbach.example")
        self.traffic_ni = body("Straßenverkehrsbehörde Neu-Isenburg", "traffic", "06438009",
                               "svb@neu-isenburg.example")
        self.monument = body("Landesamt für Denkmalpflege Hessen", "monument", None, "lfd@denkmal.example")
        session.commit()


@pytest.fixture
def bodies(session, he) -> Bodies:
    return Bodies(session)


@pytest.fixture
def water_area(lines, tmp_path, task_db, bodies) -> str:
    """A test area (30 m around a stretch of the L 3262, derived from the OSM geometry) imported as water."""
    path = tmp_path / "wsg.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": buffer_area(lines["l3262"], 30),
        "properties": {"name": "Testgebiet L 3262", "schutzzone": "Zone III", "kennung": "TEST-1"}}]}))
    out = cli("import", "areas", "--tenant", "he", "--kind", "water", str(path), "--quiet")
    assert "areas" in out
    return str(path)


def run_pipeline(task_db, session, app_id: str, version: int = 1) -> list[str]:
    from permits.pipeline.tasks import pipeline_step

    run_id = pipeline.run_for(session, uuid.UUID(app_id), version).id
    return [pipeline_step.apply(args=[str(run_id), n]).state for n in STEPS]


def statements(client, who, **params):
    r = client.get("/api/v1/statements", headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_area_import_replaces_the_layer_and_reports_bad_files(session, water_area, tmp_path, task_db):
    [area] = session.scalars(select(ProtectedArea).where(ProtectedArea.tenant_key == "he",
                                                         ProtectedArea.kind == "water")).all()
    assert (area.name, area.designation, area.ref, area.body_org_id) == ("Testgebiet L 3262", "Zone III", "TEST-1",
                                                                          None)
    from breitband.cli import app

    bad = tmp_path / "points.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                                          "geometry": {"type": "Point",
                                                                                       "coordinates": [8.7, 50.0]}}]}))
    result = CliRunner().invoke(app, ["import", "areas", "--tenant", "he", "--kind", "water", str(bad), "-q"])
    assert result.exit_code != 0 and "contains no polygons" in str(result.exception)
    result = CliRunner().invoke(app, ["import", "areas", "--tenant", "he", "--kind", "lava", water_area, "-q"])
    assert result.exit_code != 0 and "one of water, nature, monument" in str(result.exception)
    assert len(session.scalars(select(ProtectedArea).where(ProtectedArea.kind == "water")).all()) == 1


def test_rules_route_water_and_traffic_bodies_and_bodies_answer(api, he, lines, clock, client, session, task_db,
                                                               bodies, water_area):
    cli("participation", "rules", "load", "--tenant", "he", "data/tenants/he_participation.toml")
    app = api.submitted(he.operator, collection(trench(lines["l3262"]), trench(lines["neu_isenburg"])))
    assert run_pipeline(task_db, session, app["id"]) == ["SUCCESS"] * 4

    plan = client.get(f"/api/v1/applications/{app['id']}/pipeline", headers=he.admin.headers).json()
    checks = {s["name"]: s for s in plan["runs"][0]["steps"]}["checks"]["result"]["participation"]
    assert checks["rules_source"] == "data/tenants/he_participation.toml"
    assert [(r["body_name"], r["role"], r["deadline_days"]) for r in checks["requests"]] == [
        ("Straßenverkehrsbehörde Neu-Isenburg", "traffic", 14), ("Untere Wasserbehörde Kreis Offenbach", "water", 28)]
    water_trigger = checks["requests"][1]["triggers"][0]
    assert water_trigger["area"]["name"] == "Testgebiet L 3262" and water_trigger["gemeinde"]["ags"] == "06438009"
    assert 280 <= water_trigger["length_m"] <= 301
    assert water_trigger["reason"].startswith("Die Trasse berührt das Wasserschutzgebiet Testgebiet L 3262 "
                                              "(Zone III) auf ")

    # each body sees exactly its own request; everyone else gets 404
    [w] = statements(client, bodies.water)
    [t] = statements(client, bodies.traffic_ni)
    assert (w["body"]["name"], w["status"], w["allowed_commands"]) == (
        "Untere Wasserbehörde Kreis Offenbach", "requested", ["answer"])
    assert statements(client, bodies.traffic_kreis) == []            # Neu-Isenburg's own authority is asked
    for stranger in (bodies.traffic_ni, bodies.monument, he.operator, he.frankfurt):
        r = client.get(f"/api/v1/statements/{w['id']}", headers=stranger.headers)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    assert statements(client, he.operator) == []
    assert len(statements(client, he.hessen_mobil)) == 2             # the deciding authorities see all
    assert len(statements(client, he.admin, application_id=app["id"])) == 2

    url = f"/api/v1/statements/{w['id']}/answer"
    answer = {"answer": "agree_with_conditions",
              "conditions": [{"code": "HE-N01"}, {"text": "Keine Lagerung wassergefährdender Stoffe in Zone III."}]}
    assert client.post(url, headers=bodies.water.headers, json=answer).status_code == 428      # If-Match
    r = client.post(url, headers={**bodies.water.headers, "If-Match": w["etag"]},
                    json={"answer": "object"})
    assert r.status_code == 422 and "an objection needs reasons" in r.json()["detail"]
    r = client.post(url, headers={**he.hessen_mobil.headers, "If-Match": w["etag"]}, json=answer)
    assert r.status_code == 403
    r = client.post(url, headers={**bodies.water.headers, "If-Match": w["etag"]}, json=answer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["answer"], body["answered_by"]) == ("answered", "agree_with_conditions",
                                                                     "uwb")
    assert body["conditions"][0]["code"] == "HE-N01" and body["conditions"][0]["title"]
    r = client.post(url, headers={**bodies.water.headers, "If-Match": body["etag"]}, json=answer)
    assert r.status_code == 409
    r = client.post(f"/api/v1/statements/{t['id']}/answer", headers={**bodies.traffic_ni.headers,
                                                                     "If-Match": t["etag"]},
                    json={"answer": "object", "reasons": "Vollsperrung in der Ferienzeit nicht möglich."})
    assert r.status_code == 200 and r.json()["answer"] == "object"

    # the deciding authority sees all statements and adopts the proposed conditions into its decision
    case = api.case_of(app, "Hessen Mobil")
    view = client.get(f"/api/v1/cases/{case}/statements", headers=he.hessen_mobil.headers).json()
    assert sorted((s["body"]["name"], s["answer"]) for s in view["statements"]) == [
        ("Straßenverkehrsbehörde Neu-Isenburg", "object"), ("Untere Wasserbehörde Kreis Offenbach",
                                                            "agree_with_conditions")]
    assert view["adoptable"]["conditions"] == ["HE-N01"]
    assert view["adoptable"]["additional_conditions"] == ["Keine Lagerung wassergefährdender Stoffe in Zone III."]
    assert client.get(f"/api/v1/cases/{case}/statements", headers=he.operator.headers).status_code == 404
    assert client.get(f"/api/v1/cases/{case}/statements", headers=he.neu_isenburg.headers).status_code == 404
    decision = {"outcome": "granted", "conditions": view["adoptable"]["conditions"] + ["HE-N02"],
                "additional_conditions": view["adoptable"]["additional_conditions"]}
    r = api.command(he.hessen_mobil, f"/cases/{case}/decision", decision)
    assert r.status_code == 200, r.text
    assert [c["code"] for c in r.json()["decision"]["conditions"]] == ["HE-N01", "HE-N02"]
    assert r.json()["decision"]["additional_conditions"] == view["adoptable"]["additional_conditions"]

    # the decision document names where each adopted condition came from
    from permits.documents import service as documents
    from permits.documents.models import DecisionDocument
    from permits.models import Case

    session.expire_all()
    doc_id = documents.ensure_for_case(session, session.get(Case, uuid.UUID(case)), breitband.clock.now())
    session.commit()
    context = documents.gather(session, session.get(DecisionDocument, doc_id))
    assert [(c["code"], c["source"]) for c in context["decision"]["conditions"]] == [
        ("HE-N01", "Untere Wasserbehörde Kreis Offenbach"), ("HE-N02", None)]
    assert [c["source"] for c in context["decision"]["additional_conditions"]] == [
        "Untere Wasserbehörde Kreis Offenbach"]
    assert [(s["body"], s["answer"]) for s in context["statements"]] == [
        ("Straßenverkehrsbehörde Neu-Isenburg", "object"), ("Untere Wasserbehörde Kreis Offenbach",
                                                            "agree_with_conditions")]


def test_route_change_supersedes_open_requests(api, he, lines, clock, client, session, task_db, bodies, water_area):
    app = api.submitted(he.operator, collection(trench(lines["l3262"])), traffic_restrictions=[])
    assert run_pipeline(task_db, session, app["id"]) == ["SUCCESS"] * 4
    [first] = statements(client, bodies.water)
    clock.set("2026-01-22T10:00:00+01:00")
    # a supplement without a route change asks nobody again
    r = api.command(he.operator, f"/applications/{app['id']}/supplements", {"message": "Querschnitt anbei"})
    assert r.status_code == 200, r.text
    assert run_pipeline(task_db, session, app["id"], 2) == ["SUCCESS"] * 4
    assert [s["id"] for s in statements(client, bodies.water)] == [first["id"]]
    # the open request shows the newest submitted version (same route, the supplement's information with it)
    detail = client.get(f"/api/v1/statements/{first['id']}", headers=bodies.water.headers).json()
    assert (detail["version"], detail["application"]["version"]) == (1, 2)
    # a changed route: the open request is superseded by one about the new route
    r = api.command(he.operator, f"/applications/{app['id']}/supplements",
                    {"message": "Trasse verlängert", "sections": collection(trench(lines["l3262"]),
                                                                            trench(lines["neu_isenburg"]))})
    assert r.status_code == 200, r.text
    assert run_pipeline(task_db, session, app["id"], 3) == ["SUCCESS"] * 4
    rows = {s["id"]: s for s in statements(client, bodies.water)}
    assert rows[first["id"]]["status"] == "superseded"
    [new] = [s for s in rows.values() if s["id"] != first["id"]]
    assert (new["status"], new["version"], rows[first["id"]]["superseded_by"]) == ("requested", 3, new["id"])
    # a superseded request keeps showing the version it was made for; the new one the new route
    detail = client.get(f"/api/v1/statements/{first['id']}", headers=bodies.water.headers).json()
    assert (detail["application"]["version"], len(detail["application"]["sections"]["features"])) == (1, 1)
    detail = client.get(f"/api/v1/statements/{new['id']}", headers=bodies.water.headers).json()
    assert (detail["application"]["version"], len(detail["application"]["sections"]["features"])) == (3, 2)
    r = client.post(f"/api/v1/statements/{first['id']}/answer",
                    headers={**bodies.water.headers, "If-Match": rows[first["id"]]["etag"]}, json={"answer": "agree"})
    assert r.status_code == 409 and "answer the newer request" in r.json()["detail"]


def test_monument_near_the_route_and_rules_validation(api, he, lines, clock, client, session, task_db, bodies,
                                                     tmp_path):
    # a monument 7-9 m beside the trench along the Admiral-Rosendahl-Straße: the trench does not enter it, but it
    # is within the 10 m of the rule
    path = tmp_path / "denkmal.geojson"
    area = buffer_area(lines["neu_isenburg"], 1, offset=8)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": area, "properties": {"name": "Testdenkmal", "heritage": "4"}}]}))
    cli("import", "areas", "--tenant", "he", "--kind", "monument", str(path), "-q",
        "--body", "Landesamt für Denkmalpflege Hessen")
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])), traffic_restrictions=[])
    assert run_pipeline(task_db, session, app["id"]) == ["SUCCESS"] * 4
    [m] = statements(client, bodies.monument)
    assert m["triggers"][0]["rule"] == "denkmalschutz" and m["triggers"][0]["area"]["designation"] == "4"
    assert m["triggers"][0]["length_m"] > 150            # the length of trench within 10 m of it
    # 20 m away it is not near any more
    area = buffer_area(lines["neu_isenburg"], 1, offset=20)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": area, "properties": {"name": "Testdenkmal", "heritage": "4"}}]}))
    cli("import", "areas", "--tenant", "he", "--kind", "monument", str(path), "-q")
    other = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])), traffic_restrictions=[])
    assert run_pipeline(task_db, session, other["id"]) == ["SUCCESS"] * 4
    assert statements(client, bodies.monument, application_id=other["id"]) == []

    bad = tmp_path / "rules.toml"
    bad.write_text('[[rules]]\nid = "x"\ntrigger = "area"\nrole = "water"\nreason = "r"\n')
    from breitband.cli import app as cli_app

    result = CliRunner().invoke(cli_app, ["participation", "rules", "load", "--tenant", "he", str(bad)])
    assert result.exit_code != 0 and "an area rule needs area_kind" in str(result.exception)
    shown = cli("participation", "bodies", "list", "--tenant", "he")
    assert '"Straßenverkehrsbehörde Neu-Isenburg"' in shown and '"ags": "06438009"' in shown


def test_body_sees_what_it_is_asked_about_and_nobody_else_does(api, he, lines, clock, client, session, task_db,
                                                                bodies):
    """A Straßenverkehrsbehörde asked about an application reads, with its request, the route (EPSG:4326), the
    sections, the planned dates, the traffic restrictions, the affected road authorities and the attachments, and
    downloads those; not the contact person, the representative or the power of attorney. Another body, an operator
    of another organisation and the application's own URLs stay 404 for what is not theirs."""
    from test_permits_attachments import PDF, PNG, upload

    cli("participation", "rules", "load", "--tenant", "he", "data/tenants/he_participation.toml")
    restriction = {"kind": "lane_closure", "description": "Fahrstreifen Richtung Gravenbruch gesperrt, Ampel",
                   "road": "Admiral-Rosendahl-Straße", "start": "2026-06-01", "end": "2026-06-20"}
    created = api.create(he.operator, draft_body(
        collection(trench(lines["neu_isenburg"], "micro_trenching", depth_cm=40, width_cm=12, reduced_depth=True)),
        traffic_restrictions=[restriction],
        representative={"name": "Planungsbüro Süd", "email": "info@pb-sued.example"}))
    assert created.status_code == 201, created.text
    app_id = created.json()["id"]
    plan = upload(api, he.operator, app_id, "Verkehrszeichenplan.pdf", PDF, kind="traffic_plan").json()
    poa = upload(api, he.operator, app_id, "Vollmacht.pdf", PDF, kind="power_of_attorney").json()
    draft_only = upload(api, he.operator, app_id, "Entwurf.png", PNG, kind="other").json()
    r = client.patch(f"/api/v1/applications/{app_id}", headers={**he.operator.headers,
                                                                "If-Match": created.headers["etag"]},
                     json={"attachment_ids": [plan["id"]],
                           "representative": {"name": "Planungsbüro Süd", "email": "info@pb-sued.example",
                                              "power_of_attorney_attachment_id": poa["id"]}})
    assert r.status_code == 200, r.text
    r = api.command(he.operator, f"/applications/{app_id}/submit", etag=r.headers["etag"])
    assert r.status_code == 200, r.text
    assert run_pipeline(task_db, session, app_id) == ["SUCCESS"] * 4

    [listed] = statements(client, bodies.traffic_ni)
    assert set(listed["application"]) == {"id", "reference", "project_name"}      # the list stays compact
    r = client.get(f"/api/v1/statements/{listed['id']}", headers=bodies.traffic_ni.headers)
    assert r.status_code == 200, r.text
    detail_etag = r.headers["etag"]
    subject = r.json()["application"]
    assert (subject["id"], subject["version"], subject["applicant"]["name"]) == (app_id, 1, "Glasfaser Test GmbH")
    assert (subject["planned_start"], subject["planned_end"]) == ("2026-06-01", "2026-07-31")
    assert subject["traffic_restrictions"] == [restriction]
    [section] = subject["sections"]["features"]
    assert section["geometry"]["type"] == "LineString"
    assert section["geometry"]["coordinates"][0] == pytest.approx(lines["neu_isenburg"]["coordinates"][0])
    assert (section["properties"]["laying_method"], section["properties"]["depth_cm"],
            section["properties"]["width_cm"], section["properties"]["reduced_depth"]) == (
        "micro_trenching", 40, 12, True)
    assert [a["name"] for a in subject["route"]["authorities"]] == ["Stadt Neu-Isenburg"]
    assert subject["route"]["authorities"][0]["length_m"] > 100
    # personal data of the applicant's staff and the power of attorney are not part of what the body is asked
    text = json.dumps(subject)
    for secret in ("Olaf Planer", "olaf.planer", "+49 69 1234", "Planungsbüro Süd", "Vollmacht.pdf"):
        assert secret not in text
    [att] = subject["attachments"]
    assert (att["file_name"], att["kind"]) == ("Verkehrszeichenplan.pdf", "traffic_plan")
    assert att["url"] == f"/api/v1/statements/{listed['id']}/attachments/{plan['id']}"
    got = client.get(att["url"], headers=bodies.traffic_ni.headers)
    assert (got.status_code, got.content, got.headers["content-type"]) == (200, PDF, "application/pdf")

    # only with its request: not the power of attorney, not a draft's attachment, not by the application's URLs
    for other_id in (poa["id"], draft_only["id"], str(uuid.uuid4())):
        r = client.get(f"/api/v1/statements/{listed['id']}/attachments/{other_id}", headers=bodies.traffic_ni.headers)
        assert (r.status_code, r.headers["content-type"]) == (404, PROBLEM)
    for path in (f"/api/v1/applications/{app_id}", f"/api/v1/applications/{app_id}/attachments/{plan['id']}",
                 f"/api/v1/applications/{app_id}/versions/1", f"/api/v1/applications/{app_id}/history"):
        assert client.get(path, headers=bodies.traffic_ni.headers).status_code == 404, path
    # another body, an operator of another organisation: 404 for the request and its attachment
    for stranger in (bodies.traffic_kreis, bodies.water, he.other_operator, he.operator):
        for path in (f"/api/v1/statements/{listed['id']}", att["url"]):
            r = client.get(path, headers=stranger.headers)
            assert (r.status_code, r.headers["content-type"]) == (404, PROBLEM), (path, r.text)
    # the deciding authority reads the request with the same detail; tenant admins too
    assert client.get(att["url"], headers=he.neu_isenburg.headers).content == PDF
    assert client.get(att["url"], headers=he.admin.headers).status_code == 200
    # bad input is problem+json, never 500
    for path in ("/api/v1/statements/not-a-uuid", f"/api/v1/statements/{listed['id']}/attachments/nope"):
        r = client.get(path, headers=bodies.traffic_ni.headers)
        assert (r.status_code, r.headers["content-type"]) == (422, PROBLEM), path

    # the answer's response carries the same detail
    r = client.post(f"/api/v1/statements/{listed['id']}/answer",
                    headers={**bodies.traffic_ni.headers, "If-Match": detail_etag},
                    json={"answer": "agree"})
    assert r.status_code == 200, r.text
    assert r.json()["application"]["traffic_restrictions"] == [restriction]

    # the vector tiles: the body sees the application it is asked about as its own; another body only greyed
    lon, lat = lines["neu_isenburg"]["coordinates"][len(lines["neu_isenburg"]["coordinates"]) // 2]
    z = 15
    x = int((lon + 180) / 360 * (1 << z))
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * (1 << z))

    def decode_features(resp) -> list[dict]:
        assert resp.status_code == 200, resp.text
        return mapbox_vector_tile.decode(resp.content)["applications"]["features"]

    mine = decode_features(client.get(f"/tiles/applications/{z}/{x}/{y}.mvt", headers=bodies.traffic_ni.headers))
    assert {(f["properties"]["own"], f["properties"].get("reference")) for f in mine} == {
        (True, subject["reference"])}
    theirs = decode_features(client.get(f"/tiles/applications/{z}/{x}/{y}.mvt", headers=bodies.water.headers))
    assert theirs and {(f["properties"]["own"], f["properties"].get("reference")) for f in theirs} == {(False, None)}
