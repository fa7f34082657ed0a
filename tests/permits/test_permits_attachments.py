"""Attachments: content sniffing, sanitised names, durable content-addressed storage, size limit, visibility."""

from __future__ import annotations

import hashlib

from permits.applications.attachments import blob_path
from tests.support.api import PROBLEM, collection, draft_body, trench

PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
TYPE = "https://breitband.dev/problems/"


def upload(api, who, app_id, name, data, kind="route_plan", content_type="application/octet-stream", key=None):
    headers = dict(who.headers)
    if key:
        headers["Idempotency-Key"] = key
    return api.c.post(f"/api/v1/applications/{app_id}/attachments", files={"file": (name, data, content_type)},
                      data={"kind": kind}, headers=headers)


def test_upload_sniffs_sanitises_and_stores_by_sha256(api, he, lines, clock, settings):
    app = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg"])))).json()
    r = upload(api, he.operator, app["id"], "../../Trassenplan <BA 3>.PDF", PDF, content_type="text/plain")
    assert r.status_code == 201, r.text
    att = r.json()
    sha = hashlib.sha256(PDF).hexdigest()
    assert (att["kind"], att["file_name"], att["content_type"], att["size_bytes"], att["sha256"]) == (
        "route_plan", "Trassenplan _BA 3_.pdf", "application/pdf", len(PDF), sha)
    assert r.headers["location"] == att["url"] == f"/api/v1/applications/{app['id']}/attachments/{att['id']}"
    path = blob_path(settings.data_dir, sha)
    assert path == settings.data_dir / "attachments" / sha[:2] / sha[2:4] / sha
    assert path.read_bytes() == PDF

    png = upload(api, he.operator, app["id"], "foto.pdf", PNG, kind="photo", content_type="application/pdf").json()
    assert (png["content_type"], png["file_name"]) == ("image/png", "foto.pdf.png")
    same = upload(api, he.operator, app["id"], "kopie.pdf", PDF).json()
    assert same["id"] != att["id"] and same["sha256"] == sha             # one blob, two attachments

    download = api.get(he.operator, att["url"][len("/api/v1"):])
    assert (download.status_code, download.content, download.headers["content-type"]) == (200, PDF, "application/pdf")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "Trassenplan%20_BA%203_.pdf" in download.headers["content-disposition"] or \
        'filename="Trassenplan _BA 3_.pdf"' in download.headers["content-disposition"]

    # the same upload with the same key is stored once
    k1 = upload(api, he.operator, app["id"], "a.pdf", PDF, key="upload-1")
    k2 = upload(api, he.operator, app["id"], "a.pdf", PDF, key="upload-1")
    assert (k1.status_code, k2.status_code, k2.json()["id"]) == (201, 201, k1.json()["id"])
    k3 = upload(api, he.operator, app["id"], "a.pdf", PNG, key="upload-1")
    assert (k3.status_code, k3.json()["type"]) == (422, TYPE + "idempotency-key-reused")


def test_unknown_types_empty_files_and_oversized_files_are_refused(api, he, lines, clock, settings, monkeypatch):
    app = api.create(he.operator, draft_body(None)).json()
    r = upload(api, he.operator, app["id"], "plan.pdf", b"MZ\x90\x00 this is a windows program")
    assert (r.status_code, r.headers["content-type"], r.json()["type"]) == (
        415, PROBLEM, TYPE + "unsupported-media-type")
    assert r.json()["detail"] == ("The file is not a PDF, PNG, JPEG, GIF, WebP or TIFF file (judged by its content, "
                                  "not its name)")
    r = upload(api, he.operator, app["id"], "leer.pdf", b"")
    assert (r.status_code, r.json()["type"]) == (422, TYPE + "empty-attachment")
    monkeypatch.setattr(settings, "max_attachment_mb", 0.0001)           # 104 bytes
    r = upload(api, he.operator, app["id"], "plan.pdf", PDF)
    assert (r.status_code, r.json()["type"], r.json()["limit_bytes"]) == (413, TYPE + "attachment-too-large", 104)
    r = upload(api, he.operator, app["id"], "plan.pdf", PDF, kind="selfie")
    assert r.status_code == 422
    assert api.get(he.operator, f"/applications/{app['id']}").json()["attachments"] == []
    leftovers = [p for p in (settings.data_dir / "attachments").iterdir() if p.name.startswith(".upload-")]
    assert leftovers == []


def test_power_of_attorney_and_what_authorities_see(api, he, lines, clock):
    created = api.create(he.operator, draft_body(
        collection(trench(lines["neu_isenburg"])),
        representative={"name": "Planungsbüro Süd", "organisation": "PB Süd GmbH", "email": "info@pb-sued.example"}))
    app_id = created.json()["id"]
    poa = upload(api, he.operator, app_id, "Vollmacht.pdf", PDF, kind="power_of_attorney").json()
    plan = upload(api, he.operator, app_id, "Plan.pdf", PDF, kind="route_plan").json()
    draft_only = upload(api, he.operator, app_id, "Entwurf.png", PNG, kind="other").json()

    r = api.c.patch(f"/api/v1/applications/{app_id}",
                    headers={**he.operator.headers, "If-Match": created.headers["etag"]},
                    json={"representative": {"name": "Planungsbüro Süd", "email": "info@pb-sued.example",
                                             "power_of_attorney_attachment_id": plan["id"]}})
    assert (r.status_code, r.json()["errors"][0]["message"]) == (
        422, f"attachment {plan['id']} is a route_plan, not a power_of_attorney")
    r = api.c.patch(f"/api/v1/applications/{app_id}",
                    headers={**he.operator.headers, "If-Match": created.headers["etag"]},
                    json={"attachment_ids": [plan["id"]],
                          "representative": {"name": "Planungsbüro Süd", "email": "info@pb-sued.example",
                                             "power_of_attorney_attachment_id": poa["id"]}})
    assert r.status_code == 200, r.text
    assert r.json()["content"]["attachment_ids"] == [plan["id"], poa["id"]]
    submitted = api.command(he.operator, f"/applications/{app_id}/submit", etag=r.headers["etag"])
    assert submitted.status_code == 200, submitted.text

    case_id = submitted.json()["cases"][0]["id"]
    seen = api.get(he.neu_isenburg, f"/applications/{app_id}").json()
    assert sorted(a["file_name"] for a in seen["attachments"]) == ["Plan.pdf", "Vollmacht.pdf"]
    assert api.get(he.neu_isenburg, f"/applications/{app_id}/attachments/{draft_only['id']}").status_code == 404
    assert api.get(he.neu_isenburg, f"/applications/{app_id}/attachments/{poa['id']}").content == PDF
    assert api.get(he.frankfurt, f"/applications/{app_id}/attachments/{poa['id']}").status_code == 404
    assert len(api.get(he.operator, f"/applications/{app_id}").json()["attachments"]) == 3

    # a supplement adds an attachment; authorities see it from then on
    api.command(he.neu_isenburg, f"/cases/{case_id}/request-information", {"message": "Querschnitt fehlt"})
    section = upload(api, he.operator, app_id, "Querschnitt.png", PNG, kind="cross_section").json()
    r = api.command(he.operator, f"/applications/{app_id}/supplements",
                    {"message": "Querschnitt anbei", "attachment_ids": [section["id"]]})
    assert r.status_code == 200, r.text
    assert api.get(he.neu_isenburg, f"/applications/{app_id}/attachments/{section['id']}").content == PNG
    assert api.get(he.neu_isenburg, f"/applications/{app_id}/versions/2").json()["content"]["attachment_ids"] == [
        plan["id"], poa["id"], section["id"]]
