"""RFC 9457 problem details: domain exceptions carry their HTTP status and render as application/problem+json."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://breitband.dev/problems/"

log = logging.getLogger("breitband.errors")


class ProblemError(Exception):
    """A domain error with an HTTP status and a stable problem type."""

    status: int = 400
    type: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, status: int | None = None, type: str | None = None,
                 title: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if title is not None:
            self.title = title
        self.headers = headers or {}
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class NotFound(ProblemError):
    status, type, title = 404, "not-found", "Not found"


class Unauthorized(ProblemError):
    status, type, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str, *, challenge: str = 'Bearer realm="breitband"', **extra: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": challenge}, **extra)


class Forbidden(ProblemError):
    status, type, title = 403, "forbidden", "Forbidden"


class Conflict(ProblemError):
    status, type, title = 409, "conflict", "Conflict"


class UnprocessableEntity(ProblemError):
    status, type, title = 422, "unprocessable-entity", "Unprocessable entity"


class PreconditionFailed(ProblemError):
    status, type, title = 412, "precondition-failed", "Precondition failed"


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _with_request_id(body: dict[str, Any], request: Request) -> dict[str, Any]:
    rid = _request_id(request)
    if rid:
        body["request_id"] = rid
    return body


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        body = _with_request_id(exc.to_problem(instance=request.url.path), request)
        return problem_response(exc.status, body, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            errors.append({"field": ".".join(loc), "loc": loc, "message": err.get("msg", ""),
                           "type": err.get("type", "")})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "Request validation failed"
        body = {
            "type": TYPE_BASE + "validation-error",
            "title": "Request validation failed",
            "status": 422,
            "detail": detail,
            "instance": request.url.path,
            "errors": errors,
        }
        return problem_response(422, _with_request_id(body, request))

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError):
        """A lost or refused database connection, or a statement over the time limit → 503 with Retry-After; any
        other database error is a bug: re-raised, logged with its traceback and answered 500."""
        timed_out = isinstance(exc.orig, psycopg.errors.QueryCanceled)
        if isinstance(exc.orig, psycopg.DataError):
            # A value the database cannot hold (out of range, NUL, invalid date) that no validation caught: the
            # client's input, not a failure of the service. The endpoint's own validation should name the field;
            # this is the last line, so that it is never a 500.
            log.warning("value refused by the database: %s", type(exc.orig).__name__)
            body = {"type": TYPE_BASE + "invalid-value", "title": "Invalid value", "status": 422,
                    "detail": "A value of the request cannot be stored or compared (out of range or with a "
                              "character such as NUL that is not allowed). Nothing was changed.",
                    "instance": request.url.path}
            return problem_response(422, _with_request_id(body, request))
        if not (exc.connection_invalidated or timed_out or isinstance(exc.orig, psycopg.OperationalError)):
            raise exc
        log.warning("database unavailable: %s", str(exc.orig or exc).strip().splitlines()[0])
        detail = ("The database did not finish this request in time." if timed_out else
                  "The database connection was lost or could not be made.")
        body = {
            "type": TYPE_BASE + ("database-timeout" if timed_out else "database-unavailable"),
            "title": "Service unavailable",
            "status": 503,
            "detail": detail + " Its transaction was rolled back unless the connection broke during the commit; "
                               "check before you repeat a command. Try again in a moment.",
            "instance": request.url.path,
        }
        return problem_response(503, _with_request_id(body, request), {"Retry-After": "2"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Authentication required",
                  403: "Forbidden", 413: "Payload too large", 415: "Unsupported media type"}
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, f"http-{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No resource at {request.method} {request.url.path}"
        body = {
            "type": TYPE_BASE + slug,
            "title": titles.get(exc.status_code, "HTTP error"),
            "status": exc.status_code,
            "detail": detail,
            "instance": request.url.path,
        }
        return problem_response(exc.status_code, _with_request_id(body, request), getattr(exc, "headers", None))


def internal_error_body(request_id: str | None, path: str) -> dict[str, Any]:
    body = {
        "type": TYPE_BASE + "internal-error",
        "title": "Internal server error",
        "status": 500,
        "detail": "The server could not complete the request. Quote the request id when reporting it.",
        "instance": path,
    }
    if request_id:
        body["request_id"] = request_id
    return body
