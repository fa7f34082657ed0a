"""Request size limits and rate limits.

Size: ``LimitsMiddleware`` (pure ASGI) gives every request a body limit by its route template (``BODY_RULES``; every
other endpoint gets ``body_limit_mb``). A ``Content-Length`` over the limit is answered 413 before anything is read;
a body without one (chunked) is counted while it streams in and answered 413 the moment it passes the limit — the
rest is never read and the endpoint never runs.

Rates: counters in Redis (``limits_redis_url``), so every API process of a deployment shares them. A fixed window
per key starts with its first hit (one Lua script: INCR, PEXPIRE on the first hit, PTTL — atomic); over the limit the
answer is 429 problem+json with ``Retry-After`` = the seconds until that window ends. Limited are:

* failed authentications per client address (``breitband.auth.current_principal``): after N failures in the window
  further attempts get 429 before their token is even looked at;
* ``POST /verify`` (public) per client address, and ``POST /api/v1/resolve`` (with ``POST /api/v1/route-file``, the
  wizard's reading of a route file, on the same counter) per token (or browser session) and per client address —
  both in the middleware, before the body is read;
* webhook redelivery per token (``notifications.api.redeliver``).

The client address is the peer of the connection; behind a reverse proxy list the proxy's networks in
``trusted_proxies`` and the address is taken from ``X-Forwarded-For`` (the right-most hop that is not a trusted
proxy). When Redis cannot be reached the limits fail open: requests pass, a warning is logged (at most once per
``limits_redis_retry_s``), and Redis is not asked again for that long, so an outage costs no latency.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import fastapi.routing
import redis
from fastapi import FastAPI, Request
from starlette.requests import cookie_parser

from breitband.auth import current_principal
from breitband.errors import PROBLEM_JSON, TYPE_BASE, ProblemError
from breitband.identity import hash_token
from breitband.sessions import PLAIN_COOKIE, SECURE_COOKIE
from breitband.settings import Settings

log = logging.getLogger("breitband.limits")

MIB = 1 << 20

# Route templates (method, path as FastAPI declares it) → body limit class. Every other endpoint: "default".
# tests/test_limits.py checks that each template exists and that every endpoint taking a body is classed as expected.
ROUTE = "route"      # takes a route (GeoJSON, or a route file in any format): body_limit_route_mb
UPLOAD = "upload"    # multipart attachment upload: max_attachment_mb + body_limit_multipart_overhead_mb
VERIFY = "verify"    # multipart signed PDF: body_limit_verify_mb
DEFAULT = "default"  # body_limit_mb
BODY_RULES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/resolve"): ROUTE,
    ("POST", "/api/v1/route-file"): ROUTE,
    ("POST", "/api/v1/applications"): ROUTE,
    ("PUT", "/api/v1/applications/{application_id}/route"): ROUTE,
    ("PATCH", "/api/v1/applications/{application_id}"): ROUTE,
    ("POST", "/api/v1/applications/{application_id}/supplements"): ROUTE,
    ("POST", "/api/v1/applications/{application_id}/works-completion"): ROUTE,
    ("POST", "/api/v1/applications/{application_id}/attachments"): UPLOAD,
    ("POST", "/verify"): VERIFY,
}
# Rate limits applied by the middleware before the body is read: (method, template) → (limit name, keys).
RATE_RULES: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("POST", "/verify"): (("verify", "client"),),
    ("POST", "/api/v1/resolve"): (("resolve", "token"), ("resolve", "client")),
    ("POST", "/api/v1/route-file"): (("resolve", "token"), ("resolve", "client")),   # the wizard's file preview
}


# --- problems ----------------------------------------------------------------------------------------------------

class TooManyRequests(ProblemError):
    status, type, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, retry_after_s=retry_after, **extra)


class PayloadTooLarge(ProblemError):
    status, type, title = 413, "payload-too-large", "Payload too large"


def _fmt_bytes(n: int) -> str:
    return f"{n / MIB:g} MiB" if n >= MIB // 4 else f"{n / 1024:g} KiB"


# --- rates -------------------------------------------------------------------------------------------------------

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*s?\s*$")


@dataclass(frozen=True)
class Rate:
    count: int
    window_s: int

    @classmethod
    def parse(cls, spec: str) -> Rate | None:
        """``"20/60"`` (20 per 60 seconds) or ``"off"``."""
        if spec.strip().lower() == "off":
            return None
        m = _RATE.match(spec)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise ValueError(f"{spec!r} is not a rate such as '20/60' (20 per 60 seconds) or 'off'")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.count} per {self.window_s} s"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int = 0
    retry_after: int = 0


# KEYS[1] counter; ARGV[1] window in ms; ARGV[2] what this hit counts (1 for a request, N for N units of work).
# Returns {count after this hit, ms until the window ends}.
_HIT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if n == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


class RateLimiter:
    """Fixed-window counters in Redis. Thread-safe (redis-py's pool); never raises for Redis trouble (fail open)."""

    prefix = "breitband:rl:"

    def __init__(self, url: str, *, timeout_s: float = 0.2, retry_s: float = 5.0) -> None:
        self.url = url
        self.retry_s = retry_s
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                           retry_on_timeout=False)
        self._hit = self._redis.register_script(_HIT)
        self._down_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(settings.limits_redis_url, timeout_s=settings.limits_redis_timeout_s,
                   retry_s=settings.limits_redis_retry_s)

    def key(self, name: str, kind: str, ident: str) -> str:
        return f"{self.prefix}{name}:{kind}:{ident}"

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            if time.monotonic() < self._down_until:
                return
            self._down_until = time.monotonic() + self.retry_s
        log.warning("rate limits not enforced for %.0f s: Redis at %s unreachable (%s); requests pass (fail open)",
                    self.retry_s, _redacted(self.url), type(exc).__name__)

    def hit(self, name: str, kind: str, ident: str, rate: Rate, cost: int = 1) -> Verdict:
        """Count ``cost`` events (one request, or its units of work); allowed while the window holds at most
        ``rate.count`` of them."""
        if not self._available():
            return Verdict(True)
        try:
            n, ttl_ms = self._hit(keys=[self.key(name, kind, ident)], args=[rate.window_s * 1000, cost])
        except redis.RedisError as exc:
            self._failed(exc)
            return Verdict(True)
        n = int(n)
        if n > rate.count >= n - cost:
            log.info("rate limit %s per %s reached (%s)", name, kind, rate)
        return Verdict(n <= rate.count, n, max(1, math.ceil(int(ttl_ms) / 1000)))

    def peek(self, name: str, kind: str, ident: str, rate: Rate) -> Verdict:
        """Without counting: allowed while fewer than ``rate.count`` events are in the window."""
        if not self._available():
            return Verdict(True)
        try:
            pipe = self._redis.pipeline(transaction=False)
            key = self.key(name, kind, ident)
            n, ttl_ms = pipe.get(key).pttl(key).execute()
        except redis.RedisError as exc:
            self._failed(exc)
            return Verdict(True)
        n = int(n or 0)
        return Verdict(n < rate.count, n, max(1, math.ceil(int(ttl_ms) / 1000)) if int(ttl_ms) > 0 else 1)

    def close(self) -> None:
        self._redis.close()


