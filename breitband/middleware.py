"""Pure ASGI middleware: request id, one structured access log line per request, and a 500 problem+json for any
unhandled exception (no internals leak; the request id ties the response to the logged traceback)."""

from __future__ import annotations

import json
import logging
import re
import time

from breitband.errors import PROBLEM_JSON, internal_error_body
from breitband.logging import new_request_id, request_id_var

log = logging.getLogger("breitband.access")
_RID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled exception", extra={"method": scope["method"], "path": scope["path"]})
            if status_holder["status"] is None:
                body = json.dumps(internal_error_body(rid, scope["path"])).encode()
                await send_wrapper({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", PROBLEM_JSON.encode()),
                                                (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
        finally:
            log.info("request", extra={
                "method": scope["method"], "path": scope["path"], "status": status_holder["status"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            })
            request_id_var.reset(token)
