"""Confirmation of contact addresses that operators type in, before the service sends them anything but the request
to confirm.

An application's ``contact.email`` is entered by the operator, not by the person it belongs to. Until that person
confirmed the address for the operator's organisation, notices about the application go to the organisation's own
addresses (its functional address, else its members), and the address itself gets one e-mail only: the request to
confirm, with a link that is single-use and expires after ``contact_confirmation_ttl_h`` hours. Who picks the
recipients: ``permits.pipeline.audience`` (``applicant_addresses``), in the outbox relay's transaction, so the
confirmation row and its e-mail delivery are written together and the e-mail is retried like every notice.

* A confirmation belongs to (organisation, address): confirmed once, the address gets the organisation's notices for
  every application that names it. The organisation's own addresses (its functional address, its users' sign-in
  addresses) need no confirmation.
* Only the SHA-256 of a token is kept here; the link itself is in the e-mail delivery's context (so that a retry sends
  the same link) and nowhere the operator can read it (feed, webhooks and the delivery log do not show it).
* A request is sent again only when the previous one expired unanswered.
* ``GET /contact-confirmations?token=…`` shows what is to be confirmed and a button; only ``POST`` (the button, or a
  client with form field ``token``) confirms, so a mail scanner that opens links confirms nothing. The token is in
  the query or the form, not the path, so the access log (which logs paths) does not keep it. Unknown token → 404,
  used → 410 ``contact-confirmation-used``, expired → 410 ``contact-confirmation-expired`` (problem+json).
"""

from __future__ import annotations

import html
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import DateTime, ForeignKey, Index, String, func, select
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, Session, mapped_column

from breitband import clock
from breitband.dates import iso
from breitband.db import Base, get_read_session, write_session
from breitband.errors import PROBLEM_JSON, NotFound, ProblemError
from breitband.identity import hash_token
from breitband.models import Organisation, User
from breitband.settings import get_settings

PATH = "/contact-confirmations"
TOKEN_PREFIX = "bbc_"


class ContactConfirmation(Base):
    """A request to confirm an address for an organisation; confirmed once ``confirmed_at`` is set."""

    __tablename__ = "contact_confirmations"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))                     # lower case
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    application_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("applications.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_contact_confirmations_address", "organisation_id", "email"),)


class ConfirmationUsed(ProblemError):
    status, type, title = 410, "contact-confirmation-used", "Confirmation link already used"


class ConfirmationExpired(ProblemError):
    status, type, title = 410, "contact-confirmation-expired", "Confirmation link expired"


def normalise(email: str) -> str:
    return email.strip().lower()


def own_addresses(session: Session, org: Organisation) -> set[str]:
    """The organisation's functional address and its users' addresses: known to the service, no confirmation."""
    found = {normalise(e) for e in session.scalars(select(User.email).where(User.organisation_id == org.id))}
    if org.email:
        found.add(normalise(org.email))
    return found


def is_confirmed(session: Session, org_id: uuid.UUID, email: str) -> bool:
    return session.scalar(select(func.count()).select_from(ContactConfirmation).where(
        ContactConfirmation.organisation_id == org_id, ContactConfirmation.email == normalise(email),
        ContactConfirmation.confirmed_at.is_not(None))) > 0


def request_confirmation(session: Session, *, tenant_key: str, org_id: uuid.UUID, email: str,
                         application_id: uuid.UUID | None, now: datetime) -> tuple[str, datetime] | None:
    """A new token for the address, unless a request is still open (→ None: nothing to send). → (token, expiry)."""
    address = normalise(email)
    open_request = session.scalar(select(func.count()).select_from(ContactConfirmation).where(
        ContactConfirmation.organisation_id == org_id, ContactConfirmation.email == address,
        ContactConfirmation.confirmed_at.is_(None), ContactConfirmation.expires_at > now))
    if open_request:
        return None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = now + timedelta(hours=get_settings().contact_confirmation_ttl_h)
    session.add(ContactConfirmation(id=uuid.uuid4(), tenant_key=tenant_key, organisation_id=org_id, email=address,
                                    token_sha256=hash_token(token), application_id=application_id, created_at=now,
                                    expires_at=expires))
    session.flush()
    return token, expires


def mark_confirmed(session: Session, *, tenant_key: str, org_id: uuid.UUID, email: str, now: datetime) -> None:
    """Record an address as confirmed by other means (an operating office that checked it; test set-ups)."""
    session.add(ContactConfirmation(id=uuid.uuid4(), tenant_key=tenant_key, organisation_id=org_id,
                                    email=normalise(email), token_sha256=hash_token(secrets.token_urlsafe(32)),
                                    created_at=now, expires_at=now, confirmed_at=now))
    session.flush()


