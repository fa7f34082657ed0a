"""Values no endpoint can store or read back, refused before any endpoint sees them.

PostgreSQL text cannot hold the NUL character (U+0000), so a NUL in any query parameter, path or JSON string would
end in a database error; JSON nested deeper than any real document (a GeoJSON MultiPolygon is 6 levels, a
FeatureCollection of them 9) costs recursion in every reader and, once stored, cannot be serialised again. Both are
answered here with 422 problem+json that says where: the query parameter, or the RFC 6901 JSON pointer of the value.

A pure ASGI middleware: query strings are checked without reading the body; a JSON body is read (its size is bounded
by the body-limit middleware outside this one) and handed on unchanged.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from breitband.errors import PROBLEM_JSON, TYPE_BASE

MAX_JSON_DEPTH = 32
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1
_INTEREST = _OPEN != 0
_INTEREST[ord('"')] = True


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays and objects in a JSON text (brackets inside strings ignored), without parsing it:
    vectorised over the quotes and brackets only, a few ms for a route at the limits."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return body.count(b"[") + body.count(b"{")
    if b"\\" in body:     # escaped backslashes and quotes are not string delimiters
        body = body.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    text = np.frombuffer(body, dtype=np.uint8)
    chars = text[np.flatnonzero(_INTEREST[text])]
    inside = (np.cumsum(chars == ord('"'), dtype=np.int32) & 1).astype(bool)
    steps = _OPEN[chars]
    steps[inside] = 0
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def _pointer(parts: list[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def find_nul(value: Any, path: list[Any] | None = None) -> str | None:
    """JSON pointer of the first string (or key) holding U+0000, or None."""
    stack: list[tuple[Any, list[Any]]] = [(value, path or [])]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return _pointer(where)
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if "\x00" in key:
                    return _pointer(where + [key])
                stack.append((child, where + [key]))
        elif isinstance(item, list):
            stack.extend((child, where + [i]) for i, child in reversed(list(enumerate(item))))
    return None


def _problem(path: str, type_: str, title: str, detail: str, **extra: Any) -> bytes:
    body = {"type": TYPE_BASE + type_, "title": title, "status": 422, "detail": detail, "instance": path, **extra}
    return json.dumps(body, ensure_ascii=False).encode()


def check_query(path: str, raw_query: bytes) -> bytes | None:
    if "\x00" in path:
        return _problem(path, "nul-character", "Invalid character",
                        "The path contains the NUL character (%00), which no name or identifier may hold.",
                        location="path")
    if b"%00" not in raw_query and b"\x00" not in raw_query:
        return None
    for name, value in parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True, encoding="utf-8",
                                 errors="replace"):
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "\\u0000")
            return _problem(path, "nul-character", "Invalid character",
                            f"The query parameter {shown!r} contains the NUL character (%00); remove it.",
                            location="query", parameter=shown)
    return None


def check_json(path: str, body: bytes) -> bytes | None:
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        return _problem(path, "json-too-deep", "JSON nested too deeply",
                        f"The JSON body is nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted "
                        "(a GeoJSON FeatureCollection needs 9).", location="body", depth=depth,
                        limit=MAX_JSON_DEPTH)
    if b"\\u0000" not in body:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None                  # not JSON: the endpoint's own validation says so
    pointer = find_nul(parsed)
    if pointer is None:
        return None                  # only an escaped backslash followed by "u0000"
    return _problem(path, "nul-character", "Invalid character",
                    f"The value at {pointer or '/'} contains the NUL character (\\u0000), which cannot be stored; "
                    "remove it.", location="body", pointer=pointer)


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for key, value in headers:
        if key == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return media.endswith(b"/json") or media.endswith(b"+json")
    return False


class InputGuardMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = check_query(scope.get("path", ""), scope.get("query_string", b""))
        if problem is None and scope["method"] in ("POST", "PUT", "PATCH") and _is_json(scope.get("headers") or []):
            chunks = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
            problem = check_json(scope.get("path", ""), body)
            if problem is None:
                replayed = False

                async def replay():
                    nonlocal replayed
                    if not replayed:
                        replayed = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

                await self.app(scope, replay, send)
                return
        if problem is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(problem)).encode())]
        rid = (scope.get("state") or {}).get("request_id")
        if rid:
            problem = problem[:-1] + f', "request_id": "{rid}"}}'.encode()
            headers[1] = (b"content-length", str(len(problem)).encode())
        await send({"type": "http.response.start", "status": 422, "headers": headers})
        await send({"type": "http.response.body", "body": problem})
