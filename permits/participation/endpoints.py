"""Participation endpoints: statement requests for the bodies, and all statements of a case for the deciding
authority (with the proposed conditions ready to adopt into its decision)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.orm import Session

from breitband import clock
from breitband.auth import require
from breitband.db import get_read_session, write_session
from breitband.errors import UnprocessableEntity
from breitband.identity import Principal
from breitband.models import Role
from breitband.openapi import requires_if_match
from permits import repository
from permits.http import attachment_response, expected_versions
from permits.participation import statements
from permits.participation.models import StatementStatus

router = APIRouter(tags=["participation"])


@router.get("/statements", summary="Statement requests the caller may see (bodies: their own), by due date")
def list_statements(status: list[str] | None = Query(None), application_id: uuid.UUID | None = None,
                    limit: int = Query(50, ge=1, le=200), offset: int = Query(0, ge=0, le=1_000_000),
                    principal: Principal = Depends(require()),
                    session: Session = Depends(get_read_session), now: datetime = Depends(clock.now)
                    ) -> dict[str, Any]:
    bad = [s for s in status or [] if s not in {v.value for v in StatementStatus}]
    if bad:
        raise UnprocessableEntity(f"status: unknown {', '.join(bad)}", field="status")
    rows, more = statements.list_statements(session, principal, statuses=status, application_id=application_id,
                                            limit=limit, offset=offset)
    orgs = repository.organisations(session, [s.body_org_id for s in rows])
    return {"items": [statements.statement_out(session, principal, s, now, orgs=orgs) for s in rows],
            "limit": limit, "offset": offset, "has_more": more}


@router.get("/statements/{statement_id}", summary="One statement request (404 unless it is the caller's to see)")
def get_statement(statement_id: uuid.UUID, principal: Principal = Depends(require()),
                  session: Session = Depends(get_read_session), now: datetime = Depends(clock.now)) -> JSONResponse:
    body = statements.statement_out(session, principal, statements.get_statement(session, principal, statement_id),
                                    now, detail=True)
    return JSONResponse(body, headers={"ETag": body["etag"]})


@router.get("/statements/{statement_id}/attachments/{attachment_id}", response_class=FileResponse,
            summary="Download an attachment of the application the request is about (the body asked; 404 otherwise)")
def download_statement_attachment(request: Request, statement_id: uuid.UUID, attachment_id: uuid.UUID,
                                  principal: Principal = Depends(require()),
                                  session: Session = Depends(get_read_session)):
    return attachment_response(request, statements.get_subject_attachment(session, principal, statement_id,
                                                                          attachment_id))


@router.post("/statements/{statement_id}/answer",
             summary="Answer: agree | agree_with_conditions (proposed conditions) | object (reasons); If-Match")
@requires_if_match
def answer_statement(request: Request, statement_id: uuid.UUID, data: statements.AnswerIn,
                     principal: Principal = Depends(require(Role.authority_reviewer, Role.authority_admin)),
                     session: Session = write_session, now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    s = statements.answer(session, principal, statement_id, data, expected, now)
    body = statements.statement_out(session, principal, s, now, detail=True)
    return JSONResponse(body, headers={"ETag": body["etag"]})


@router.get("/cases/{case_id}/statements",
            summary="All statements on the case's application, and the proposed conditions ready to adopt into "
                    "POST /cases/{id}/decision (the case's authority, tenant admins)")
def case_statements(case_id: uuid.UUID, principal: Principal = Depends(require()),
                    session: Session = Depends(get_read_session), now: datetime = Depends(clock.now)
                    ) -> dict[str, Any]:
    return statements.for_case(session, principal, case_id, now)
