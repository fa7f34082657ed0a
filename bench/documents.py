"""Decision → signed PDF ready: the time from a committed decision to its signed decision document, over --runs
decisions, and the size of a typical document.

    .venv/bin/python bench/documents.py [--runs 50]

Builds its own database (BREITBAND_BENCH_DATABASE_URL, default …/breitband_documents_bench; dropped and rebuilt
with `alembic upgrade head` every run) and loads the demo (`breitband demo`: tenant he with the real Hessen
boundaries and the OSM roads of the Frankfurter Kreuz, the letterheads of data/tenants/he_authorities.toml). Then
--runs applications along the L 3262 in Neu-Isenburg and a street of Neu-Isenburg are submitted and decided by
Hessen Mobil through the HTTP API in this process (granted with two catalogue conditions and one in words), and for
each decision what the worker does is timed in this process: the document row for the decision
(``documents_for_event``'s work) and ``generator.generate`` (read, render with WeasyPrint as PDF/A-3b with the map
and the QR code, sign with PAdES, store, issue). The first document is reported apart (cold: imports, fonts); the
worker process is long-lived, so p50/p95 are over the warm ones. Baseline in the same run: signing alone of the same
PDF (keys.sign_pdf), so the share of rendering can be read off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta

from sqlalchemy.engine import make_url

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # tests.support: the test routes

MAIN_URL = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")
BENCH_URL = os.environ.get("BREITBAND_BENCH_DATABASE_URL") or make_url(MAIN_URL).set(
    database="breitband_documents_bench").render_as_string(hide_password=False)
os.environ["BREITBAND_DATABASE_URL"] = BENCH_URL
os.environ.pop("BREITBAND_DATABASE_READONLY_URL", None)
os.environ.setdefault("BREITBAND_DATA_DIR", tempfile.mkdtemp(prefix="breitband-bench-documents-"))
os.environ.setdefault("BREITBAND_LOG_LEVEL", "WARNING")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from breitband import clock
    from breitband.app import create_app
    from breitband.db import get_database
    from breitband.demo import load_demo
    from breitband.migrate import create_database, drop_database, upgrade
    from permits.documents import generator, keys
    from permits.documents import service as documents
    from permits.documents.models import DecisionDocument
    from permits.models import Case
    from tests.support.api import collection, draft_body, trench
    from tests.support.hessen import stretch

    drop_database(BENCH_URL)
    create_database(BENCH_URL)
    upgrade(BENCH_URL)
    tokens = load_demo(issue_tokens=True, echo=lambda *_: None)
    db = get_database()
    with db.engine.connect() as conn:
        route = collection(trench(stretch(conn, "l3262"), "open_trench", depth_cm=80, width_cm=40),
                           trench(stretch(conn, "neu_isenburg")))
    operator = {"Authorization": f"Bearer {tokens['operator_member']}"}
    authority = {"Authorization": f"Bearer {tokens['authority_admin']}"}       # Hessen Mobil (Anton Leitung)
    client = TestClient(create_app())

    def decide() -> uuid.UUID:
        start = clock.now().date() + timedelta(days=60)
        body = draft_body(route, planned_start=start.isoformat(), planned_end=(start + timedelta(days=45)).isoformat())
        r = client.post("/api/v1/applications", json=body, headers=operator)
        assert r.status_code == 201, r.text
        app_id = r.json()["id"]
        r = client.post(f"/api/v1/applications/{app_id}/submit", headers={**operator, "If-Match": r.headers["etag"]})
        assert r.status_code == 200, r.text
        case_id = next(c["id"] for c in r.json()["cases"] if c["authority"]["name"] == "Hessen Mobil")
        etag = client.get(f"/api/v1/cases/{case_id}", headers=authority).headers["etag"]
        r = client.post(f"/api/v1/cases/{case_id}/decision", headers={**authority, "If-Match": etag}, json={
            "outcome": "granted", "conditions": ["HE-N01", "HE-N02"],
            "additional_conditions": ["Die Arbeiten an der L 3262 sind außerhalb der Hauptverkehrszeiten "
                                      "auszuführen."]})
        assert r.status_code == 200, r.text
        return uuid.UUID(case_id)

    times, sizes = [], []
    for _ in range(args.runs + 1):
        case_id = decide()                              # committed: from here the worker's work is timed
        started = time.perf_counter()
        with db.transaction() as session:
            doc_id = documents.ensure_for_case(session, session.get(Case, case_id), clock.now())
        result = generator.generate(db, doc_id)
        times.append(time.perf_counter() - started)
        assert result["status"] == "ready", result
        with db.transaction() as session:
            sizes.append(session.get(DecisionDocument, doc_id).size_bytes)
    cold, warm = times[0], times[1:]

    # baseline: signing alone, the same unsigned PDF (rendered once more)
    with db.transaction() as session:
        doc = session.get(DecisionDocument, doc_id)
        context = documents.gather(session, doc)
    from permits.documents import render

    pdf = render.render_pdf("he", context)
    key = keys.ensure_key("he", "Hessen")
    signing = []
    for i in range(10):
        started = time.perf_counter()
        keys.sign_pdf(pdf, key, field_name=f"Sig{i}", reason="Bench", location="Bench")
        signing.append(time.perf_counter() - started)

    print(f"decision → signed PDF ready, {len(warm)} decisions (warm; first one cold {cold * 1000:.0f} ms):")
    print(f"  p50 {statistics.median(warm) * 1000:7.1f} ms   p95 {pct(warm, 0.95) * 1000:7.1f} ms   "
          f"max {max(warm) * 1000:7.1f} ms")
    print(f"  signing alone (baseline, 10 runs): p50 {statistics.median(signing) * 1000:6.1f} ms  → ratio "
          f"{statistics.median(warm) / statistics.median(signing):.1f}×")
    import io

    import pypdf

    pages = len(pypdf.PdfReader(io.BytesIO(pdf)).pages)
    print(f"  document size: median {statistics.median(sizes) / 1024:.0f} KiB (min {min(sizes) / 1024:.0f}, "
          f"max {max(sizes) / 1024:.0f}); pages: {pages}")
    print(f"  load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
