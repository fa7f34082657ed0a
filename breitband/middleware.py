"""Pure ASGI middleware: request id, one structured access log line per request, the request's metrics (latency by
route template, problem type; breitband/metrics.py), and a 500 problem+json for any unhandled exception (no
internals leak; the request id ties the response to the logged traceback)."""

from __future__ import annotations

import json
import logging
import re
import time

from breitband import metrics
from breitband.errors import PROBLEM_JSON, TYPE_BASE, internal_error_body
from breitband.logging import new_request_id, request_id_var

log = logging.getLogger("breitband.access")
_RID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PROBLEM_TYPE = re.compile(rb'"type"\s*:\s*"([^"]{1,200})"')


def _problem_type(body: bytes) -> str:
    found = _PROBLEM_TYPE.search(body)
    name = found.group(1).decode("utf-8", "replace") if found else "unknown"
    return name.removeprefix(TYPE_BASE) if name.startswith(TYPE_BASE) else "other"


class RequestContextMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _RID_OK.match(incoming) else new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status_holder = {"status": None}
        problem = bytearray()                        # a problem+json body, for its type (small: at most 64 kB read)
        is_problem = False

        async def send_wrapper(message):
            nonlocal is_problem
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers") or [])
                is_problem = any(k.lower() == b"content-type" and v.startswith(PROBLEM_JSON.encode())
                                 for k, v in headers)
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            elif is_problem and message["type"] == "http.response.body" and len(problem) < 65536:
                problem.extend(message.get("body", b"")[:65536])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled exception", extra={"method": scope["method"], "path": scope["path"]})
            if status_holder["status"] is None:
                body = json.dumps(internal_error_body(rid, scope["path"])).encode()
                problem.extend(body)
                await send_wrapper({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", PROBLEM_JSON.encode()),
                                                (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
        finally:
            seconds = time.perf_counter() - started
            log.info("request", extra={
                "method": scope["method"], "path": scope["path"], "status": status_holder["status"],
                "duration_ms": round(seconds * 1000, 2),
            })
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            status = status_holder["status"] or 500
            metrics.record_request(scope["method"], route, status, seconds,
                                   _problem_type(bytes(problem)) if is_problem else None)
            request_id_var.reset(token)
