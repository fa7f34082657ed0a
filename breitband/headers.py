"""Security headers on every HTTP response, in one place (a pure ASGI middleware, ``install``).

* ``Content-Security-Policy`` (``CSP``): only our own scripts, no inline script and no ``eval`` anywhere: the web
  app (web/dist: Vite emits external module scripts only), the API documentation at ``/docs`` (our own HTML with an
  external init script, breitband/web.py) and the public /verify page. What MapLibre needs (checked in Chromium,
  tests/web asserts that no CSP violation is logged):

  - ``worker-src 'self' blob:``: the map's worker is our bundled ``/assets/maplibre-gl-worker-*.mjs``
    (web/src/map.js ``setWorkerUrl``); ``blob:`` stays allowed because MapLibre falls back to a blob worker when
    no worker URL is set (the CSP build documented by MapLibre);
  - ``img-src 'self' data: blob:``: sprites and images decoded from blobs, icons in MapLibre's CSS as data: URIs;
  - ``connect-src 'self'``: style, TileJSON and tiles come from our own origin (web/src/map.js rewrites the URLs);
  - ``style-src 'self'`` without ``'unsafe-inline'``: MapLibre and Swagger UI set styles through the CSSOM
    (``element.style.x = …``), which a CSP does not restrict; neither inserts ``<style>`` elements or ``style=``
    attributes in markup, so ``'unsafe-inline'`` is not needed (verified: no violation in Chromium's console).

  ``frame-ancestors 'none'`` (and ``X-Frame-Options: DENY`` for older browsers): no page of ours in a frame
  (clickjacking of decisions); ``base-uri 'none'``, ``object-src 'none'``, ``form-action 'self'``.
* ``Referrer-Policy: no-referrer``: URLs of ours carry ids (``/#/case/…``, ``/verify/{id}``) and single-use
  confirmation tokens (``/contact-confirmations/…``); the app links to no other site and needs no Referer from
  its own pages (API calls authenticate with a bearer token, not by origin), so nothing is sent anywhere.
* ``X-Content-Type-Options: nosniff`` everywhere.
* ``Cache-Control: no-store`` on what carries personal data: every answer under ``/api/v1``, ``/verify`` and the
  contact confirmation pages, whatever the endpoint set (an ETag still works for optimistic locking; a browser or
  proxy just keeps no copy). Not touched: ``/tiles`` and ``/styles`` (their own ``Cache-Control``: public layers
  cacheable, per-caller ones ``private, no-cache``), the web app's hashed assets (immutable) and its page.
* ``Strict-Transport-Security`` only when ``public_base_url`` is https (a plain-http development server must not
  tell a browser to insist on https for localhost).

* External base layers (a tenant's ``[[map.base_layers]]``, geo/rules.py ``BaseLayer``): the origin of each
  configured one is added to ``img-src`` and ``connect-src`` (MapLibre fetches raster tiles), and only then; with
  none configured the policy is exactly ``CSP``. The origins are read from the tenants' rules at most every
  ``csp_refresh_s`` seconds (``BaseLayerOrigins``), in a worker thread; a failed read keeps the last ones.

Headers an endpoint set itself win, except ``Cache-Control`` on the no-store paths.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import anyio.to_thread
from sqlalchemy import text

from breitband.settings import Settings

log = logging.getLogger("breitband.headers")

CSP_DIRECTIVES = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "child-src 'self' blob:",
    "frame-ancestors 'none'",
    "frame-src 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
)
CSP = "; ".join(CSP_DIRECTIVES)
# the directives that get the origins of configured external base layers
EXTERNAL_LAYER_DIRECTIVES = ("img-src", "connect-src")
_BASE_LAYER_URLS = text("SELECT DISTINCT b->>'url' FROM tenants "
                        "CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(rules->'map'->'base_layers') "
                        "= 'array' THEN rules->'map'->'base_layers' ELSE '[]'::jsonb END) AS b")


def csp_with(origins: list[str]) -> str:
    """The policy with these origins added to ``img-src`` and ``connect-src``; exactly ``CSP`` without any."""
    if not origins:
        return CSP
    extra = " ".join(origins)
    return "; ".join(f"{d} {extra}" if d.split()[0] in EXTERNAL_LAYER_DIRECTIVES else d for d in CSP_DIRECTIVES)


def origin_of(url: str) -> str | None:
    """scheme://host[:port] of an https (or local http) URL; None for anything else (the rules refuse those)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc \
            or any(c in parts.netloc for c in " ;,'\""):
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class BaseLayerOrigins:
    """The origins of the external base layers all tenants configure, read at most every ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.origins: list[str] = []
        self.read_at: float | None = None

    def read(self, db) -> list[str]:
        with db.statement_session(readonly=True) as session:
            urls = session.execute(_BASE_LAYER_URLS).scalars().all()
        return sorted({o for o in (origin_of(u) for u in urls if u) if o})

    async def current(self, app) -> list[str]:
        now = time.monotonic()
        if self.read_at is None or now - self.read_at >= self.ttl:
            db = getattr(getattr(app, "state", None), "db", None)
            if db is not None:
                try:
                    self.origins = await anyio.to_thread.run_sync(self.read, db)
                except Exception as exc:   # the database is down: keep the last origins, say so, try again later
                    log.warning("base layer origins not read: %s", str(exc).splitlines()[0] if str(exc) else exc)
            self.read_at = now
        return self.origins

    def clear(self) -> None:
        """Read again on the next request (after a change of rules)."""
        self.read_at = None
NO_STORE_PREFIXES = ("/api/v1/", "/verify", "/contact-confirmations")
HSTS = "max-age=31536000; includeSubDomains"


def no_store(path: str) -> bool:
    return path == "/api/v1" or path.startswith(NO_STORE_PREFIXES)


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    """The fixed headers (the CSP is added per response: it depends on the configured base layers)."""
    headers = [(b"x-frame-options", b"DENY"),
               (b"referrer-policy", b"no-referrer"), (b"x-content-type-options", b"nosniff")]
    if settings.public_base_url.lower().startswith("https://"):
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


class SecurityHeadersMiddleware:
    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.headers = security_headers(settings)
        self.base_layers = BaseLayerOrigins(settings.csp_refresh_s)
        self._csp: tuple[list[str], bytes] = ([], CSP.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = no_store(scope["path"])
        app = scope.get("app")
        if app is not None and getattr(app.state, "csp_base_layers", None) is None:
            app.state.csp_base_layers = self.base_layers      # so that a change of rules can clear it
        origins = await self.base_layers.current(app)
        if origins != self._csp[0]:
            self._csp = (origins, csp_with(origins).encode())
        fixed = [(b"content-security-policy", self._csp[1]), *self.headers]

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers") or []
                           if not (private and k.lower() == b"cache-control")]
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in fixed if k not in present]
                if private:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app, settings: Settings) -> None:
    """Outermost but for the request context: also the 413/429 answers of the limits and a 500 carry the headers."""
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)


__all__ = ["install", "CSP", "SecurityHeadersMiddleware", "BaseLayerOrigins", "csp_with"]
