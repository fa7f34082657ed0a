"""Decision documents in tests: issuing one as the worker would (relay, document row, generation) in the test
process, and a granted decision with its signed document."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from notifications import outbox
from notifications.models import Event
from permits.documents.models import DecisionDocument
from permits.documents.tasks import document_generate, documents_for_event
from tests.support.api import collection, trench


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
