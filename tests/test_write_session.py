"""Every endpoint that writes commits BEFORE its response is sent: its session dependency has scope "function".

With FastAPI's default scope a dependency's exit code (our commit) runs after the response has gone out, so a client
that reads right after a command (the web app re-reads after every one) could see the state before it, and a commit
that fails would already have been answered 2xx. This walks every route of the real app."""

from __future__ import annotations

from fastapi.routing import APIRoute

from breitband.db import get_session


def _session_scopes(dependant) -> list[str | None]:
    found = []
    for dep in dependant.dependencies:
        if dep.call is get_session:
            found.append(dep.scope)
        found.extend(_session_scopes(dep))
    return found


def _api_routes(routes):
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)   # included routers
        if inner is not None and hasattr(inner, "routes"):
            yield from _api_routes(inner.routes)


def test_every_writing_endpoint_commits_before_the_response(app):
    writing = {}
    for route in _api_routes(app.routes):
        scopes = _session_scopes(route.dependant)
        if scopes:
            writing[f"{','.join(sorted(route.methods))} {route.path}"] = scopes
    assert len(writing) >= 15                     # the commands of permits, documents, pipeline, participation, ...
    assert any(name.startswith("POST") and name.endswith("/cases/{case_id}/decision") for name in writing)
    late = {path: scopes for path, scopes in writing.items() if any(s != "function" for s in scopes)}
    assert late == {}
