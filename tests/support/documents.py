"""Decision documents in tests: issuing one as the worker would (relay, document row, generation) in the test
process, and a granted decision with its signed document."""

from __future__ import annotations

import html
import io
import re
import uuid

import pypdf
import pytest
from sqlalchemy import select

from breitband.settings import PROJECT_ROOT
from notifications import outbox
from notifications.models import Event
from permits.documents.models import DecisionDocument
from permits.documents.tasks import document_generate, documents_for_event
from tests.support.api import collection, trench

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "documents"       # the PDFs the tests make, to look at (gitignored)


def issue(db, task_db, session, case_id: str) -> DecisionDocument:
    """What happens after the decision: the relay publishes it, the subscribed task creates the document row and
    the generation task renders and signs it."""
    outbox.relay(db)

    event = session.scalars(select(Event).where(Event.case_id == uuid.UUID(case_id),
                                                Event.type.in_(["case.decided", "case.deemed_granted"]))
                            ).one()
    doc_id = documents_for_event.apply(args=[outbox.event_dict(event)]).get()
    assert documents_for_event.apply(args=[outbox.event_dict(event)]).get() == doc_id     # deduped
    assert document_generate.apply(args=[doc_id]).get()["status"] == "ready"
    assert document_generate.apply(args=[doc_id]).get()["status"] == "skipped"            # idempotent
    session.expire_all()
    return session.get(DecisionDocument, uuid.UUID(doc_id))


@pytest.fixture
def granted(api, he, lines, clock, client, session, db, task_db):
    """An application along the L 3262 and a road of Neu-Isenburg, granted by Hessen Mobil with two catalogue
    conditions and one in words, and its signed decision document: (application, case id, document)."""
    app = api.submitted(he.operator, collection(trench(lines["l3262"], "open_trench", depth_cm=80, width_cm=40),
                                                trench(lines["neu_isenburg"])))
    case = api.case_of(app, "Hessen Mobil")
    clock.set("2026-02-02T11:00:00+01:00")
    r = api.command(he.hessen_mobil, f"/cases/{case}/decision", {
        "outcome": "granted", "conditions": ["HE-N01", "HE-N02"],
        "additional_conditions": ["Die Arbeiten an der L 3262 sind außerhalb der Hauptverkehrszeiten auszuführen."]})
    assert r.status_code == 200, r.text
    return app, case, issue(db, task_db, session, case)


def pdfa_problems(data: bytes) -> list[str]:
    """What keeps a PDF from being PDF/A-3b, as far as it can be seen without a full validator (veraPDF is Java and
    not in the registries we install from): the XMP identification (part 3, conformance B), an output intent with
    its ICC profile, every font embedded, no encryption, the document information dictionary equal to the XMP
    metadata, and every annotation (the signature's widget) printable. → [] when all hold."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    problems = []
    if reader.is_encrypted:
        problems.append("encrypted")
    root = reader.trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode() if "/Metadata" in root else ""
    if not re.search(r'pdfaid:part(="|>)3', xmp) or not re.search(r'pdfaid:conformance(="|>)B', xmp):
        problems.append("no XMP identification pdfaid:part=3, conformance=B")
    intents = [i.get_object() for i in root.get("/OutputIntents", [])]
    if not any(i.get("/S") == "/GTS_PDFA1" and "/DestOutputProfile" in i for i in intents):
        problems.append("no PDF/A output intent with an ICC profile")
    info = reader.trailer["/Info"].get_object() if "/Info" in reader.trailer else {}
    for key, tag in (("/Title", "dc:title"), ("/Author", "dc:creator"), ("/Creator", "xmp:CreatorTool"),
                     ("/Producer", "pdf:Producer"), ("/Keywords", "pdf:Keywords")):
        if key in info and html.escape(str(info[key]), quote=False) not in xmp:
            problems.append(f"{key} of the information dictionary ({info[key]!r}) is not in the XMP {tag}")
    seen = set()

    def fonts(resources):
        resources = resources.get_object() if resources is not None else {}
        for font in (resources.get("/Font") or {}).values():
            yield font.get_object()
        for xobject in (resources.get("/XObject") or {}).values():
            xobject = xobject.get_object()
            if xobject.get("/Subtype") == "/Form" and id(xobject) not in seen:
                seen.add(id(xobject))
                yield from fonts(xobject.get("/Resources"))

    for number, page in enumerate(reader.pages, 1):
        for font in fonts(page.get("/Resources")):
            described = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            descriptor = described.get("/FontDescriptor")
            if font.get("/Subtype") != "/Type3" and (descriptor is None or not any(
                    k in descriptor.get_object() for k in ("/FontFile", "/FontFile2", "/FontFile3"))):
                problems.append(f"page {number}: font {font.get('/BaseFont')} is not embedded")
        for annot in page.get("/Annots") or []:
            annot = annot.get_object()
            if annot.get("/Subtype") != "/Popup" and not int(annot.get("/F", 0)) & 4:
                problems.append(f"page {number}: annotation {annot.get('/Subtype')} {annot.get('/T')} not printable")
    return problems