def link(token: str) -> str:
    return f"{get_settings().public_base_url.rstrip('/')}{PATH}?token={token}"


def _find(session: Session, token: str, now: datetime, *, lock: bool = False) -> ContactConfirmation:
    stmt = select(ContactConfirmation).where(ContactConfirmation.token_sha256 == hash_token(token))
    row = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise NotFound("No such confirmation link; copy the whole link from the e-mail",
                       type="contact-confirmation-not-found", field="token")
    if row.confirmed_at is not None:
        raise ConfirmationUsed("This link was already used: the address is confirmed", field="token")
    if row.expires_at <= now:
        raise ConfirmationExpired(f"This link expired on {row.expires_at.isoformat()}; a new one is sent with the "
                                  "next notice about the application", field="token")
    return row


def confirm(session: Session, token: str, now: datetime) -> ContactConfirmation:
    row = _find(session, token, now, lock=True)
    row.confirmed_at = now
    session.flush()
    return row


# --- public endpoints ---------------------------------------------------------------------------------------------

router = APIRouter(tags=["contact confirmation"])
TOKEN_DOC = "The token from the confirmation e-mail's link"
PROBLEMS = {status: {"content": {PROBLEM_JSON: {}}, "description": text} for status, text in (
    (404, "Unknown token"), (410, "The link was used already or expired"), (422, "No token"))}


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def _view(session: Session, row: ContactConfirmation) -> dict[str, Any]:
    org = session.get(Organisation, row.organisation_id)
    return {"email": row.email, "organisation": org.name if org else None,
            "expires_at": iso(row.expires_at),
            "confirmed": row.confirmed_at is not None}


def _page(title: str, body: str) -> HTMLResponse:
    # No inline script or style: the page is under the service's Content-Security-Policy (breitband/headers.py).
    return HTMLResponse(f"""<!DOCTYPE html><html lang="de"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"></head><body>{body}</body></html>""")


@router.get(PATH, summary="What a confirmation link confirms (public; confirms nothing by itself)", responses=PROBLEMS)
def show_confirmation(request: Request, token: str = Query(..., min_length=1, max_length=100, description=TOKEN_DOC),
                      session: Session = Depends(get_read_session), now: datetime = Depends(clock.now)):
    view = _view(session, _find(session, token, now))
    if not _wants_html(request):
        return JSONResponse(view)
    e = {k: html.escape(str(v)) for k, v in view.items()}
    return _page("E-Mail-Adresse bestätigen", f"""<h1>E-Mail-Adresse bestätigen / Confirm your e-mail address</h1>
<p>{e['organisation']} hat <strong>{e['email']}</strong> als Kontakt für Anträge nach § 127 TKG angegeben. Bestätigen
Sie, dass Sie Nachrichten zu diesen Anträgen erhalten möchten. / {e['organisation']} named <strong>{e['email']}</strong>
as the contact for permit applications (§ 127 TKG). Confirm that you want to receive notices about them.</p>
<form method="post" action="{PATH}"><input type="hidden" name="token" value="{html.escape(token)}">
<button type="submit">Bestätigen / Confirm</button></form>
<p>Waren Sie das nicht, ignorieren Sie diese Seite: ohne Bestätigung erhalten Sie nichts. / If this was not you,
ignore this page: without confirmation you receive nothing.</p>""")


@router.post(PATH, summary="Confirm a contact address with the token of its link (public, single use)",
             responses=PROBLEMS)
def confirm_contact(request: Request, token: str = Form(..., min_length=1, max_length=100, description=TOKEN_DOC),
                    session: Session = write_session, now: datetime = Depends(clock.now)):
    row = confirm(session, token, now)
    view = _view(session, row)
    if not _wants_html(request):
        return JSONResponse(view)
    e = {k: html.escape(str(v)) for k, v in view.items()}
    return _page("Bestätigt", f"""<h1>Bestätigt / Confirmed</h1><p>{e['email']} erhält ab jetzt die Nachrichten von
{e['organisation']} zu ihren Anträgen. / {e['email']} now receives the notices of {e['organisation']} about its
applications.</p>""")


__all__ = ["ContactConfirmation", "is_confirmed", "request_confirmation", "confirm", "mark_confirmed",
           "own_addresses", "link", "router"]
