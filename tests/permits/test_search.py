"""GET /api/v1/search: every kind of query on the real Hessen data (VG250 boundaries, OSM roads of the Frankfurter
Kreuz and the Darmstadt–Frankfurt corridor), bad input as problem+json, and references only through the caller's
scope. The browser side: tests/web/test_map_search.py."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from geo.search import parse_coordinates, rebuild_places
from tests.support.api import collection, draft_body, trench

NEU_ISENBURG_BBOX = [8.590944, 50.01625, 8.76232, 50.062505]
L3262_BBOX = [8.592601, 50.029824, 8.624487, 50.035331]


def search(client, who, q, **params):
    return client.get("/api/v1/search", params={"q": q, **params}, headers=who.headers)


def results(client, who, q, **params):
    r = search(client, who, q, **params)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_gemeinde(client, he):
    first = results(client, he.operator, "Neu-Isenburg")[0]
    assert first == {"kind": "gemeinde", "label": "Neu-Isenburg", "context": "Landkreis Offenbach",
                     "bbox": NEU_ISENBURG_BBOX, "score": 1.0, "ags": "06438009"}
    # a typing error and a missing hyphen still find it, first
    assert results(client, he.operator, "Neu-Isenberg")[0]["ags"] == "06438009"
    assert results(client, he.operator, "neu isenburg")[0]["ags"] == "06438009"
    # a kreisfreie Stadt, and its Kreis after it
    found = [(r["kind"], r["label"], r["context"]) for r in results(client, he.operator, "Darmstadt")[:2]]
    assert found == [("gemeinde", "Darmstadt", "Kreisfreie Stadt"), ("kreis", "Darmstadt", "Kreisfreie Stadt")]


def test_street_with_its_gemeinde(client, he):
    assert results(client, he.operator, "Admiral-Rosendahl")[0] == {
        "kind": "street", "label": "Admiral-Rosendahl-Straße", "context": "Neu-Isenburg",
        "bbox": [8.605842, 50.036071, 8.609266, 50.038699], "score": 1.0}
    # the street with its Gemeinde, abbreviated
    first = results(client, he.operator, "Admiral-Rosendahl-Str Neu-Isenburg")[0]
    assert (first["label"], first["context"]) == ("Admiral-Rosendahl-Straße", "Neu-Isenburg")
    first = results(client, he.operator, "Bahnhofspl Darmstadt")[0]
    assert (first["kind"], first["label"], first["context"]) == ("street", "Bahnhofsplatz", "Darmstadt")


@pytest.mark.parametrize("q", ["L 3262", "l3262", "L3262", "  L   3262 "])
def test_road_number(client, he, q):
    assert results(client, he.operator, q) == [{"kind": "road", "label": "L 3262", "bbox": L3262_BBOX,
                                               "score": 1.0, "road_class": "land"}]


def test_road_numbers_of_each_class(client, he):
    # a Kreisstraße with its Kreis (Kreisstraßen are numbered per Kreis in many states)
    assert [(r["label"], r["road_class"], r["context"]) for r in results(client, he.operator, "K 163")[:1]] == [
        ("K 163", "kreis", "Landkreis Offenbach")]
    assert [(r["label"], r["road_class"]) for r in results(client, he.operator, "A 5")[:1]] == [("A 5", "autobahn")]
    # a number alone finds the road
    assert results(client, he.operator, "3262")[0]["label"] == "L 3262"


def test_coordinates_lon_lat(client, he):
    expected = {"kind": "coordinates", "label": "8.69850, 50.05340", "context": "Neu-Isenburg",
                "bbox": [8.6965, 50.0521, 8.7005, 50.0547], "score": 1.0, "point": [8.6985, 50.0534],
                "crs": "EPSG:4326"}
    assert results(client, he.operator, "8.6985, 50.0534") == [expected]
    assert results(client, he.operator, "8.6985 50.0534") == [expected]
    assert results(client, he.operator, "50.0534, 8.6985") == [expected]        # latitude first
    assert results(client, he.operator, "8,6985 50,0534") == [expected]         # decimal commas
    assert results(client, he.operator, "8.6985;50.0534") == [expected]


def test_coordinates_utm32(client, he):
    expected = {"kind": "coordinates", "label": "E 478123, N 5545123", "context": "Neu-Isenburg",
                "bbox": [8.692373, 50.056689, 8.696373, 50.059289], "score": 1.0,
                "point": [8.694373, 50.057989], "crs": "EPSG:25832"}
    assert results(client, he.operator, "478123 5545123") == [expected]
    assert results(client, he.operator, "478123, 5545123") == [expected]
    assert results(client, he.operator, "5545123 478123") == [expected]          # northing first
    assert results(client, he.operator, "32478123 5545123") == [expected]        # zone prefix


def test_coordinates_outside_the_gemeinden(client, he):
    # Munich: valid coordinates, no Gemeinde of Hessen
    found = results(client, he.operator, "11.5755, 48.1372")
    assert [(r["kind"], r.get("context"), r["point"]) for r in found] == [("coordinates", None, [11.5755, 48.1372])]


@pytest.mark.parametrize(("q", "type_", "words"), [
    ("", "search-query-empty", "empty"),
    ("   ", "search-query-empty", "empty"),
    ("x" * 101, "search-query-too-long", "101 characters"),
    ("a\x01b", "search-query-invalid", "control characters"),
    ("8.6 50.0 3", "invalid-coordinates", "3 numbers instead of two"),
    ("8.68, 95", "invalid-coordinates", "outside Germany"),
    ("1234 5678", "invalid-coordinates", "neither degrees nor easting"),
    ("8.6.1 50", "invalid-coordinates", "'8.6.1' is not a number"),
    ("478123 9545123", "invalid-coordinates", "neither degrees nor easting"),
])
def test_bad_input(client, he, q, type_, words):
    r = search(client, he.operator, q)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == f"https://breitband.dev/problems/{type_}"
    assert body["field"] == "q"
    assert words in body["detail"]


def test_missing_query_and_bad_limit(client, he):
    r = client.get("/api/v1/search", headers=he.operator.headers)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == "query.q"
    r = search(client, he.operator, "Langen", limit=0)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.limit"
    assert len(results(client, he.operator, "Darmstadt")) == 3
    assert len(results(client, he.operator, "Darmstadt", limit=2)) == 2


def test_needs_a_token(client, he):
    r = client.get("/api/v1/search", params={"q": "Langen"})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


def test_other_tenant_finds_none_of_hessen(client, other_world):
    headers = {"Authorization": f"Bearer {other_world.operator_member.token}"}
    r = client.get("/api/v1/search", params={"q": "Neu-Isenburg"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["results"] == []


def test_references_only_for_those_who_may_read_them(client, he, api, lines, clock):
    clock.set("2026-02-02T09:00:00+01:00")
    route = collection(trench(lines["neu_isenburg"]))
    r = api.create(he.operator, draft_body(route, operator_reference="GRM-NI-4711"))
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    r = api.command(he.operator, f"/applications/{app_id}/submit", etag=r.headers["etag"])
    assert r.status_code == 200, r.text
    reference = r.json()["reference"]
    case_id = r.json()["cases"][0]["id"]
    bbox = results(client, he.operator, reference)[0]["bbox"]
    xs = [c[0] for c in lines["neu_isenburg"]["coordinates"]]
    ys = [c[1] for c in lines["neu_isenburg"]["coordinates"]]
    # the stored route: the line as submitted (within the 1e-6 of rounding)
    assert bbox == pytest.approx([min(xs), min(ys), max(xs), max(ys)], abs=2e-6)

    # the applicant finds its application, by the reference, a part of it, and its own reference
    first = results(client, he.operator, reference)[0]
    assert {k: first[k] for k in ("kind", "id", "label", "context", "status", "score")} == {
        "kind": "application", "id": app_id, "label": reference,
        "context": "FTTH Neu-Isenburg Gravenbruch, Bauabschnitt 3", "status": "submitted", "score": 1.0}
    assert [r["id"] for r in results(client, he.operator, reference[-6:]) if r["kind"] == "application"] == [app_id]
    assert results(client, he.operator, "GRM-NI-4711")[0]["id"] == app_id
    # the authority with the case finds its case; the tenant admin the application
    first = results(client, he.neu_isenburg, reference)[0]
    assert (first["kind"], first["id"], first["label"]) == ("case", case_id, reference)
    assert results(client, he.admin, reference)[0]["id"] == app_id
    # another operator, an authority without a case and the same operator's reference: not found
    for who in (he.other_operator, he.frankfurt, he.hessen_mobil):
        found = results(client, who, reference)
        assert all(r["kind"] not in ("application", "case") for r in found), found
        assert all(r["kind"] not in ("application", "case") for r in results(client, who, "GRM-NI-4711"))


def test_like_wildcards_are_literal(client, he, api, lines):
    r = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg"]))))
    assert r.status_code == 201, r.text
    # "%" and "_" match themselves only: a query of wildcards and a digit finds no reference
    assert [r for r in results(client, he.operator, "%_%1") if r["kind"] == "application"] == []


def test_rebuild_counts_and_is_idempotent(session, he_data):
    before = session.execute(text("SELECT kind, name, context, key, west, south, east, north FROM search_places "
                                  "WHERE tenant_key = 'he' ORDER BY kind, name, context, key")).all()
    counts = rebuild_places(session, "he")
    assert counts == {"gemeinde": 427, "kreis": 26, "road": 8, "street": 196}
    after = session.execute(text("SELECT kind, name, context, key, west, south, east, north FROM search_places "
                                 "WHERE tenant_key = 'he' ORDER BY kind, name, context, key")).all()
    assert after == before
    session.rollback()


def test_parse_coordinates_passes_text_on():
    # letters, or a single number: searched as text, not as coordinates
    assert parse_coordinates("L 3262") is None
    assert parse_coordinates("3262") is None
    assert parse_coordinates("HE-2026-000001") is None
