"""What the permit endpoints share: the roles they require, If-Match, the command runner (Idempotency-Key through
``breitband.idempotency``, a lost optimistic-lock race as 412), the answer with an ETag, and the answer with an
attachment's stored file.

Commands are POSTs (state changes are never PATCHes of a status). Each command on an existing resource needs
``If-Match`` with the ETag last read (428 without, 412 when stale). Every POST honours ``Idempotency-Key``: the
same key with the same request returns the stored response (header ``Idempotent-Replayed: true``); the same key
with another request is 422. Keys are scoped per user. Endpoints declare both for the OpenAPI
(``breitband.openapi.requires_if_match`` / ``honours_idempotency_key``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from breitband import idempotency
from breitband.auth import require
from breitband.errors import PreconditionFailed, ProblemError
from breitband.identity import Principal
from breitband.models import OPERATOR_ROLES, Role
from geo.exports import FORMATS, NotAcceptable, UnknownExportFormat, accepts_json
from permits.applications import attachments as files

OPERATOR = require(*OPERATOR_ROLES)
AUTHORITY = require(Role.authority_reviewer, Role.authority_admin)
ANYONE = require()
ETAG_RE = re.compile(r'^\s*"(\d{1,10})"\s*$')


class PreconditionRequired(ProblemError):
    status, type, title = 428, "if-match-required", "Precondition required"


# The answers of a list's json_list dependency, for the route's OpenAPI.
JSON_LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "`format` other than `json` (`unknown-export-format`, naming the export)"},
    406: {"description": "An Accept header that lets no JSON through (`not-acceptable`, naming the export)"},
}


def json_list(export_path: str):
    """The dependency of a JSON list that has an export (``/api/v1/exports/…``): ``Accept`` that lets no JSON
    through is 406 and ``format=`` other than ``json`` is 400, both naming the export with the same filters —
    instead of answering JSON to someone who asked for a CSV."""
    export = f"/api/v1/exports/{export_path}"
    formats = ", ".join(FORMATS)

    def check(request: Request, format: str | None = Query(
            None, description=f"Only `json`: the files ({formats}) are at `GET {export}` with the same filters")
            ) -> None:
        if format is not None and format.strip().lower() != "json":
            raise UnknownExportFormat(f"This list answers JSON only; for format={format[:40]!r} use GET {export}"
                                      f"?format=… ({formats}) with the same filters", parameter="format",
                                      supported=["json"], export=export)
        accept = request.headers.get("accept")
        if not accepts_json(accept):
            raise NotAcceptable(f"This list answers application/json only; files ({formats}) are at GET {export} "
                                "with the same filters", supported=["application/json"], export=export)

    return Depends(check)


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


def run(request: Request, session: Session, principal: Principal, payload: Any,
        action: Callable[[], tuple[int, dict[str, Any], dict[str, str]]]) -> JSONResponse:
    """Execute a command once per Idempotency-Key; convert a lost optimistic-lock race into 412."""
    key, stored = idempotency.claim(request, session, principal.user_id, payload)
    if stored is not None:
        return idempotency.replay(stored)
    try:
        status, body, headers = action()
        session.flush()
    except StaleDataError:
        raise PreconditionFailed("The resource was changed by someone else at the same time; read it again",
                                 type="stale-version") from None
    if key is not None:
        idempotency.store_response(session, principal.user_id, key, status, body, headers)
    return JSONResponse(body, status_code=status, headers=headers)


def etag_json(body: dict[str, Any]) -> JSONResponse:
    """A read of an application or case: the body, with its ETag (what a command's If-Match sends back)."""
    return JSONResponse(body, headers={"ETag": body["etag"]})


def attachment_response(request: Request, att) -> FileResponse:
    """The stored file of an attachment the caller may read (also for GET /statements/{id}/attachments/…)."""
    path = files.blob_path(request.app.state.settings.data_dir, att.sha256)
    if not path.exists():
        raise ProblemError(f"The stored file of attachment {att.id} is missing; the operators have been "
                           "told (quote the request id)", status=500, type="attachment-file-missing")
    return FileResponse(path, media_type=att.content_type, filename=att.file_name,
                        headers={"ETag": f'"{att.sha256}"', "X-Content-Type-Options": "nosniff"})
