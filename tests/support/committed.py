"""Clean-up for tests whose data is committed (a real server, a worker): what the rolled-back test transaction
would otherwise have undone."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Engine


@contextmanager
def kept_reference_counters(engine: Engine, tenant_key: str = "he") -> Iterator[None]:
    """Put the tenant's reference counters back as they were: other tests expect the numbers they would get on a
    fresh database (HE-2026-000001 …), and a committed application moves them for good."""
    with engine.connect() as conn:
        counters = conn.execute(text("SELECT year, last_value FROM permit_reference_counters WHERE tenant_key = :t"),
                                {"t": tenant_key}).all()
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM permit_reference_counters WHERE tenant_key = :t"), {"t": tenant_key})
            for year, value in counters:
                conn.execute(text("INSERT INTO permit_reference_counters VALUES (:t, :y, :v)"),
                             {"t": tenant_key, "y": year, "v": value})


def delete_applications_of(engine: Engine, org_ids: Iterable[uuid.UUID]) -> None:
    """Remove the applications of these operators with their events (the events outlive an application)."""
    with engine.begin() as conn:
        apps = [r[0] for r in conn.execute(text("SELECT id FROM applications WHERE applicant_org_id = ANY(:o)"),
                                           {"o": list(org_ids)})]
        if apps:
            conn.execute(text("DELETE FROM permit_events WHERE application_id = ANY(:a)"), {"a": apps})
            conn.execute(text("DELETE FROM applications WHERE id = ANY(:a)"), {"a": apps})
