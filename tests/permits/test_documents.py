"""Signed decision documents: generated for decisions and deemed approvals, with the decision's content, conditions,
the Rechtsbehelfsbelehrung of the tenant and a map from our own roads; signed with the tenant's key; verified by id
and by upload (genuine vs. modified); downloads scoped to the parties; superseded and revoked."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import uuid

import pypdf
from sqlalchemy import select

import breitband.clock
from permits.cases import deemed
from permits.documents import generator
from permits.documents import service as documents
from permits.documents.models import DecisionDocument
from tests.support.api import PROBLEM, collection, trench
from tests.support.documents import ARTIFACTS, issue


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_decision_yields_a_signed_pdf_with_its_content(granted, client, he, settings):
    app, case, doc = granted
    assert (doc.status, doc.validity, doc.kind, doc.generation) == ("ready", "valid", "decision", 1)
    assert doc.signer.startswith("Common Name: Breitband Hessen – Bescheide (selbstsigniert)")
    listed = client.get(f"/api/v1/cases/{case}/documents", headers=he.hessen_mobil.headers).json()
    assert [(d["id"], d["status"], d["sha256"]) for d in listed] == [(str(doc.id), "ready", doc.sha256)]

    r = client.get(f"/api/v1/documents/{doc.id}/pdf", headers=he.operator.headers)      # the applicant
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    data = r.content
    assert data.startswith(b"%PDF") and hashlib.sha256(data).hexdigest() == doc.sha256
    text = " ".join(pdf_text(data).split())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "granted.pdf").write_bytes(data)             # pages as PNG: pdftoppm -png -r 60 granted.pdf page
    for expected in ("Hessen Mobil", app["reference"], "Zustimmung nach § 127 Abs. 1 TKG",
                     "Rechtsgrundlage: § 127 Abs. 1 TKG", "Glasfaser Test GmbH", "z. Hd. Olaf Planer",
                     "HE-N01 – Wiederherstellung der Verkehrsfläche", "HE-N02 – Verkehrssicherung",
                     "außerhalb der Hauptverkehrszeiten", "Rechtsbehelfsbelehrung",
                     "innerhalb eines Monats nach Bekanntgabe Widerspruch erhoben werden",   # Hessen's template
                     "© OpenStreetMap-Mitwirkende", "© GeoBasis-DE / BKG", "L 3262", "Landesstraße",
                     "Datum 02.02.2026", "Bearbeitet von", "Im Auftrag", "I. Entscheidung", "II. Nebenbestimmungen",
                     "III. Begründung", "Die Zustimmung erlischt, wenn mit den Arbeiten nicht bis zum 02.02.2028",
                     "Annex: English courtesy translation – not binding"):
        assert expected in text, expected
    german = text.split("Anlage: Englische Übersetzung")[0]
    for raw in (" land ", " bund ", "trunk_link", "None", "Decision", "Reasons", "Conditions"):
        assert raw not in german, raw
    assert f"/verify/{doc.id}" in "".join(text.split())                   # the URL may wrap
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert f"document_id={doc.id}" in reader.metadata["/Keywords"]
    assert reader.metadata["/Author"] == "Hessen Mobil"

    # the signing key of the tenant, created on first use, readable by the service only
    key_dir = settings.data_dir / "keys" / "he"
    assert stat.S_IMODE(os.stat(key_dir / "signing-key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key_dir).st_mode) == 0o700

    # other parties: the authority downloads, strangers get 404
    assert client.get(f"/api/v1/documents/{doc.id}/pdf", headers=he.hessen_mobil.headers).status_code == 200
    for stranger in (he.other_operator, he.frankfurt, he.neu_isenburg):
        r = client.get(f"/api/v1/documents/{doc.id}/pdf", headers=stranger.headers)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


def test_map_is_rendered_from_our_roads_with_the_authoritys_pieces(granted, session):
    from permits.documents import render

    app, case, doc = granted
    context = documents.gather(session, doc)
    svg = context["map_svg"]
    assert svg.startswith("<svg") and 'stroke="#c0262d"' in svg           # this authority's pieces, highlighted
    assert svg.count("<path d=") > 50                                      # road segments of our network
    assert "L 3262" in svg                                                 # labelled from road_segments
    assert [p["road_ref"] for p in context["case"]["pieces"]] == ["L 3262", "B 44", "L 3262"]   # Hessen Mobil's
    assert context["attribution"] == render.ATTRIBUTION


def test_verification_by_id_and_by_upload(granted, client, he):
    app, case, doc = granted
    r = client.get(f"/verify/{doc.id}")                                    # public: no token
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["sha256"], body["issuer"], body["reference"], body["outcome"]) == (
        "valid", doc.sha256, "Hessen Mobil", app["reference"], "granted")
    assert "Glasfaser" not in str(body) and "Planer" not in str(body)      # no personal data, no applicant
    page = client.get(f"/verify/{doc.id}", headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html") and "gültig" in page.text
    assert client.get(f"/verify/{uuid.uuid4()}").status_code == 404

    data = client.get(f"/api/v1/documents/{doc.id}/pdf", headers=he.operator.headers).content
    ok = client.post("/verify", files={"file": ("bescheid.pdf", data, "application/pdf")}).json()
    assert (ok["genuine"], ok["unchanged"], ok["document_id"], ok["status"]) == (True, True, str(doc.id), "valid")

    tampered = bytearray(data)
    i = tampered.index(b"stream", len(tampered) // 4) + 40           # inside a signed content stream
    tampered[i] ^= 0x01
    bad = client.post("/verify", files={"file": ("bescheid.pdf", bytes(tampered), "application/pdf")}).json()
    assert (bad["genuine"], bad["unchanged"], bad["signature"]["present"], bad["signature"]["intact"]) == (
        False, False, True, False)
    assert "verändert" in bad["reason"]
    assert bad["claimed_document_id"] == str(doc.id)
    unsigned = client.post("/verify", files={"file": ("x.pdf", b"%PDF-1.7\n%%EOF\n", "application/pdf")}).json()
    assert unsigned["genuine"] is False and unsigned["signature"]["present"] is False


def test_cli_verifies_files(granted, client, he, tmp_path, task_db):
    from typer.testing import CliRunner

    from breitband.cli import app as cli

    app, case, doc = granted
    data = client.get(f"/api/v1/documents/{doc.id}/pdf", headers=he.operator.headers).content
    good, bad = tmp_path / "good.pdf", tmp_path / "bad.pdf"
    good.write_bytes(data)
    bad.write_bytes(data.replace(b"/Producer", b"/Produzer", 1) if b"/Producer" in data else data[:-200])
    ok = CliRunner().invoke(cli, ["documents", "verify", str(good)])
    assert ok.exit_code == 0 and '"genuine": true' in ok.output
    fail = CliRunner().invoke(cli, ["documents", "verify", str(bad)])
    assert fail.exit_code == 1 and '"genuine": false' in fail.output


def test_regenerate_supersedes_and_revoke(granted, client, he, session, db, task_db):
    from permits.documents.tasks import document_generate

    app, case, doc = granted
    assert client.post(f"/api/v1/documents/{doc.id}/regenerate", headers=he.operator.headers).status_code == 403
    r = client.post(f"/api/v1/documents/{doc.id}/regenerate", headers=he.hessen_mobil.headers)
    assert r.status_code == 202 and r.json()["generation"] == 2
    new_id = r.json()["id"]
    assert client.get(f"/verify/{doc.id}").json()["status"] == "valid"     # until the new one is ready
    assert document_generate.apply(args=[new_id]).get()["status"] == "ready"
    old = client.get(f"/verify/{doc.id}").json()
    assert (old["status"], old["superseded_by"]) == ("superseded", new_id)
    r = client.post(f"/api/v1/documents/{new_id}/revoke", headers=he.admin.headers, json={"reason": "Irrtum"})
    assert r.status_code == 200 and r.json()["validity"] == "revoked"
    assert client.get(f"/verify/{new_id}").json()["status"] == "revoked"
    data = client.get(f"/api/v1/documents/{new_id}/pdf", headers=he.operator.headers).content
    upload = client.post("/verify", files={"file": ("b.pdf", data, "application/pdf")}).json()
    assert (upload["genuine"], upload["status"]) == (True, "revoked")


def test_deemed_approval_gets_a_certificate_too(api, he, lines, clock, client, session, db, task_db):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    case = api.case_of(app, "Stadt Neu-Isenburg")
    swept = deemed.sweep(db, breitband.clock.now().replace(year=2026, month=4, day=16))
    assert case in [c["case_id"] for c in swept["cases"]]
    doc = issue(db, task_db, session, case)
    assert (doc.kind, doc.outcome) == ("deemed_approval", "deemed_granted")
    text = " ".join(pdf_text(client.get(f"/api/v1/documents/{doc.id}/pdf", headers=he.operator.headers).content)
                    .split())
    assert "Bescheinigung über die als erteilt geltende Zustimmung (§ 127 Abs. 3 TKG)" in text
    assert "mit Ablauf des 15.04.2026 als erteilt" in text
    assert "§ 127 Abs. 3 Satz 1 TKG (Zustimmungsfiktion)" in text


def test_a_deemed_approval_after_a_moved_end_says_why(api, he, lines, clock, client, session, db, task_db):
    """The period's statutory last day, Easter Sunday 5 April 2026, and Easter Monday are no working days: the
    consent is deemed granted at the end of Tuesday 7 April, and the certificate says so (§ 193 BGB)."""
    clock.set("2026-01-05T10:00:00+01:00")
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    case = api.case_of(app, "Stadt Neu-Isenburg")
    assert deemed.sweep(db, clock.set("2026-04-07T23:59:59+02:00"))["deemed_granted"] == 0
    swept = deemed.sweep(db, clock.set("2026-04-08T00:00:00+02:00"))
    assert [(c["case_id"], c["effective_on"]) for c in swept["cases"] if c["case_id"] == case] == [
        (case, "2026-04-07")]
    doc = issue(db, task_db, session, case)
    text = " ".join(pdf_text(client.get(f"/api/v1/documents/{doc.id}/pdf", headers=he.operator.headers).content)
                    .split())
    assert "mit Ablauf des 07.04.2026 als erteilt" in text
    assert ("endete nach § 31 Abs. 3 VwVfG, § 193 BGB mit Ablauf des 07.04.2026, des nächsten Werktags nach ihrem "
            "gesetzlichen letzten Tag, dem 05.04.2026 (der 05.04.2026 ist ein Sonntag, der 06.04.2026 ist "
            "Ostermontag), ohne dass die Zustimmung versagt wurde") in text
    assert "its statutory last day, 05.04.2026, was no working day" in text


def test_the_sweep_finds_decided_cases_without_a_document(granted, session, db, api, he, lines, clock):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    case = api.case_of(app, "Stadt Neu-Isenburg")
    r = api.command(he.neu_isenburg, f"/cases/{case}/decision", {"outcome": "refused", "reasons": ["HE-V01"],
                                                                  "explanation": "Brücke ohne Leerrohr."})
    assert r.status_code == 200, r.text
    ids = generator.sweep(db)                      # the relay's message was lost: the beat backstop creates it
    doc = session.scalars(select(DecisionDocument).where(DecisionDocument.case_id == uuid.UUID(case))).one()
    assert doc.id in ids and doc.status == "pending" and doc.outcome == "refused"
    assert generator.sweep(db).count(doc.id) == 1
