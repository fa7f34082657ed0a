"""FastAPI app factory: the middleware and every router, each imported by name (a misspelled module fails at
start-up, not silently)."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

import accounts.admin_endpoints
import accounts.endpoints
import accounts.events  # registers the outbox audience of security events
import accounts.link_endpoints
import accounts.oidc_endpoints
import breitband.api
import breitband.metrics
import breitband.web
import geo.api
import geo.cors
import geo.map_layers
import geo.tiles_api
import notifications.api
import notifications.contacts
import notifications.devmail
import permits.applications.endpoints
import permits.cases.endpoints
import permits.documents.endpoints
import permits.exports.endpoints
import permits.gis.endpoints
import permits.participation.endpoints
import permits.pipeline.audience  # registers the outbox's audience provider and its subscriptions
import permits.pipeline.endpoints
import permits.search
from breitband import __version__
from breitband.db import Database
from breitband.errors import install_error_handlers
from breitband.headers import install as install_security_headers
from breitband.input_guard import InputGuardMiddleware
from breitband.limits import install as install_limits
from breitband.logging import configure_logging
from breitband.middleware import RequestContextMiddleware
from breitband.openapi import install as install_openapi
from breitband.settings import Settings, get_settings
from geo.tiles import register_layer
from permits.gis import tiles as applications_tiles

# The GIS read endpoints a tenant's own GIS portal may read cross-origin when its rules name the portal's origin
# (geo/cors.py, [gis] cors_origins): vector tiles, TileJSON, styles, the OGC API and the exports (GET
# /api/v1/exports/...). A further read-only GIS endpoint (fonts, sprites) is covered by adding its path here; a
# prefix ending in "/" covers what starts with it, any other covers itself and what lies below it.
GIS_READ_PATHS = ("/tiles/", "/styles/", "/api/v1/ogc", "/api/v1/exports")


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    database = db or Database.from_settings(settings)
    register_layer(applications_tiles.LAYER)       # permits' per-caller tile layer, served by geo's tile endpoints

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if db is None:
            database.dispose()

    app = FastAPI(title="Breitband", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Permit service for broadband lines in public roads (§ 127 TKG).")
    app.state.settings = settings
    app.state.db = database
    install_error_handlers(app)
    app.add_middleware(InputGuardMiddleware)       # innermost: NUL and nesting depth, after the body limits
    install_limits(app, settings)   # inside the request context: its answers carry the request id, are logged
    install_openapi(app)            # every operation's problem answers (401/403/404/409/412/422/428/503)
    app.add_middleware(RequestContextMiddleware)
    # outside the request context, so its 500 gets the CORS headers too (a browser shows it, not a CORS error)
    geo.cors.install(app, GIS_READ_PATHS, settings.public_base_url)
    install_security_headers(app, settings)   # outermost: CSP, no-store, ... also on 413/429/500 (/docs: web.py)

    app.include_router(breitband.api.health_router)
    app.include_router(breitband.api.router)
    app.include_router(breitband.metrics.router)       # /metrics: Prometheus, with BREITBAND_METRICS_TOKEN
    app.include_router(accounts.endpoints.router)
    app.include_router(accounts.endpoints.tokens_router)
    app.include_router(geo.api.router)
    app.include_router(geo.tiles_api.router)
    app.include_router(geo.map_layers.router)
    app.include_router(permits.search.router)
    app.include_router(permits.applications.endpoints.router)
    app.include_router(permits.cases.endpoints.router)
    # these three routers have no prefix of their own: /api/v1 and the tag "permits" are given here
    app.include_router(permits.pipeline.endpoints.router, prefix="/api/v1", tags=["permits"])
    app.include_router(permits.participation.endpoints.router, prefix="/api/v1", tags=["permits"])
    app.include_router(permits.documents.endpoints.router, prefix="/api/v1", tags=["permits"])
    app.include_router(permits.documents.endpoints.public_router)      # /verify: public, outside /api/v1
    app.include_router(permits.gis.endpoints.router)
    app.include_router(permits.exports.endpoints.router)
    app.include_router(notifications.api.router)
    app.include_router(notifications.contacts.router)
    app.include_router(notifications.devmail.router)        # /dev/mail: the demo's caught e-mails (off by default)
    app.include_router(accounts.oidc_endpoints.router)   # /auth/oidc/…: the browser's OpenID Connect sign-in
    app.include_router(accounts.admin_endpoints.router)
    app.include_router(accounts.link_endpoints.router)
    app.include_router(breitband.web.router)   # last: the web app at / and /assets, after every API route
    return app
