"""Who hears of a permit event: the audience provider the outbox relay asks (``notifications.outbox``), the
permit tasks that react to published events, and the deadline reminders (``send_reminders``, beat task
``permits.deadline_reminders``).

Who sees what in the feed and webhooks, and who gets an e-mail on what:

- applicant (operator organisation): sees every event of its application except participation, reminders and
  pipeline internals; e-mail on submission, every case change (information requested, completeness confirmed,
  decision, deemed approval, forwarded, deadline extended, case closed), decision document issued or revoked. An
  application with further decisions (traffic order, nature, water, monument permit; § 127 (5) TKG) goes out as one
  bundle: one e-mail ``application.decided`` when its last case is decided, instead of one per decision/document.
- a body that issues a further decision is the authority of that case: it hears of it like a road authority.
- authority (road authority of a case): sees the events of its cases, supplements, withdrawal, works, the
  pipeline's outcome, statements and documents of its application; e-mail on a new case (also a forwarded one), a
  supplement that addresses its case, deadline reminders (14 and 3 days).
- participating body: sees its statement requests; e-mail on a statement request, and when one is closed (no longer
  needed: application decided or withdrawn) or superseded (the route changed).
- tenant admins: see everything of the tenant (feed row without organisation); no e-mail.

E-mail goes to the application's contact person once that person confirmed the address (else, and until then, the
operator's address, else its members; an unconfirmed contact gets only the request to confirm,
notifications/contacts.py) and to an authority's or body's functional address (else its members).
"""

from __future__ import annotations

import fnmatch
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from breitband import clock
from breitband.celery import celery_app
from breitband.db import Database, get_database
from breitband.models import OPERATOR_ROLES, Organisation, Role, User
from breitband.settings import get_settings
from notifications import contacts
from notifications.models import Event
from notifications.outbox import Recipient, register_audience, subscribe
from permits import core, deadlines
from permits.models import OPEN_CASE_STATUSES, Application, ApplicationVersion, Case
from permits.pipeline.models import CaseReminder

APPLICANT_HIDDEN = ("statement.*", "case.deadline_reminder", "pipeline.*")
APPLICANT_EMAIL = {"application.submitted", "case.information_requested", "case.completeness_confirmed",
                   "case.decided", "case.deemed_granted", "case.forwarded", "case.deadline_extended",
                   "case.withdrawn", "document.issued", "document.revoked", "application.decided"}
# An application with further decisions (§ 127 (5) TKG, permits.cases.related) goes out as one bundle: the applicant
# gets the one e-mail application.decided instead of one per decision and document (the feed still has each).
BUNDLED = {"case.decided", "case.deemed_granted", "document.issued"}
AUTHORITY_APPLICATION_EVENTS = {"application.supplemented", "application.withdrawn", "application.works_started",
                                "application.works_completed", "pipeline.completed", "application.decided"}
AUTHORITY_EMAIL = {"case.received", "application.supplemented", "case.deadline_reminder"}
BODY_EMAIL = {"statement.requested", "statement.closed", "statement.superseded"}


