"""E-mail over SMTP (settings ``smtp_host``, ``smtp_port``, ``smtp_sender``; optional STARTTLS and login).

The text comes from the tenant's template ``email/<event type>.txt.j2`` (else ``email/default.txt.j2``): the
template sets ``subject`` and renders the body, German first, English second. The Message-ID is derived from the
delivery id, so a message that had to be sent again carries the same Message-ID and receivers can drop the copy.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from breitband import clock
from breitband.settings import Settings
from notifications import templates
from notifications.jobs import Job, Outcome


def render(tenant_key: str, event: dict[str, Any], context: dict[str, Any]) -> tuple[str, str]:
    """→ (subject, body) of the e-mail about ``event`` for one recipient."""
    # A recipient's context may name its own template (e.g. "contact.confirm": the request to confirm an address,
    # sent instead of the notice about the event).
    own = [f"email/{context['template']}.txt.j2"] if context.get("template") else []
    template = templates.select(tenant_key, [*own, f"email/{event['type']}.txt.j2", "email/default.txt.j2"])
    module = template.make_module({"event": event, "data": event.get("data") or {}, "tenant_key": tenant_key,
                                   **context})
    subject = " ".join(str(getattr(module, "subject", "")).split()) or f"Breitband: {event['type']}"
    return subject, str(module).strip() + "\n"


def message_id(delivery_id: Any, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "breitband.localhost"
    return f"<{delivery_id}@{domain}>"


def build(job: Job, settings: Settings) -> EmailMessage:
    subject, body = render(job.tenant_key, job.event, job.context)
    msg = EmailMessage()
    msg["From"] = settings.smtp_sender
    msg["To"] = job.target
    msg["Subject"] = subject
    msg["Date"] = formatdate(clock.now().timestamp(), usegmt=True)
    msg["Message-ID"] = message_id(job.delivery_id, settings.smtp_sender)
    msg["X-Breitband-Event-Id"] = job.event["id"]
    msg["X-Breitband-Event-Type"] = job.event["type"]
    msg["Auto-Submitted"] = "auto-generated"
    if job.request_id:
        msg["X-Request-ID"] = job.request_id
    msg.set_content(body)
    return msg


def send_email(job: Job, settings: Settings) -> Outcome:
    msg = build(job, settings)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        return Outcome(ok=False, response_status=code, response_excerpt=_text(reply),
                       error=f"recipient refused: {code} {_text(reply)}", permanent=500 <= code < 600)
    except smtplib.SMTPResponseException as exc:
        return Outcome(ok=False, response_status=exc.smtp_code, response_excerpt=_text(exc.smtp_error),
                       error=f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}")
    except (OSError, smtplib.SMTPException) as exc:
        return Outcome(ok=False, error=f"SMTP server {settings.smtp_host}:{settings.smtp_port} not reachable: "
                                       f"{type(exc).__name__}: {exc}")
    return Outcome(ok=True, response_status=250, response_excerpt=f"accepted by {settings.smtp_host}")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
