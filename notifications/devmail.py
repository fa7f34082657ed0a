"""What the demo's mail catcher caught (notifications/mailcatcher.py), for tenant admins, when
``BREITBAND_DEV_MAIL=true``: ``GET /dev/mail`` (a page, German with English beside it) and ``GET /api/v1/dev/mail``
(JSON). Off (404) otherwise: production mail goes to a real server, and a page of every message sent would show
other organisations' notices."""

from __future__ import annotations

from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from breitband.auth import require
from breitband.dates import iso
from breitband.errors import NotFound
from breitband.identity import Principal
from breitband.models import Role
from notifications import mailcatcher

router = APIRouter(include_in_schema=False)
TENANT_ADMIN = require(Role.tenant_admin)
BERLIN = ZoneInfo("Europe/Berlin")

CSS = """
body { font: 15px/1.45 "DejaVu Sans", system-ui, sans-serif; margin: 0; color: #1d2430; background: #f4f5f7; }
header { background: #1d2430; color: #fff; padding: 12px 24px; }
header h1 { font-size: 18px; margin: 0; }
main { max-width: 960px; margin: 0 auto; padding: 16px 24px 48px; }
article { background: #fff; border: 1px solid #d8dce3; border-radius: 6px; margin: 12px 0; padding: 12px 16px; }
article h2 { font-size: 16px; margin: 0 0 4px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0 0 8px; font-size: 13px; }
dt { color: #5b6472; } dd { margin: 0; overflow-wrap: anywhere; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f8f9fb; padding: 8px; border-radius: 4px;
      font-size: 13px; max-height: 420px; overflow: auto; }
p.empty { color: #5b6472; }
"""


def _enabled(request: Request):
    settings = request.app.state.settings
    if not settings.dev_mail:
        raise NotFound("The mail catcher's view is off (BREITBAND_DEV_MAIL=true enables it in a demo)",
                       type="dev-mail-off")
    return mailcatcher.maildir_of(settings.data_dir)


def _as_dict(m: mailcatcher.CaughtMessage) -> dict[str, Any]:
    return {"id": m.key, "received_at": iso(m.received_at) if m.received_at else None, "from": m.sender,
            "to": m.recipients, "subject": m.subject, "text": m.text, "headers": m.headers}


@router.get("/api/v1/dev/mail")
def caught_mail_json(request: Request, limit: int = Query(50, ge=1, le=500),
                     principal: Principal = Depends(TENANT_ADMIN)) -> dict[str, Any]:
    return {"items": [_as_dict(m) for m in mailcatcher.read(_enabled(request), limit)]}


@router.get("/dev/mail.css")
def caught_mail_css() -> Response:
    return Response(CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=300"})


@router.get("/dev/mail", response_class=HTMLResponse)
def caught_mail_page(request: Request, limit: int = Query(50, ge=1, le=500),
                     principal: Principal = Depends(TENANT_ADMIN)) -> HTMLResponse:
    messages = mailcatcher.read(_enabled(request), limit)
    parts = ['<!doctype html><html lang="de"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>Abgefangene E-Mails – Breitband</title>",
             '<link rel="stylesheet" href="/dev/mail.css"></head><body>',
             "<header><h1>Abgefangene E-Mails <small>/ caught e-mails (demo)</small></h1></header><main>",
             "<p>Der Demo-Mailserver stellt nichts zu: hier steht jede Nachricht, die der Dienst versendet hat, "
             "die neueste zuerst. / The demo mail server delivers nothing: every message the service sent, "
             'newest first. <a href="/">Zurück zur Anwendung</a></p>']
    if not messages:
        parts.append('<p class="empty">Noch keine E-Mails. / No e-mails yet.</p>')
    for m in messages:
        when = m.received_at.astimezone(BERLIN).strftime("%d.%m.%Y, %H:%M Uhr") if m.received_at else "–"
        parts.append(
            f"<article><h2>{escape(m.subject) or '(ohne Betreff)'}</h2><dl>"
            f"<dt>Von</dt><dd>{escape(m.sender)}</dd><dt>An</dt><dd>{escape(', '.join(m.recipients))}</dd>"
            f"<dt>Datum</dt><dd>{escape(when)}</dd>"
            + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in sorted(m.headers.items()))
            + f"</dl><pre>{escape(m.text)}</pre></article>")
    parts.append("</main></body></html>")
    return HTMLResponse("".join(parts))
