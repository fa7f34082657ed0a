"""A real HTTP server in the test process that receives webhooks and can be told to fail or to answer slowly."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.waiting import free_port


@dataclass
class Hook:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


@dataclass
class WebhookReceiver:
    """A real HTTP server: answers ``fail_with`` (with ``fail_body``) to the first ``failures`` requests, then 204;
    each answer after ``delay_s``. Listens on ``host`` (127.0.0.1 unless told otherwise)."""

    port: int
    failures: int = 0
    fail_with: int = 500
    fail_body: bytes = b""
    delay_s: float = 0.0
    host: str = "127.0.0.1"
    requests: list[Hook] = field(default_factory=list)
    server: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/hooks/breitband"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                failing = sum(1 for r in receiver.requests if r.status >= 400) < receiver.failures
                status = receiver.fail_with if failing else 204
                answer = receiver.fail_body if failing else b""
                receiver.requests.append(Hook({k: v for k, v in self.headers.items()}, body, status, time.time()))
                time.sleep(receiver.delay_s)           # the slow receiver the test asked for
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        server_class = ThreadingHTTPServer
        if ":" in self.host:
            server_class = type("ThreadingHTTPServer6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        self.server = server_class((self.host, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def receiver():
    r = WebhookReceiver(port=free_port())
    r.start()
    yield r
    r.stop()
