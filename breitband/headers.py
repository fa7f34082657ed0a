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

Headers an endpoint set itself win, except ``Cache-Control`` on the no-store paths.
"""

from __future__ import annotations

from breitband.settings import Settings

CSP = "; ".join((
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
))
NO_STORE_PREFIXES = ("/api/v1/", "/verify", "/contact-confirmations")
HSTS = "max-age=31536000; includeSubDomains"


def no_store(path: str) -> bool:
    return path == "/api/v1" or path.startswith(NO_STORE_PREFIXES)


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
               (b"referrer-policy", b"no-referrer"), (b"x-content-type-options", b"nosniff")]
    if settings.public_base_url.lower().startswith("https://"):
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


class SecurityHeadersMiddleware:
    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.headers = security_headers(settings)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = no_store(scope["path"])

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers") or []
                           if not (private and k.lower() == b"cache-control")]
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.headers if k not in present]
                if private:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app, settings: Settings) -> None:
    """Outermost but for the request context: also the 413/429 answers of the limits and a 500 carry the headers."""
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)


__all__ = ["install", "CSP", "SecurityHeadersMiddleware"]
