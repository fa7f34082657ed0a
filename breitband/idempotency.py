"""Idempotency-Key (IETF draft-ietf-httpapi-idempotency-key-header), for every POST that creates or changes
something: the same key with the same request returns the stored response; the same key with another request is
422. Keys are scoped per user.

The key is claimed by inserting its row in the transaction of the request itself, before the work is done, and the
response is stored in the same transaction: a failed request leaves no key behind, and a concurrent retry with the
same key waits on the unique index until the first request commits (then it finds the stored response) or rolls
back (then it does the work). Used by the permit commands (``permits.http.run``) and by token creation
(``breitband.api``), which answers a repeated key differently because it never stores a secret.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from breitband.errors import UnprocessableEntity
from breitband.models import IdempotencyKey


def fingerprint(request: Request, payload: Any) -> str:
    """What makes two requests the same: method, path and the payload as sent (unset fields left out)."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json", exclude_unset=True)
    text = json.dumps([request.method, request.url.path, payload], sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def request_key(request: Request) -> str | None:
    """The request's Idempotency-Key (trimmed), None without one; 422 for a key no client would send."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise UnprocessableEntity("Idempotency-Key must be 1-255 printable ASCII characters (e.g. a UUID)",
                                  type="invalid-idempotency-key", field="Idempotency-Key")
    return key


def claim(request: Request, session: Session, user_id: uuid.UUID, payload: Any
          ) -> tuple[str | None, IdempotencyKey | None]:
    """Claim the request's Idempotency-Key for this request → (key, None) when this request owns it, (key, stored
    row) when the same request came before, (None, None) without a key; 422 when the key served another request."""
    key = request_key(request)
    if key is None:
        return None, None
    fp = fingerprint(request, payload)
    stored = claim_key(session, user_id, key, fp, request.method, request.url.path)
    if stored is not None and stored.fingerprint != fp:
        raise UnprocessableEntity(
            f"Idempotency-Key {key!r} was used for another request ({stored.method} {stored.path} with "
            "another body); use a new key for a new request", type="idempotency-key-reused",
            original={"method": stored.method, "path": stored.path})
    return key, stored


def claim_key(session: Session, user_id: uuid.UUID, key: str, fingerprint: str, method: str,
              path: str) -> IdempotencyKey | None:
    """Insert the key in the current transaction. → None when this request owns it now, else the stored row.
    A concurrent request with the same key blocks on the unique index until the owner commits or rolls back."""
    stmt = (insert(IdempotencyKey).values(user_id=user_id, key=key, fingerprint=fingerprint, method=method,
                                          path=path, response_headers={})
            .on_conflict_do_nothing(constraint="idempotency_key_per_user").returning(IdempotencyKey.id))
    if session.execute(stmt).scalar() is not None:
        return None
    return session.scalars(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id,
                                                        IdempotencyKey.key == key)).one()


def store_response(session: Session, user_id: uuid.UUID, key: str, status: int, body: Any,
                   headers: dict[str, str]) -> None:
    """Keep the response of the request that claimed ``key``, for a repetition of it."""
    row = session.scalars(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id,
                                                       IdempotencyKey.key == key)).one()
    row.response_status, row.response_body, row.response_headers = status, body, headers
    session.flush()


def replay(stored: IdempotencyKey) -> JSONResponse:
    """The stored response again, marked ``Idempotent-Replayed: true``."""
    return JSONResponse(stored.response_body, status_code=stored.response_status,
                        headers={**stored.response_headers, "Idempotent-Replayed": "true"})
