"""Who hears of a security event (``security.<kind>``, accounts/events.py): the tenant's operating office — its feed
and its webhook subscriptions — and nobody by e-mail (a sign-in per e-mail would drown the office; a SIEM reads the
webhook). Organisations whose members signed in do not see them: the audit trail is the tenant admins'.

Registered with the outbox relay when this module is imported; the entry points (breitband.app, breitband.cli,
breitband.worker) import it by name, like permits.pipeline.audience.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from accounts.events import EVENT_PREFIX
from breitband.models import Organisation, OrgKind
from notifications.models import Event
from notifications.outbox import Recipient, register_audience


def audience(session: Session, ev: Event) -> list[Recipient] | None:
    if not ev.type.startswith(EVENT_PREFIX):
        return None
    offices = session.scalars(select(Organisation.id).where(Organisation.tenant_key == ev.tenant_key,
                                                            Organisation.kind == OrgKind.operating_office.value)
                              .order_by(Organisation.id))
    return [Recipient(org_id, (), {"role": "operating_office"}) for org_id in offices]


register_audience(audience)
