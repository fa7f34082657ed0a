"""A worker SIGKILLed while it signs a decision document (private stack, see tests/support/faults.py).

The worker killed in the middle of the review pipeline is tests/notifications/test_worker_kill.py (statement request
and e-mails exactly once); this is the other long task with an external effect, the signed document."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.faults import flock_waiters, flocked, worker_idle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.worker

LEASE = timedelta(minutes=10)        # permits.documents.service.LEASE: how long a generating worker owns a document


def document_rows(stack, case_id: str) -> list[tuple]:
    return stack.rows("SELECT id, generation, status, validity, attempts, error, sha256 FROM decision_documents "
                      "WHERE case_id = :c ORDER BY generation", c=case_id)


def issued_events(stack, case_id: str) -> list[dict]:
    return [r[0] for r in stack.rows("SELECT payload FROM permit_events WHERE case_id = :c AND "
                                     "type = 'document.issued' ORDER BY seq", c=case_id)]


def test_worker_killed_while_signing_issues_the_document_once(stack):
    """Invariant: a worker (all its processes) SIGKILLed while it signs a decision document leaves no document
    issued — the row stays ``generating`` with 1 attempt, no ``document.issued`` event, no file — and the document
    is issued exactly once afterwards: the message delivered again to a new worker does nothing while the dead
    worker's 10-minute lease holds, beat's sweep after the lease (simulated: the sweep and the generation it sends
    are told a time 11 minutes later) issues it, and further sweeps and messages change nothing. Afterwards there
    is one document for the case (generation 1, ready, valid, 2 attempts), one ``document.issued`` event with its
    SHA-256, one file on disk with that SHA-256 (no temporary file left), the same bytes at the download, and each
    e-mail about the issue sent once.

    Where the kill lands: after the PDF was rendered, inside the signing step, while the worker waits for the
    tenant's signing key (the test holds the key's file lock, ``permits.documents.keys.ensure_key``; the worker is
    seen waiting for it in /proc/locks)."""
    people, http = stack.people, stack.http
    keys = stack.data_dir / "keys" / "he"
    shutil.rmtree(keys, ignore_errors=True)                # no key yet: signing must take the key's lock
    lock = keys / ".lock"
    documents_dir = stack.data_dir / "documents" / "he"

    def new_files() -> list[str]:           # other tests of the stack (scale-out) leave their documents here
        return sorted(p.name for p in documents_dir.iterdir() if p.name not in before) \
            if documents_dir.exists() else []

    before: set[str] = set()
    before = set(new_files())
    app = stack.submit(f"WK-{uuid.uuid4().hex[:6]}")
    case_id = app["cases"][0]["id"]
    wait_for(lambda: stack.run_status(app["id"]) == "succeeded", 60, what="the pipeline")
    victim = stack.worker

    with flocked(lock):
        r = http.get(f"/api/v1/cases/{case_id}", headers=people.authority.headers)
        # the traffic authority's statement is still open: deciding anyway says so (issue 15, § 127 (5))
        r = http.post(f"/api/v1/cases/{case_id}/decision",
                      json={"outcome": "granted", "confirm_pending_statements": True},
                      headers={**people.authority.headers, "If-Match": r.headers["etag"]})
        assert r.status_code == 200, r.text
        # relay → documents_for_event (the row) → document_generate: claimed, rendered, waiting for the key
        wait_for(lambda: flock_waiters(lock) & set(victim.group()), 90, interval=0.2,
                 what="the worker to wait for the signing key")
        [(doc_id, generation, status, _, attempts, _, _)] = document_rows(stack, case_id)
        assert (generation, status, attempts) == (1, "generating", 1)
        victim.kill()                                      # SIGKILL to the worker and its pool processes
    assert not victim.running()
    wait_for(lambda: not victim.group(), 10, what="the worker's pool processes to be gone")

    # nothing issued, nothing half-written
    assert document_rows(stack, case_id) == [(doc_id, 1, "generating", "valid", 1, None, None)]
    assert issued_events(stack, case_id) == []
    assert new_files() == []

    stack.start_worker()
    # the message comes again (acks_late after a lost worker) and beat sweeps at the real time: the lease holds
    stack.send("permits.document_generate", [str(doc_id)])
    stack.send("permits.documents_sweep")
    wait_for(lambda: worker_idle(stack), 60, interval=0.2, what="the worker to work off the messages")
    assert document_rows(stack, case_id) == [(doc_id, 1, "generating", "valid", 1, None, None)]

    # 11 minutes later the lease has run out: beat's sweep finds the document and sends its generation
    later = (datetime.now(timezone.utc) + LEASE + timedelta(minutes=1)).isoformat()
    stack.send("permits.documents_sweep", [later])
    wait_for(lambda: document_rows(stack, case_id)[0][2] == "ready", 90, interval=0.5,
             what="the document to be issued after the lease")
    for _ in range(2):                                     # duplicates: another sweep, the message once more
        stack.send("permits.documents_sweep", [later])
        stack.send("permits.document_generate", [str(doc_id), later])
        stack.send("notifications.relay")
    wait_for(lambda: worker_idle(stack), 60, interval=0.2, what="the worker to work off the messages")

    [(_, generation, status, validity, attempts, error, sha256)] = document_rows(stack, case_id)
    assert (generation, status, validity, attempts, error) == (1, "ready", "valid", 2, None)
    [event] = issued_events(stack, case_id)
    assert (event["document_id"], event["sha256"], event["generation"]) == (str(doc_id), sha256, 1)
    assert new_files() == [f"{doc_id}.pdf"]
    assert hashlib.sha256((documents_dir / f"{doc_id}.pdf").read_bytes()).hexdigest() == sha256
    r = http.get(f"/api/v1/documents/{doc_id}/pdf", headers=people.operator.headers)
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha256

    def issue_mails_delivered() -> dict:
        stack.tick()
        planned = {k: v for k, v in stack.email_deliveries(app["id"]).items() if k[0] == "document.issued"}
        return planned if planned and set(planned.values()) == {"delivered"} else {}

    planned = wait_for(issue_mails_delivered, 60, interval=1.0, what="the e-mails about the document")
    mails = {k: n for k, n in stack.mails_about(app["reference"]).items() if k[0] == "document.issued"}
    assert mails == dict.fromkeys(planned, 1)