def _redacted(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


def _rates(settings: Settings) -> dict[str, Rate | None]:
    return {"auth-failures": Rate.parse(settings.rate_limit_auth_failures),
            "verify:client": Rate.parse(settings.rate_limit_verify),
            "resolve:token": Rate.parse(settings.rate_limit_resolve_token),
            "resolve:client": Rate.parse(settings.rate_limit_resolve_client),
            "redeliver:token": Rate.parse(settings.rate_limit_redeliver_token),
            "resolve-features:token": Rate.parse(settings.rate_limit_resolve_features_token),
            "password-reset:client": Rate.parse(settings.rate_limit_password_reset)}


_WHAT = {"auth-failures": "failed authentications from your address", "verify": "document verifications",
         "resolve": "resolution requests", "redeliver": "webhook redeliveries",
         "resolve-features": "features resolved", "password-reset": "password reset requests"}
_PER = {"client": "from your address", "token": "with this token"}


def _too_many(name: str, kind: str, rate: Rate, verdict: Verdict) -> TooManyRequests:
    what = _WHAT.get(name, name)
    per = "" if name == "auth-failures" else " " + _PER[kind]
    return TooManyRequests(f"More than {rate.count} {what}{per} within {rate.window_s} s; "
                           f"try again in {verdict.retry_after} s", verdict.retry_after, limit=name,
                           limit_count=rate.count, window_s=rate.window_s)


# --- client address ------------------------------------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(scope: dict, trusted: tuple[Network, ...]) -> str:
    """The caller's address: the connection's peer, or — when the peer is a trusted proxy — the right-most
    ``X-Forwarded-For`` hop that is not a trusted proxy."""
    peer = str((scope.get("client") or ("unknown", 0))[0])
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops: list[str] = []
    for name, value in scope.get("headers") or ():
        if name == b"x-forwarded-for":
            hops += [h.strip() for h in value.decode("latin-1").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop[:64]
    return hops[0][:64] if hops else peer


def _is_trusted(addr: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def _bearer_key(scope: dict) -> str | None:
    """The key of the caller's credential for the per-token counters: the Bearer token, else the browser's session
    cookie (a signed-in person in the web app counts like a token), else None."""
    cookie = None
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                return hash_token(secret.strip())[:32]
            return None
        if name == b"cookie":
            cookie = cookie_parser(value.decode("latin-1"))
    if cookie:
        secret = cookie.get(SECURE_COOKIE) or cookie.get(PLAIN_COOKIE)
        if secret:
            return "s" + hash_token(secret)[:31]
    return None


# --- what endpoints call ------------------------------------------------------------------------------------------

class Limits:
    """The limits of one app (``app.state.limits``): parsed settings and the Redis counters."""

    def __init__(self, settings: Settings, limiter: RateLimiter | None = None) -> None:
        self.settings = settings
        self.limiter = limiter or RateLimiter.from_settings(settings)
        self.rates = _rates(settings)
        self.trusted = tuple(ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies)
        self.body_limits = {
            DEFAULT: int(settings.body_limit_mb * MIB),
            ROUTE: int(settings.body_limit_route_mb * MIB),
            UPLOAD: int((settings.max_attachment_mb + settings.body_limit_multipart_overhead_mb) * MIB),
            VERIFY: int(settings.body_limit_verify_mb * MIB),
        }

    def client(self, scope: dict) -> str:
        return client_address(scope, self.trusted)

    def check(self, name: str, kind: str, ident: str, cost: int = 1) -> None:
        """Count one request (or ``cost`` units of its work) for ``name`` per ``kind``; raise 429 over the limit."""
        rate = self.rates[f"{name}:{kind}"]
        if rate is None:
            return
        verdict = self.limiter.hit(name, kind, ident, rate, cost)
        if not verdict.allowed:
            raise _too_many(name, kind, rate, verdict)

    # authentication failures (breitband.auth; the middleware for requests with a body)
    def refuse_if_blocked(self, request: Request | dict) -> None:
        rate = self.rates["auth-failures"]
        if rate is None:
            return
        scope = request if isinstance(request, dict) else request.scope
        verdict = self.limiter.peek("auth-failures", "client", self.client(scope), rate)
        if not verdict.allowed:
            raise _too_many("auth-failures", "client", rate, verdict)

    def count_auth_failure(self, request: Request) -> None:
        rate = self.rates["auth-failures"]
        if rate is not None:
            self.limiter.hit("auth-failures", "client", self.client(request.scope), rate)


def of(request: Request) -> Limits:
    return request.app.state.limits


def check_token_rate(request: Request, name: str, token_id: object, cost: int = 1) -> None:
    """Per-token limit inside an endpoint (after authentication), e.g. ``check_token_rate(request, "redeliver",
    principal.token_id)``; ``cost``: units of work this request counts for (e.g. features to resolve)."""
    of(request).check(name, "token", str(token_id), cost)


# --- the middleware ------------------------------------------------------------------------------------------------

def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    rx = "".join(("[^/]+" if not p.endswith(":path}") else ".+") if p.startswith("{") else re.escape(p)
                 for p in parts)
    return re.compile(f"^{rx}$")


class _BodyTooLarge(Exception):
    pass


class LimitsMiddleware:
    """Body limits while streaming and the pre-body rate limits of ``RATE_RULES``."""

    def __init__(self, app, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self._body = [(method, _template_regex(t), t, cls) for (method, t), cls in BODY_RULES.items()]
        self._rates = [(method, _template_regex(t), rules) for (method, t), rules in RATE_RULES.items()]
        self._templates: list[tuple[frozenset[str], re.Pattern[str], str]] | None = None
        self._authenticated: list[tuple[str, re.Pattern[str]]] = []

    def body_rule(self, method: str, path: str) -> tuple[str, int, str]:
        """(limit class, bytes, endpoint as 'METHOD template') of a request."""
        for m, rx, template, cls in self._body:
            if m == method and rx.match(path):
                return cls, self.limits.body_limits[cls], f"{method} {template}"
        for methods, rx, template in self._templates or ():
            if method in methods and rx.match(path):
                return DEFAULT, self.limits.body_limits[DEFAULT], f"{method} {template}"
        return DEFAULT, self.limits.body_limits[DEFAULT], f"{method} {path}"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._templates is None:   # the app's routes are complete once it serves (they name the endpoint)
            self._templates = [(frozenset(methods), _template_regex(path), path)
                               for methods, path, _ in _api_routes(scope["app"])]
            self._authenticated = [(m, _template_regex(p)) for m, p in _authenticated_operations(scope["app"])]
        method, path = scope["method"], scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root):] or "/"

        for m, rx, rules in self._rates:
            if m == method and rx.match(path):
                try:
                    await anyio.to_thread.run_sync(self._check_rates, scope, rules)
                except TooManyRequests as exc:
                    await self._problem(scope, send, exc)
                    return
                break

        _, limit, endpoint = self.body_rule(method, path)
        declared = _content_length(scope)
        has_body = bool(declared) or any(name == b"transfer-encoding" for name, _ in scope.get("headers") or ())
        if has_body and any(m == method and rx.match(path) for m, rx in self._authenticated):
            # FastAPI reads and parses a body before the endpoint's dependencies authenticate the caller: what
            # authentication will refuse is refused here, before the body is read — an address blocked for failed
            # authentications (429), and a body without a token is held to the default limit.
            try:
                await anyio.to_thread.run_sync(self.limits.refuse_if_blocked, scope)
            except TooManyRequests as exc:
                await self._problem(scope, send, exc)
                return
            if _bearer_key(scope) is None and limit > self.limits.body_limits[DEFAULT]:
                limit, endpoint = self.limits.body_limits[DEFAULT], endpoint + " without a token"
        if declared is not None and declared > limit:
            await self._problem(scope, send, _too_large(limit, endpoint, declared=declared))
            return

        received = 0
        state = {"started": False, "answered": False}

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body") or b"")
                if received > limit:
                    if not state["started"]:
                        await self._problem(scope, send, _too_large(limit, endpoint))
                        state["answered"] = True
                    raise _BodyTooLarge(endpoint)
            return message

        async def guarded_send(message):
            if state["answered"]:
                return   # the app's answer to the aborted read (e.g. FastAPI's 400) is dropped: ours went out
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["answered"]:
                raise

    def _check_rates(self, scope: dict, rules: tuple[tuple[str, str], ...]) -> None:
        """Every counter of the request counts it (a request refused per token still counts for its address);
        the first one over its limit answers."""
        refused = None
        for name, kind in rules:
            ident = self.limits.client(scope) if kind == "client" else _bearer_key(scope)
            if ident is None:
                continue
            try:
                self.limits.check(name, kind, ident)
            except TooManyRequests as exc:
                refused = refused or exc
        if refused is not None:
            raise refused

    async def _problem(self, scope: dict, send, exc: ProblemError) -> None:
        problem = exc.to_problem(instance=scope["path"])
        rid = (scope.get("state") or {}).get("request_id")
        if rid:
            problem["request_id"] = rid
        body = json.dumps(problem).encode()
        headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int, endpoint: str, declared: int | None = None) -> PayloadTooLarge:
    size = f"The body has {declared} bytes" if declared is not None else "The body passed"
    return PayloadTooLarge(f"{size}; {endpoint} accepts at most {_fmt_bytes(limit)} ({limit} bytes)",
                           limit_bytes=limit, endpoint=endpoint)


# --- the app ---------------------------------------------------------------------------------------------------

def install(app: FastAPI, settings: Settings) -> Limits:
    """Register the middleware (call before the request-context middleware, so it runs inside it and its answers
    carry the request id and are logged) and document 413/429 in the OpenAPI."""
    limits = Limits(settings)
    app.state.limits = limits
    app.add_middleware(LimitsMiddleware, limits=limits)
    _document(app, limits)
    return limits


_PROBLEM_SCHEMA = {
    "type": "object", "description": "RFC 9457 problem details",
    "properties": {"type": {"type": "string", "format": "uri"}, "title": {"type": "string"},
                   "status": {"type": "integer"}, "detail": {"type": "string"}, "instance": {"type": "string"},
                   "request_id": {"type": "string"}},
    "required": ["type", "title", "status", "detail"],
}


def _document(app: FastAPI, limits: Limits) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        add_limit_responses(app, schema, limits)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_limit_responses(app: FastAPI, schema: dict[str, Any], limits: Limits) -> None:
    """413 on every operation that takes a body (with its limit), 429 on every operation that authenticates or
    has a rate limit of its own. Idempotent."""
    schema.setdefault("components", {}).setdefault("schemas", {}).setdefault("Problem", _PROBLEM_SCHEMA)
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    authenticated = _authenticated_operations(app)
    middleware = LimitsMiddleware(None, limits)
    own_rates = {key: ", ".join(f"{n} per {k}" for n, k in rules) for key, rules in RATE_RULES.items()}
    own_rates[("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")] = "redeliver per token"
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            key = (method.upper(), path)
            responses = op["responses"]
            if "requestBody" in op:
                _, limit, _ = middleware.body_rule(method.upper(), path)
                responses.setdefault("413", {
                    "description": f"Request body larger than {_fmt_bytes(limit)} "
                                   f"(type {TYPE_BASE}payload-too-large)", "content": problem})
            reasons = []
            if key in own_rates:
                reasons.append(f"rate limit ({own_rates[key]})")
            if key in authenticated:
                reasons.append("too many failed authentications from this address")
            if reasons:
                responses.setdefault("429", {
                    "description": "Too many requests: " + "; ".join(reasons) + ". Retry after the seconds in "
                                   "Retry-After.",
                    "headers": {"Retry-After": {"schema": {"type": "integer"},
                                                "description": "Seconds until the window frees"}},
                    "content": problem})


def _api_routes(app) -> list[tuple[set[str], str, Any]]:
    """(methods, path template, route) of the app's endpoints, also those of included routers (which FastAPI
    0.16x keeps lazily inside ``app.routes``)."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = list(iter_contexts(app.routes)) if iter_contexts else list(app.routes)
    return [(set(getattr(r, "methods", None) or ()), r.path_format, r) for r in routes
            if getattr(r, "path_format", None) and getattr(r, "dependant", None) is not None]


def _authenticated_operations(app: FastAPI) -> set[tuple[str, str]]:
    """(METHOD, template) of the routes that authenticate: a ``require``/``current_principal`` dependency, or an
    endpoint that calls ``current_principal`` itself (the tiles, whose token is optional)."""
    out: set[tuple[str, str]] = set()
    for methods, path, route in _api_routes(app):
        dependant = route.dependant
        calls, stack = [], [dependant]
        while stack:
            d = stack.pop()
            calls.append(d.call)
            stack.extend(d.dependencies)
        endpoint = getattr(route, "endpoint", None)
        module = getattr(endpoint, "__module__", "") or ""
        if (any(c is current_principal or getattr(c, "__name__", "").startswith("require_") for c in calls)
                or module == "geo.tiles_api"):
            out |= {(m, path) for m in methods}
    return out
