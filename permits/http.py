"""What the permit endpoints share: the roles they require, If-Match, Idempotency-Key and the command runner, the
clock dependency, and the answer with an attachment's stored file.

Commands are POSTs (state changes are never PATCHes of a status). Each command on an existing resource needs
``If-Match`` with the ETag last read (428 without, 412 when stale). Every POST honours ``Idempotency-Key``: the
same key with the same request returns the stored response (header ``Idempotent-Replayed: true``); the same key
with another request is 422. Keys are scoped per user.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from breitband.auth import require
from breitband.errors import PreconditionFailed, ProblemError, UnprocessableEntity
from breitband.identity import Principal
from breitband.models import Role
from permits import repository
from permits.applications import attachments as files

OPERATOR = require(Role.operator_member)
AUTHORITY = require(Role.authority_reviewer, Role.authority_admin)
ANYONE = require()
ETAG_RE = re.compile(r'^\s*"(\d{1,10})"\s*$')


def clock() -> datetime:
    """The current time. Tests override this dependency to control the clock; nothing else does."""
    return datetime.now(timezone.utc)


class PreconditionRequired(ProblemError):
    status, type, title = 428, "if-match-required", "Precondition required"


def expected_versions(request: Request) -> set[int]:
    header = request.headers.get("if-match")
    if header is None:
        raise PreconditionRequired("Send If-Match with the ETag you last read (e.g. If-Match: \"3\"); commands on "
                                   "an existing resource need it to avoid lost updates")
    versions = set()
    for part in header.split(","):
        m = ETAG_RE.match(part)
        if not m:
            raise PreconditionFailed(f"If-Match {header!r} names no version of this resource; send the ETag as "
                                     "read, e.g. \"3\" (weak ETags and * are not accepted)", type="stale-version")
        versions.add(int(m.group(1)))
    return versions


def fingerprint(request: Request, payload: Any) -> str:
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json", exclude_unset=True)
    text = json.dumps([request.method, request.url.path, payload], sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key (trimmed), None without one; 422 for a key no client would send."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise UnprocessableEntity("Idempotency-Key must be 1-255 printable ASCII characters (e.g. a UUID)",
                                  type="invalid-idempotency-key", field="Idempotency-Key")
    return key


def claim_request_key(request: Request, session: Session, principal: Principal, payload: Any):
    """Claim the request's Idempotency-Key for this request → (key, None) when this request owns it, (key, stored
    row) when the same request came before, (None, None) without a key; 422 when the key served another request."""
    key = idempotency_key(request)
    if key is None:
        return None, None
    fp = fingerprint(request, payload)
    stored = repository.claim_idempotency_key(session, principal.user_id, key, fp, request.method, request.url.path)
    if stored is not None and stored.fingerprint != fp:
        raise UnprocessableEntity(
            f"Idempotency-Key {key!r} was used for another request ({stored.method} {stored.path} with "
            "another body); use a new key for a new request", type="idempotency-key-reused",
            original={"method": stored.method, "path": stored.path})
    return key, stored


def run(request: Request, session: Session, principal: Principal, payload: Any,
        action: Callable[[], tuple[int, dict[str, Any], dict[str, str]]]) -> JSONResponse:
    """Execute a command once per Idempotency-Key; convert a lost optimistic-lock race into 412."""
    key, stored = claim_request_key(request, session, principal, payload)
    if stored is not None:
        return JSONResponse(stored.response_body, status_code=stored.response_status,
                            headers={**stored.response_headers, "Idempotent-Replayed": "true"})
    try:
        status, body, headers = action()
        session.flush()
    except StaleDataError:
        raise PreconditionFailed("The resource was changed by someone else at the same time; read it again",
                                 type="stale-version") from None
    if key is not None:
        repository.store_idempotent_response(session, principal.user_id, key, status, body, headers)
    return JSONResponse(body, status_code=status, headers=headers)


def attachment_response(request: Request, att) -> FileResponse:
    """The stored file of an attachment the caller may read (also for GET /statements/{id}/attachments/…)."""
    path = files.blob_path(request.app.state.settings.data_dir, att.sha256)
    if not path.exists():
        raise ProblemError(f"The stored file of attachment {att.id} is missing; the operators have been "
                           "told (quote the request id)", status=500, type="attachment-file-missing")
    return FileResponse(path, media_type=att.content_type, filename=att.file_name,
                        headers={"ETag": f'"{att.sha256}"', "X-Content-Type-Options": "nosniff"})
