"""CORS for the GIS read endpoints, per tenant and off by default (a pure ASGI middleware, ``install``).

A tenant's own GIS portal (a web map on another origin, e.g. ``https://geoportal.hessen.de``) may read our tiles,
TileJSON, style, OGC API and exports from its scripts when the tenant's rules name that origin::

    [gis]
    cors_origins = ["https://geoportal.hessen.de"]

(validated by ``geo.rules.Gis``: https only but for localhost, no path, no ``*``). Which paths: those the app factory
names (``breitband.app.GIS_READ_PATHS``); every other path never gets CORS headers.

**Which tenant.** A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) carries no credentials, and the
OGC API and the per-caller tiles name no tenant in their URL, so the tenant of a preflight cannot be known: it is
answered for an origin that *some* tenant lists (and, where the URL says ``?tenant=KEY``, that tenant). That only
lets the browser send the real request. Whether the script may read the *answer* is decided on the answer, for the
tenant it is about: the caller's when a token (or session) identified one, else ``?tenant=`` (public tiles,
TileJSON, the style); when neither is known (an answer such as 401 or 400 ``tenant-required``, which holds no
tenant's data), for an origin some tenant lists. So a portal that Hessen allows reads Hessen's data, and a token of
another tenant used from that portal gets answers the browser does not hand to the script.

**No credentials.** ``Access-Control-Allow-Credentials`` is never sent: the portal's script sends the API token in
the ``Authorization`` header itself (it is named in ``Access-Control-Allow-Headers``), which needs no cookies. With
credentials allowed, any script of a listed origin could read with the session cookie of a person signed in to
Breitband in the same browser, without that person giving the portal a token. A request made with
``credentials: "include"`` therefore gets an answer the browser refuses to the script. ``*`` is never sent either.

**Caching.** Every answer on these paths carries ``Vary: Origin`` (besides what the endpoint varies on): the
``Access-Control-Allow-Origin`` of an answer depends on the request's origin, so a shared cache must not serve one
origin's answer (or an answer without CORS headers) to another. 304 answers carry the same CORS headers.

Origins no tenant lists, and requests without an ``Origin`` header or from our own origin (``public_base_url``),
get no CORS headers at all; a preflight from such an origin is answered 403 problem+json without them.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from breitband.db import Database
from breitband.errors import PROBLEM_JSON, TYPE_BASE

log = logging.getLogger("breitband.cors")

ALLOW_METHODS = ("GET", "HEAD")
ALLOW_HEADERS = ("Authorization", "Accept", "If-None-Match")
EXPOSE_HEADERS = ("ETag", "Content-Crs", "Link")
# How long a browser may keep a preflight's answer (Chromium caps it at 2 h). A removed origin still gets answers
# the browser refuses at once: only the permission to ask is cached.
MAX_AGE_S = 3600
_MAX_ORIGIN_CHARS = 300
# Which tenants list an origin is kept this long per process (a map view asks for dozens of tiles at once; the
# lookup is a statement and a thread hop each): a rules change reaches a running process within CACHE_S. At most
# CACHE_MAX origins are kept (any client can send any Origin); beyond that the cache starts afresh.
CACHE_S = 10.0
CACHE_MAX = 256
_TENANT = re.compile(r"^[a-z][a-z0-9-]{1,15}$")
# The tenants whose rules list the origin (geo.rules stores origins normalised, as browsers send them).
_TENANTS_SQL = text("SELECT key FROM tenants WHERE rules->'gis'->'cors_origins' @> CAST(:origins AS jsonb)")


def tenants_allowing(db: Database, origin: str) -> frozenset[str]:
    """Keys of the tenants whose rules list ``origin`` among ``[gis] cors_origins`` (one statement, on the replica:
    a rules change reaches it within its lag)."""
    with db.statement_session(readonly=True) as session:
        rows = session.execute(_TENANTS_SQL, {"origins": json.dumps([origin])}).scalars().all()
    return frozenset(rows)


def _own_origin(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class CorsMiddleware:
    def __init__(self, app, paths: Iterable[str], public_base_url: str) -> None:
        self.app = app
        # "/tiles/" covers what starts with it; "/api/v1/ogc" covers itself and what lies below it
        self.prefixes = tuple(p if p.endswith("/") else p + "/" for p in paths)
        self.exact = frozenset(p.rstrip("/") for p in paths if not p.endswith("/"))
        self.own_origin = _own_origin(public_base_url)
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def allowing(self, db: Database, origin: str) -> frozenset[str]:
        now = time.monotonic()
        hit = self._cache.get(origin)
        if hit is not None and now - hit[0] < CACHE_S:
            return hit[1]
        found = await anyio.to_thread.run_sync(tenants_allowing, db, origin)
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[origin] = (now, found)
        return found

    def covers(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.prefixes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        if not self.covers(path):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1").strip()
        state = scope.setdefault("state", {})     # shared with request.state: the principal lands here
        if not origin or origin.lower() == self.own_origin or len(origin) > _MAX_ORIGIN_CHARS:
            await self.app(scope, receive, _with_headers(send, lambda: []))
            return
        db: Database = scope["app"].state.db
        try:
            allowing = await self.allowing(db, origin)
            lookup_failed = False
        except SQLAlchemyError:
            log.warning("CORS: the tenants' origins could not be read", exc_info=True)
            allowing, lookup_failed = frozenset(), True
        asked_tenant = _tenant_param(scope)
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await self._preflight(scope, send, headers, origin, allowing, asked_tenant, lookup_failed)
            return

        def cors_headers() -> list[tuple[bytes, bytes]]:
            principal = state.get("principal")
            tenant = getattr(principal, "tenant_key", None) or asked_tenant
            allowed = tenant in allowing if tenant is not None else bool(allowing)
            if not allowed:
                return []
            return [(b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-expose-headers", ", ".join(EXPOSE_HEADERS).encode())]

        await self.app(scope, receive, _with_headers(send, cors_headers))

    async def _preflight(self, scope, send, headers: dict[bytes, bytes], origin: str, allowing: frozenset[str],
                         asked_tenant: str | None, lookup_failed: bool) -> None:
        method = headers[b"access-control-request-method"].decode("latin-1").strip()
        asked = [h.strip().lower() for h in headers.get(b"access-control-request-headers", b"").decode(
            "latin-1").split(",") if h.strip()]
        if lookup_failed:
            await _problem(send, scope, 503, "database-unavailable", "Service unavailable",
                           "The service cannot read which origins may use it right now; try again in a moment.",
                           extra_headers=[(b"retry-after", b"5")])
            return
        allowed = asked_tenant in allowing if asked_tenant is not None else bool(allowing)
        if not allowed:
            where = f"tenant {asked_tenant!r}" if asked_tenant else "any tenant"
            await _problem(send, scope, 403, "cors-origin-not-allowed", "Origin not allowed",
                           f"Scripts of {origin} may not read this service's GIS endpoints: the rules of {where} "
                           "do not list that origin ([gis] cors_origins).")
            return
        cors = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
        allowed_headers = {h.lower() for h in ALLOW_HEADERS}
        refused = [h for h in asked if h not in allowed_headers]
        if method not in ALLOW_METHODS or refused:
            what = (f"the method {method}" if method not in ALLOW_METHODS
                    else f"the header(s) {', '.join(refused)}")
            await _problem(send, scope, 403, "cors-request-not-allowed", "Cross-origin request not allowed",
                           f"The GIS endpoints are read-only: cross-origin requests may use the methods "
                           f"{', '.join(ALLOW_METHODS)} and the headers {', '.join(ALLOW_HEADERS)}, not {what}.",
                           extra_headers=cors)
            return
        await send({"type": "http.response.start", "status": 204, "headers": cors + [
            (b"access-control-allow-methods", ", ".join(ALLOW_METHODS).encode()),
            (b"access-control-allow-headers", ", ".join(ALLOW_HEADERS).encode()),
            (b"access-control-max-age", str(MAX_AGE_S).encode())]})
        await send({"type": "http.response.body", "body": b""})


def _tenant_param(scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("tenant")
    return values[-1] if values and _TENANT.match(values[-1]) else None


def _with_headers(send, extra):
    """``send`` that adds ``Vary: Origin`` (merged into the endpoint's Vary) and ``extra()`` to the answer."""

    async def wrapped(message):
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers") or []]
            vary = [v.decode("latin-1") for k, v in headers if k.lower() == b"vary"]
            names = [n.strip() for v in vary for n in v.split(",") if n.strip()]
            if not any(n.lower() == "origin" for n in names):
                names.append("Origin")
            headers = [(k, v) for k, v in headers if k.lower() != b"vary"]
            headers.append((b"vary", ", ".join(names).encode("latin-1")))
            headers += extra()
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _problem(send, scope, status: int, slug: str, title: str, detail: str,
                   extra_headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail,
            "instance": scope["path"]}
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(raw)).encode()), *extra_headers]})
    await send({"type": "http.response.body", "body": raw})


def install(app, paths: Iterable[str], public_base_url: str) -> None:
    """Outside the request context (a 500 it writes gets the CORS headers too), inside the security headers."""
    app.add_middleware(CorsMiddleware, paths=tuple(paths), public_base_url=public_base_url)


__all__ = ["install", "CorsMiddleware", "tenants_allowing", "ALLOW_METHODS", "ALLOW_HEADERS", "EXPOSE_HEADERS",
           "MAX_AGE_S"]