def _hidden(event_type: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


def _member_emails(session: Session, org_id: uuid.UUID, roles: tuple[Role, ...]) -> list[str]:
    return list(session.scalars(select(User.email).where(User.organisation_id == org_id, User.active.is_(True),
                                                         User.role.in_([r.value for r in roles]))
                                .order_by(User.email)))


def _org_emails(session: Session, org: Organisation | None, roles: tuple[Role, ...]) -> list[str]:
    if org is None:
        return []
    if org.email:
        return [org.email]
    return _member_emails(session, org.id, roles)


def applicant_addresses(session: Session, app: Application, org: Organisation | None, now: datetime
                        ) -> tuple[list[str], tuple[str, str, datetime] | None]:
    """→ (addresses for the applicant's notice, the request to confirm the contact address to send now or None:
    (address, token, expiry)). The contact person typed in by the operator gets notices only once the address was
    confirmed by its owner (or is one of the organisation's own); until then the organisation's addresses get them,
    and the contact one request to confirm (again only after an earlier one expired unanswered)."""
    content = session.scalar(select(ApplicationVersion.content).where(
        ApplicationVersion.application_id == app.id, ApplicationVersion.number == app.current_version)) or {}
    contact = (content.get("contact") or {}).get("email")
    if contact and org is not None and (contacts.normalise(contact) in contacts.own_addresses(session, org)
                                        or contacts.is_confirmed(session, org.id, contact)):
        return [contact], None
    fallback = _org_emails(session, org, OPERATOR_ROLES)
    if not contact or org is None:
        return fallback, None
    pending = contacts.request_confirmation(session, tenant_key=app.tenant_key, org_id=org.id, email=contact,
                                            application_id=app.id, now=now)
    return fallback, (contact, *pending) if pending else None


def audience(session: Session, ev: Event) -> list[Recipient] | None:
    if ev.application_id is None:
        return None
    app = session.get(Application, ev.application_id)
    if app is None:
        return []
    cases = list(session.scalars(select(Case).where(Case.application_id == app.id)))
    payload = ev.payload or {}
    org_ids = {app.applicant_org_id, *(c.authority_org_id for c in cases)}
    body_id = payload.get("body_org_id")
    if body_id:
        org_ids.add(uuid.UUID(body_id))
    orgs = {o.id: o for o in session.scalars(select(Organisation).where(Organisation.id.in_(org_ids)))}
    base = get_settings().public_base_url.rstrip("/")
    case = next((c for c in cases if ev.case_id and c.id == ev.case_id), None)
    common = {"reference": app.reference, "project_name": app.project_name,
              "applicant_name": getattr(orgs.get(app.applicant_org_id), "name", None),
              "authority_name": getattr(orgs.get(case.authority_org_id), "name", None) if case else None}
    out: list[Recipient] = []

    # the applicant
    if not _hidden(ev.type, APPLICANT_HIDDEN):
        withdrawn_by_applicant = ev.type == "case.withdrawn" and payload.get("reason") == "applicant"
        bundled = ev.type in BUNDLED and any(c.kind != "consent" for c in cases)
        email = ev.type in APPLICANT_EMAIL and not withdrawn_by_applicant and not bundled
        emails, confirmation = (applicant_addresses(session, app, orgs.get(app.applicant_org_id),
                                                    clock.now()) if email else ([], None))
        out.append(Recipient(app.applicant_org_id, tuple(emails), {
            **common, "role": "applicant", "link": f"{base}/#/application/{app.id}"}))
        if confirmation is not None:        # the request to confirm, instead of the notice (template of its own)
            address, token, expires = confirmation
            out.append(Recipient(app.applicant_org_id, (address,), {
                **common, "role": "contact", "template": "contact.confirm", "confirm_link": contacts.link(token),
                "expires_at": expires.isoformat()}))

    # road authorities
    authorities: dict[uuid.UUID, bool] = {}          # organisation → e-mail?
    if ev.type in ("application.created", "application.submitted"):
        pass
    elif case is not None and ev.type.startswith(("case.", "document.")):
        authorities[case.authority_org_id] = ev.type in AUTHORITY_EMAIL
    elif ev.type in AUTHORITY_APPLICATION_EVENTS or ev.type.startswith("statement."):
        addressed = set(payload.get("case_ids") or []) if ev.type == "application.supplemented" else set()
        for c in cases:
            if c.status == "forwarded":
                continue
            mail = ev.type in AUTHORITY_EMAIL and str(c.id) in addressed
            authorities[c.authority_org_id] = authorities.get(c.authority_org_id, False) or mail
    for org_id, mail in authorities.items():
        if org_id == app.applicant_org_id:
            continue
        emails = _org_emails(session, orgs.get(org_id), (Role.authority_reviewer, Role.authority_admin)) if mail else []
        link_case = next((c.id for c in cases if c.authority_org_id == org_id), None)
        out.append(Recipient(org_id, tuple(emails), {
            **common, "role": "authority", "authority_name": getattr(orgs.get(org_id), "name", None),
            "link": f"{base}/#/case/{link_case}" if link_case else base}))

    # a participating body: its own statement requests only
    if body_id and ev.type.startswith("statement."):
        bid = uuid.UUID(body_id)
        emails = _org_emails(session, orgs.get(bid), (Role.authority_reviewer, Role.authority_admin)) \
            if ev.type in BODY_EMAIL else []
        out.append(Recipient(bid, tuple(emails), {
            **common, "role": "body", "body_name": getattr(orgs.get(bid), "name", None),
            "link": f"{base}/api/v1/statements/{payload.get('statement_id')}"}))
    return out


register_audience(audience)

# Permit tasks that react to published events (each also has a beat backstop: permits.pipeline.tasks,
# permits.documents.tasks).
subscribe(("application.submitted", "application.supplemented"), "permits.pipeline_start")
subscribe(("case.decided", "case.deemed_granted"), "permits.documents_for_event")


def describe() -> dict[str, Any]:
    return {"applicant_email": sorted(APPLICANT_EMAIL), "authority_email": sorted(AUTHORITY_EMAIL),
            "body_email": sorted(BODY_EMAIL)}


# --- deadline reminders -----------------------------------------------------------------------------------------------

REMINDER_DAYS = (14, 3)


def send_reminders(db: Database, now: datetime | None = None) -> dict[str, Any]:
    """The event ``case.deadline_reminder`` (to the authority, by e-mail) for every open case whose decision deadline
    is 14 or 3 days away, once per case, deadline and threshold. After downtime only the nearest threshold is sent
    (a case 2 days before its deadline gets the 3-day reminder, not also the 14-day one). A new deadline (restart,
    extension) gets its own reminders."""
    now = now or clock.now()
    today = deadlines.local_date(now)
    sent = []
    with db.transaction() as session:
        rows = session.execute(select(Case, Application).join(Application, Application.id == Case.application_id)
                               .where(Case.status.in_([s.value for s in OPEN_CASE_STATUSES]),
                                      Case.decision_due.is_not(None), Case.decision_due >= today,
                                      Case.decision_due <= today + timedelta(days=max(REMINDER_DAYS)))
                               .order_by(Case.decision_due, Case.id)
                               .with_for_update(of=Case, skip_locked=True)).all()
        for case, app in rows:
            left = (case.decision_due - today).days
            days = min(d for d in REMINDER_DAYS if left <= d)
            stmt = insert(CaseReminder).values(case_id=case.id, decision_due=case.decision_due, days_before=days,
                                               created_at=now).on_conflict_do_nothing().returning(CaseReminder.case_id)
            if session.execute(stmt).scalar() is None:
                continue
            core.event(session, "case.deadline_reminder", app, now, case, days_before=days, days_left=left,
                       decision_due=case.decision_due)
            sent.append({"case_id": str(case.id), "days_before": days, "decision_due": case.decision_due.isoformat()})
    return {"reminders": len(sent), "cases": sent}


@celery_app.task(name="permits.deadline_reminders", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
                 max_retries=3, ignore_result=True)
def deadline_reminders() -> dict[str, Any]:
    """Beat: reminders to authorities 14 and 3 days before a decision deadline (``send_reminders``)."""
    return send_reminders(get_database())
