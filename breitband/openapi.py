"""The error answers of every operation in the OpenAPI, derived from the routes themselves.

FastAPI documents only a route's own answer and a 422 in its default validation shape (``application/json``), but
every error of this service is RFC 9457 ``application/problem+json`` (breitband/errors.py). This adds to each
operation the problem answers it can give, decided from what the route depends on and from what its endpoint
declares (the markers ``requires_if_match`` and ``honours_idempotency_key``) rather than from a hand list:

- 401 when it authenticates (``require``/``current_principal``; the tiles when a token is sent);
- 403 when its ``require`` names fewer than all roles, and on commands (non-GET), whose services refuse callers of
  the right role but the wrong organisation (e.g. ``not-your-case``);
- 400 when it takes a body (one that cannot be parsed as JSON or multipart);
- 404 when it has path parameters (an id that does not exist or is not the caller's is 404, never 403) or names a
  tenant;
- 409 on commands (illegal transition, a token cap, a document being generated);
- 412 and 428 and a required ``If-Match`` header when the endpoint declares ``@requires_if_match`` (it reads
  If-Match with ``permits.http.expected_versions``);
- an optional ``Idempotency-Key`` header when the endpoint declares ``@honours_idempotency_key`` (it keeps its
  responses per key with ``breitband.idempotency``; 422 for a key used for another request);
- 422 on every operation: parameters and bodies, domain rules, and the input guard (a NUL or too deep JSON in any
  request, breitband/input_guard.py);
- 503 with ``Retry-After`` on every operation that uses the database (all but ``/healthz``).

Security: the schemes ``bearer`` (API token), ``session`` (the browser's cookie, breitband/sessions.py) and
``basic`` (the token as the password, on the read-only GIS endpoints only) are declared once; every operation that
authenticates names bearer or session, and its unsafe ones (POST, PUT, PATCH, DELETE) the ``X-CSRF-Token`` header,
which a request signed in by the cookie must send (403 ``csrf-token-missing`` / ``-invalid``).

413 and 429 come from breitband/limits.py. ``install`` wraps ``app.openapi`` once; the additions are idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI

from breitband import sessions
from breitband.auth import BASIC_METHODS
from breitband.errors import PROBLEM_JSON, TYPE_BASE
from breitband.limits import _PROBLEM_SCHEMA, _api_routes, _authenticated_operations
from breitband.models import Role

PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
# The read-only GIS endpoints, which also take HTTP Basic with a token as the password (breitband/auth.py).
GIS_PATHS = ("/api/v1/ogc", "/tiles/", "/styles/")
PUBLIC_GIS_PATHS = ("/tiles/", "/styles/")
NO_DATABASE = {("GET", "/healthz")}
ETAG_PATTERN = r'^\s*"\d{1,10}"\s*(,\s*"\d{1,10}"\s*)*$'
IF_MATCH = {"name": "If-Match", "in": "header", "required": True,
            "description": "The ETag last read of the application or case, e.g. \"3\" (428 without, 412 when "
                           "stale; weak ETags and * are not accepted)",
            "schema": {"type": "string", "pattern": ETAG_PATTERN}}
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "description": "Repeat the request safely: the same key with the same request returns the stored "
                                  "response (Idempotent-Replayed: true); with another request 422. 1-255 printable "
                                  "ASCII characters, e.g. a UUID",
                   "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]([ -~]*[!-~])?$"}}


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def requires_if_match(endpoint: Endpoint) -> Endpoint:
    """Declare that the endpoint requires If-Match (it calls ``permits.http.expected_versions``): documented as a
    required header with the answers 412 and 428. Put it under the route decorator."""
    endpoint._requires_if_match = True  # type: ignore[attr-defined]
    return endpoint


def honours_idempotency_key(endpoint: Endpoint) -> Endpoint:
    """Declare that the endpoint keeps its responses per Idempotency-Key (``breitband.idempotency``, e.g. through
    ``permits.http.run``): documented as an optional header. Put it under the route decorator."""
    endpoint._honours_idempotency_key = True  # type: ignore[attr-defined]
    return endpoint


def install(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        add_problem_responses(app, schema)
        add_security(app, schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _dependency_names(route: Any) -> set[str]:
    names, stack = set(), [route.dependant]
    while stack:
        d = stack.pop()
        names.add(getattr(d.call, "__name__", "") or "")
        stack.extend(d.dependencies)
    return names


def _restricted(dependency_names: set[str]) -> bool:
    everyone = "require_" + "_or_".join(sorted(r.value for r in Role))
    return any(n.startswith("require_") and n != everyone for n in dependency_names)


def _response(text: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": text, "content": PROBLEM}
    if headers:
        out["headers"] = headers
    return out


def add_problem_responses(app: FastAPI, schema: dict[str, Any]) -> None:
    schema.setdefault("components", {}).setdefault("schemas", {}).setdefault("Problem", _PROBLEM_SCHEMA)
    authenticated = _authenticated_operations(app)
    routes = {(m, path): route for methods, path, route in _api_routes(app) for m in methods}
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            key = (method.upper(), path)
            route = routes.get(key)
            responses = op["responses"]
            endpoint = getattr(route, "endpoint", None)
            deps = _dependency_names(route) if route is not None else set()
            command = key[0] != "GET"
            if key in authenticated:
                responses.setdefault("401", _response(
                    "No, an unknown, an expired or a revoked token, or an ended or expired session (types "
                    "token-missing, token-invalid, token-expired, token-revoked, session-ended, session-expired, "
                    "user-deactivated)",
                    {"WWW-Authenticate": {"schema": {"type": "string"}}}))
                if _restricted(deps) or command:
                    responses.setdefault("403", _response("The caller's role or organisation may not do this"))
            if "{" in path or any(p.get("name") == "tenant" for p in op.get("parameters", [])):
                responses.setdefault("404", _response("No such object (or tenant), or not one the caller may see"))
            if "requestBody" in op:
                responses.setdefault("400", _response("The body cannot be parsed (not JSON, or broken multipart)"))
            if command and key in authenticated:
                responses.setdefault("409", _response("Not possible in the object's current state"))
            if getattr(endpoint, "_requires_if_match", False):
                responses.setdefault("412", _response("If-Match names another version than the current one"))
                responses.setdefault("428", _response("If-Match is missing"))
                _add_parameter(op, IF_MATCH)
            if getattr(endpoint, "_honours_idempotency_key", False):
                _add_parameter(op, IDEMPOTENCY_KEY)
            # FastAPI's 422 says application/json with its own shape; ours is a problem (type validation-error with
            # `errors`, or a domain rule's type). Replaced, not added to.
            existing = responses.get("422", {})
            responses["422"] = _response(
                existing.get("description") if existing.get("description") not in (None, "Validation Error")
                else f"Invalid input: parameters or body (type {TYPE_BASE}validation-error with errors), a domain "
                     "rule, or a NUL character or too deeply nested JSON anywhere in the request")
            if key not in NO_DATABASE:
                responses.setdefault("503", _response(
                    "The database is unavailable or did not answer in time; try again after Retry-After",
                    {"Retry-After": {"schema": {"type": "integer"}}}))


CSRF_TOKEN = {"name": sessions.CSRF_HEADER, "in": "header", "required": False,
              "description": "Required when the request is signed in by the session cookie (not with a Bearer "
                             "token): the session's CSRF token from POST /api/v1/auth/login or GET "
                             "/api/v1/auth/session (403 csrf-token-missing / csrf-token-invalid otherwise)",
              "schema": {"type": "string"}}


def security_schemes() -> dict[str, Any]:
    return {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "An API token (POST /api/v1/me/tokens, or `breitband token create`). Tokens of "
                                  "scope 'read' are refused on POST, PUT, PATCH and DELETE (403 token-read-only)"},
        "session": {"type": "apiKey", "in": "cookie", "name": sessions.cookie_name(),
                    "description": f"The browser's session after POST /api/v1/auth/login (`{sessions.SECURE_COOKIE}` "
                                   f"when the service runs on https, `{sessions.PLAIN_COOKIE}` on plain http); "
                                   f"unsafe methods also need the header {sessions.CSRF_HEADER}"},
        "basic": {"type": "http", "scheme": "basic",
                  "description": "Only on the read-only GIS endpoints (GET/HEAD of /api/v1/ogc/…, tiles, TileJSON, "
                                 "the style): any user name, an API token as the password (QGIS, GDAL)"},
    }


def add_security(app: FastAPI, schema: dict[str, Any]) -> None:
    """The security schemes, each authenticating operation's alternatives and the CSRF header of its unsafe
    methods. Idempotent."""
    schema.setdefault("components", {})["securitySchemes"] = security_schemes()
    authenticated = _authenticated_operations(app)
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            if not isinstance(op, dict):
                continue
            gis = method.upper() in BASIC_METHODS and path.startswith(GIS_PATHS)
            # tiles, TileJSON and the style of the public layers need no caller (?tenant=KEY); with one, they are
            # answered for the caller (their tenant, their applications' layer)
            public = gis and path.startswith(PUBLIC_GIS_PATHS)
            if (method.upper(), path) in authenticated or gis:
                op["security"] = ([{}] if public else []) + [{"bearer": []}, {"session": []}] + \
                    ([{"basic": []}] if gis else [])
                if method.upper() not in sessions.SAFE_METHODS:
                    _add_parameter(op, CSRF_TOKEN)


def _add_parameter(op: dict[str, Any], parameter: dict[str, Any]) -> None:
    params = op.setdefault("parameters", [])
    if not any(p.get("name", "").lower() == parameter["name"].lower() and p.get("in") == "header" for p in params):
        params.append(parameter)
