"""Access matrix: every route of the app × every kind of caller, with the status each must get.

The routes come from the app's OpenAPI (``app.openapi()["paths"]``; FastAPI wraps included routers, so
``app.routes`` does not list them). ``MATRIX`` holds one row per (method, path template[, variant]) with the
expected status for each caller in ``CALLERS``. A route in the OpenAPI without a row fails
``test_matrix_names_every_route``, and so does a row for a route that no longer exists: a new route needs an
explicit decision here.

The callers, all against the objects of one application of the operator "Glasfaser Test GmbH" in tenant he
(a route along a municipal street of Neu-Isenburg, so exactly one case, addressed to Stadt Neu-Isenburg):

=========  ===========================================================================================
anon       no Authorization header
op         operator_member of the applicant organisation (the object's own organisation)
op2        operator_member of another operator organisation of the same tenant
rev        authority_reviewer of Stadt Neu-Isenburg (the authority with the case)
adm        authority_admin of Stadt Neu-Isenburg (the authority with the case)
rev2       authority_reviewer of Stadt Frankfurt am Main (an authority without a case on it)
adm2       authority_admin of Hessen Mobil (an authority without a case on it)
body       authority_reviewer of a participating body with a statement request on the application
body2      authority_reviewer of another participating body (no request on it)
tadm       tenant_admin of tenant he
x_op       operator_member of another tenant (xb)
x_adm      authority_admin of another tenant (xb)
x_tadm     tenant_admin of another tenant (xb)
=========  ===========================================================================================

What the statuses mean: 401 no token; 403 the role may not do this (or the object is readable but not the caller's
to change: ``not-your-case``, ``not-your-statement``, ``not-your-document``); 404 the object does not exist for the
caller (another organisation or tenant, never 403, so that existence does not leak). For the allowed caller the
normal answer, or the first answer that can only come after the authorisation checks passed:

* commands that need ``If-Match`` are sent with a valid body and a well-formed but stale ``If-Match: "999999"``.
  The endpoint parses the header first (428 without one, 412 when malformed — both before the object is looked
  at), then the service loads the object through the scoped query (404), checks the caller's role on it (403) and
  only then compares the version: 412 for the allowed caller, and nothing changes. (FastAPI validates the body
  before the endpoint runs, so an invalid body would be 422 before any 403/404 — hence valid bodies.)
* commands without ``If-Match`` that succeed get a fresh object per cell (a webhook to delete, a document to
  revoke, a token to log out with), or change nothing the other cells depend on (a new draft, a new token).
* lists answer 200 to everyone; ``200+`` means the row's marker object (``Req.marker``) is in the answer, ``200-``
  that it is not: what the caller may not read is absent, not only its own URL refused.

``a|b`` accepts either status (only for answers that do not depend on the caller, e.g. readiness).

Decisions the matrix records (read from the code, not from what it happened to answer):

* public without a token: /healthz, /readyz, /verify (both), /contact-confirmations (the e-mailed token is the
  credential), the tiles and TileJSON of the public layers (roads, boundaries) and the style — with ``?tenant=he``,
  or else the token's tenant (400 ``tenant-required`` for anonymous callers without one).
* the ``applications`` tile layer shows authorities and participating bodies every submitted application of their
  tenant (coordination of works), but id, reference and project name only of their own: ``200-`` there means the
  application's id is not in the tile. Operators see only their own organisation's applications (204 when none).
* operators' organisation records are visible to their own members and tenant admins only.
* an authority with a case reads the statements on that application and may download a submitted attachment
  through them; it cannot answer them (403 ``not-your-statement``).
* administration (/api/v1/admin/users, /organisations): tenant admins the whole tenant, an authority's (or
  operator's) admin its own organisation only — another organisation's users and organisations are 404, inviting
  into another organisation 403; creating organisations is for tenant admins. The invitation and reset links
  (/api/v1/auth/links, /api/v1/auth/password-reset) are public: the e-mailed link is the credential.
* the other tenant's callers reach their own (empty) tenant: a new draft is theirs (201), /resolve says their
  tenant has no boundaries (409), lists are empty.
"""

from __future__ import annotations

import io
import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import delete, select

import breitband.clock
from accounts import links
from accounts.models import AccountLink, LinkPurpose
from breitband import identity, sessions
from breitband.models import OrgKind, Role, User
from notifications import outbox
from notifications.models import Delivery, Event
from permits.documents.models import DecisionDocument
from permits.documents.tasks import document_generate, documents_for_event
from permits.participation import service as participation
from permits.participation.models import StatementRequest
from tests.support.api import collection, draft_body, trench
from tests.support.hessen import NEU_ISENBURG, authority_org
from tests.support.people import person

CALLERS = ("anon", "op", "op2", "rev", "adm", "rev2", "adm2", "body", "body2", "tadm", "x_op", "x_adm", "x_tadm")
STALE = '"999999"'
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")

# fmt: off
# (method, path template, variant): expected status per caller, in the order of CALLERS (the comment rows name them).
MATRIX: dict[tuple[str, str, str], str] = {
    # --- health (public) ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("GET", "/healthz", ""):
        "200   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/readyz", ""):
        "200|503 200|503 200|503 200|503 200|503 200|503 200|503 200|503 200|503 200|503 200|503 200|503 200|503",
    # --- the caller and tokens ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("GET", "/api/v1/me", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/api/v1/me/tokens", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    ("POST", "/api/v1/me/tokens", ""):
        "401   201   201   201   201   201   201   201   201   201   201   201   201",
    ("DELETE", "/api/v1/me/tokens/{token_id}", ""):
        "401   204   404   404   404   404   404   404   404   404   404   404   404",
    ("POST", "/api/v1/me/logout", ""):
        "401   204   204   204   204   204   204   204   204   204   204   204   204",
    ("GET", "/api/v1/users/{user_id}/tokens", ""):
        "401   403   403   403   403   403   403   403   403   200   403   403   404",
    ("DELETE", "/api/v1/users/{user_id}/tokens/{token_id}", ""):
        "401   403   403   403   403   403   403   403   403   204   403   403   404",
    # --- signing in, one's sessions, password and second factor (accounts/endpoints.py) ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("GET", "/api/v1/auth/options", ""):
        "200   200   200   200   200   200   200   200   200   200   200   200   200",
    ("POST", "/api/v1/auth/login", "no password"):          # public; the body is checked first
        "422   422   422   422   422   422   422   422   422   422   422   422   422",
    ("GET", "/api/v1/auth/session", ""):                    # a browser session's only: tokens get 401,
        "204   401   401   401   401   401   401   401   401   401   401   401   401",   # nobody signed in 204
    ("POST", "/api/v1/auth/logout", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/api/v1/me/sessions", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    ("DELETE", "/api/v1/me/sessions/{session_id}", ""):     # a session of op's
        "401   204   404   404   404   404   404   404   404   404   404   404   404",
    ("POST", "/api/v1/me/sessions/end-all", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    ("POST", "/api/v1/me/password", "wrong current"):       # the callers have no password: 422 for everyone
        "401   422   422   422   422   422   422   422   422   422   422   422   422",
    ("POST", "/api/v1/me/totp", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    ("POST", "/api/v1/me/totp/confirm", "wrong code"):
        "401   422   422   422   422   422   422   422   422   422   422   422   422",
    ("DELETE", "/api/v1/me/totp", "wrong password"):
        "401   422   422   422   422   422   422   422   422   422   422   422   422",
    ("GET", "/api/v1/admin/security-events", ""):
        "401   403   403   403   403   403   403   403   403   200   403   403   200",
    # --- tenant and organisations ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("GET", "/api/v1/organisations", ""):
        "401   200+  200-  200-  200-  200-  200-  200-  200-  200+  200-  200-  200-",
    ("GET", "/api/v1/organisations/{org_id}", "operator"):
        "401   200   404   404   404   404   404   404   404   200   404   404   404",
    ("GET", "/api/v1/organisations/{org_id}", "authority"):
        "401   200   200   200   200   200   200   200   200   200   404   404   404",
    ("GET", "/api/v1/tenant", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    # --- resolution, tiles, style ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("POST", "/api/v1/resolve", ""):
        "401   200   200   200   200   200   200   200   200   200   409   409   409",
    ("POST", "/api/v1/route-file", ""):
        "401   200   200   200   200   200   200   200   200   200   409   409   409",
    ("GET", "/tiles/{layer}/{z}/{x}/{y}.mvt", "roads ?tenant=he"):
        "200   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/tiles/{layer}/{z}/{x}/{y}.mvt", "roads"):
        "400   200   200   200   200   200   200   200   200   200   204   204   204",
    ("GET", "/tiles/{layer}/{z}/{x}/{y}.mvt", "applications"):
        "401   200+  204   200+  200+  200-  200-  200+  200-  200+  204   204   204",
    ("GET", "/tiles/{layer}.json", "roads"):
        "400   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/tiles/{layer}.json", "applications"):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/styles/breitband.json", ""):
        "400   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/styles/breitband.json", "?tenant=he"):
        "200   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/fonts/{fontstack}/{glyph_range}.pbf", ""):   # public: the labels' glyphs, the same for everyone
        "200   200   200   200   200   200   200   200   200   200   200   200   200",
    # --- the map's search and its external base layers ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("GET", "/api/v1/search", "reference"):   # a reference only for who may read the application or case
        "401   200+  200-  200+  200+  200-  200-  200-  200-  200+  200-  200-  200-",
    ("GET", "/api/v1/map/layers", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    # --- applications ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("POST", "/api/v1/applications", ""):
        "401   201   201   403   403   403   403   403   403   403   201   403   403",
    ("POST", "/api/v1/applications", "multipart"):  # the route file is read: the other tenant has no territory
        "401   201   201   403   403   403   403   403   403   403   409   403   403",
    ("GET", "/api/v1/applications", ""):
        "401   200+  200-  200+  200+  200-  200-  200-  200-  200+  200-  200-  200-",
    ("PATCH", "/api/v1/applications/{application_id}", ""):
        "401   412   404   403   403   403   403   403   403   403   404   403   403",
    ("PUT", "/api/v1/applications/{application_id}/route", ""):
        "401   412   404   403   403   403   403   403   403   403   404   403   403",
    ("GET", "/api/v1/applications/{application_id}", ""):
        "401   200   404   200   200   404   404   404   404   200   404   404   404",
    ("GET", "/api/v1/applications/{application_id}", "draft"):
        "401   200   404   404   404   404   404   404   404   200   404   404   404",
    ("POST", "/api/v1/applications/{application_id}/submit", ""):
        "401   412   404   403   403   403   403   403   403   403   404   403   403",
    ("POST", "/api/v1/applications/{application_id}/supplements", ""):
        "401   412   404   403   403   403   403   403   403   403   404   403   403",
    ("POST", "/api/v1/applications/{application_id}/withdraw", ""):
        "401   412   404   403   403   403   403   403   403   403   404   403   403",
    ("POST", "/api/v1/applications/{application_id}/works-start", ""):
        "401   412   404   403   403   403   403   403   403   403   404   403   403",
    ("POST", "/api/v1/applications/{application_id}/works-completion", ""):
        "401   412   404   403   403   403   403   403   403   403   404   403   403",
    ("POST", "/api/v1/applications/{application_id}/attachments", "draft"):
        "401   201   404   403   403   403   403   403   403   403   404   403   403",
    ("GET", "/api/v1/applications/{application_id}/versions", ""):
        "401   200   404   200   200   404   404   404   404   200   404   404   404",
    ("GET", "/api/v1/applications/{application_id}/versions/{number}", ""):
        "401   200   404   200   200   404   404   404   404   200   404   404   404",
    ("GET", "/api/v1/applications/{application_id}/history", ""):
        "401   200   404   200   200   404   404   404   404   200   404   404   404",
    ("GET", "/api/v1/applications/{application_id}/attachments/{attachment_id}", ""):
        "401   200   404   200   200   404   404   404   404   200   404   404   404",
    ("GET", "/api/v1/applications/{application_id}/pipeline", ""):
        "401   200   404   200   200   404   404   404   404   200   404   404   404",
    ("POST", "/api/v1/applications/{application_id}/pipeline/{step}/retry", ""):
        "401   403   403   403   403   403   403   403   403   409   403   403   404",
    # --- cases ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("POST", "/api/v1/cases/{case_id}/request-information", ""):
        "401   403   403   412   412   404   404   404   404   403   403   404   403",
    ("POST", "/api/v1/cases/{case_id}/confirm-complete", ""):
        "401   403   403   412   412   404   404   404   404   403   403   404   403",
    ("POST", "/api/v1/cases/{case_id}/decision", ""):
        "401   403   403   412   412   404   404   404   404   403   403   404   403",
    ("POST", "/api/v1/cases/{case_id}/decision", "no If-Match"):
        "401   403   403   428   428   428   428   428   428   403   403   428   403",
    ("POST", "/api/v1/cases/{case_id}/forward", ""):
        "401   403   403   412   412   404   404   404   404   403   403   404   403",
    ("POST", "/api/v1/cases/{case_id}/extend-deadline", ""):
        "401   403   403   412   412   404   404   404   404   403   403   404   403",
    ("GET", "/api/v1/cases", ""):
        "401   200+  200-  200+  200+  200-  200-  200-  200-  200+  200-  200-  200-",
    ("GET", "/api/v1/cases/{case_id}", ""):
        "401   200   404   200   200   404   404   404   404   200   404   404   404",
    ("GET", "/api/v1/cases/{case_id}/history", ""):
        "401   200   404   200   200   404   404   404   404   200   404   404   404",
    ("GET", "/api/v1/deadlines", ""):                       # the calculator, on the caller's tenant's calendar
        "401   200+  200+  200+  200+  200+  200+  200+  200+  200+  200-  200-  200-",
    ("GET", "/api/v1/conditions", ""):
        "401   200+  200+  200+  200+  200+  200+  200+  200+  200+  200-  200-  200-",
    ("GET", "/api/v1/refusal-reasons", ""):
        "401   200+  200+  200+  200+  200+  200+  200+  200+  200+  200-  200-  200-",
    # --- participation ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("GET", "/api/v1/statements", ""):
        "401   200-  200-  200+  200+  200-  200-  200+  200-  200+  200-  200-  200-",
    ("GET", "/api/v1/statements/{statement_id}", ""):
        "401   404   404   200   200   404   404   200   404   200   404   404   404",
    ("GET", "/api/v1/statements/{statement_id}/attachments/{attachment_id}", ""):
        "401   404   404   200   200   404   404   200   404   200   404   404   404",
    ("POST", "/api/v1/statements/{statement_id}/answer", ""):
        "401   403   403   403   403   404   404   412   404   403   403   404   403",
    ("GET", "/api/v1/cases/{case_id}/statements", ""):
        "401   404   404   200+  200+  404   404   404   404   200+  404   404   404",
    # --- decision documents ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("GET", "/api/v1/cases/{case_id}/documents", ""):
        "401   200+  404   200+  200+  404   404   404   404   200+  404   404   404",
    ("GET", "/api/v1/applications/{application_id}/documents.zip", ""):    # the application's scope
        "401   200   404   200   200   404   404   404   404   200   404   404   404",
    ("GET", "/api/v1/documents/{document_id}", ""):
        "401   200   404   200   200   404   404   404   404   200   404   404   404",
    ("GET", "/api/v1/documents/{document_id}/pdf", ""):
        "401   200   404   200   200   404   404   404   404   200   404   404   404",
    ("POST", "/api/v1/documents/{document_id}/regenerate", ""):
        "401   403   403   403   202   403   404   403   403   202   403   404   404",
    ("POST", "/api/v1/documents/{document_id}/revoke", ""):
        "401   403   403   403   200   403   404   403   403   200   403   404   404",
    ("GET", "/contact-confirmations", "token"):
        "200   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/contact-confirmations", "unknown token"):
        "404   404   404   404   404   404   404   404   404   404   404   404   404",
    ("POST", "/contact-confirmations", "token"):
        "200   200   200   200   200   200   200   200   200   200   200   200   200",
    ("POST", "/contact-confirmations", "used token"):
        "410   410   410   410   410   410   410   410   410   410   410   410   410",
    ("GET", "/verify/{document_id}", ""):
        "200   200   200   200   200   200   200   200   200   200   200   200   200",
    ("POST", "/verify", ""):
        "200   200   200   200   200   200   200   200   200   200   200   200   200",
    # --- administration of users and organisations (accounts/admin.py) ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("GET", "/api/v1/admin/users", ""):
        "401   403   403   403   200+  403   200-  403   403   200+  403   200-  200-",
    ("GET", "/api/v1/admin/users/{user_id}", ""):
        "401   403   403   403   200   403   404   403   403   200   403   404   404",
    ("POST", "/api/v1/admin/users", ""):
        "401   403   403   403   201   403   403   403   403   201   403   404   404",
    ("PATCH", "/api/v1/admin/users/{user_id}", ""):
        "401   403   403   403   200   403   404   403   403   200   403   404   404",
    ("POST", "/api/v1/admin/users/{user_id}/deactivate", ""):
        "401   403   403   403   200   403   404   403   403   200   403   404   404",
    ("POST", "/api/v1/admin/users/{user_id}/reactivate", ""):
        "401   403   403   403   200   403   404   403   403   200   403   404   404",
    ("POST", "/api/v1/admin/users/{user_id}/invitation", ""):
        "401   403   403   403   200   403   404   403   403   200   403   404   404",
    ("GET", "/api/v1/admin/organisations", ""):
        "401   403   403   403   200+  403   200-  403   403   200+  403   200-  200-",
    ("POST", "/api/v1/admin/organisations", ""):
        "401   403   403   403   403   403   403   403   403   201   403   403   201",
    ("PATCH", "/api/v1/admin/organisations/{org_id}", ""):
        "401   403   403   403   200   403   404   403   403   200   403   404   404",
    # --- invitation and reset links (public: the e-mailed link is the credential) ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("POST", "/api/v1/auth/password-reset", ""):
        "202   202   202   202   202   202   202   202   202   202   202   202   202",
    ("GET", "/api/v1/auth/links/{token}", "token"):
        "200   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/api/v1/auth/links/{token}", "unknown token"):
        "404   404   404   404   404   404   404   404   404   404   404   404   404",
    # (a successful POST signs in with a cookie, which would stay in the matrix's client: tests/accounts/test_links.py
    # covers it; here a password the policy refuses shows that the request reaches the link, and a used link)
    ("POST", "/api/v1/auth/links/{token}", "weak password"):
        "422   422   422   422   422   422   422   422   422   422   422   422   422",
    ("POST", "/api/v1/auth/links/{token}", "used token"):
        "410   410   410   410   410   410   410   410   410   410   410   410   410",
    # --- OGC API - Features ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("GET", "/api/v1/ogc", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/api/v1/ogc/conformance", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/api/v1/ogc/collections", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/api/v1/ogc/collections/{collection_id}", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    # (a participating body sees the applications it has a statement request for: permits/gis/scope.py)
    ("GET", "/api/v1/ogc/collections/{collection_id}/items", ""):
        "401   200+  200-  200+  200+  200-  200-  200+  200-  200+  200-  200-  200-",
    ("GET", "/api/v1/ogc/collections/{collection_id}/items/{feature_id}", ""):
        "401   200   404   200   200   404   404   200   404   200   404   404   404",
    ("GET", "/api/v1/ogc/collections/{collection_id}/queryables", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    ("GET", "/api/v1/ogc/collections/{collection_id}/sortables", ""):
        "401   200   200   200   200   200   200   200   200   200   200   200   200",
    # --- exports (a participating body: the applications it is asked about) ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("GET", "/api/v1/exports/cases", "csv"):
        "401   200+  200-  200+  200+  200-  200-  200-  200-  200+  200-  200-  200-",
    ("GET", "/api/v1/exports/applications", "csv"):
        "401   200+  200-  200+  200+  200-  200-  200+  200-  200+  200-  200-  200-",
    # --- notifications ---
       # anon  op    op2   rev   adm   rev2  adm2  body  body2 tadm  x_op  x_adm x_tadm
    ("GET", "/api/v1/events", ""):     # body: the closing of its own request (statement.closed), nothing else
        "401   200+  200-  200+  200+  200-  200-  200+  200-  200+  200-  200-  200-",
    ("GET", "/api/v1/webhooks", ""):
        "401   200+  200-  403   200-  403   200-  403   403   200-  200-  200-  200-",
    ("POST", "/api/v1/webhooks", ""):
        "401   201   201   403   201   403   201   403   403   201   201   201   201",
    ("GET", "/api/v1/webhooks/{webhook_id}", ""):
        "401   200   404   403   404   403   404   403   403   404   404   404   404",
    ("PATCH", "/api/v1/webhooks/{webhook_id}", ""):
        "401   200   404   403   404   403   404   403   403   404   404   404   404",
    ("DELETE", "/api/v1/webhooks/{webhook_id}", ""):
        "401   204   404   403   404   403   404   403   403   404   404   404   404",
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret", ""):
        "401   200   404   403   404   403   404   403   403   404   404   404   404",
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries", ""):
        "401   200+  404   403   404   403   404   403   403   404   404   404   404",
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", ""):
        "401   202   404   403   404   403   404   403   403   404   404   404   404",
}
# fmt: on


@dataclass
class Req:
    """How a row's request is made. ``ids``: path values beyond the shared ones; ``marker``: the name of a shared
    id (or a literal text) that a ``200+`` answer must contain and a ``200-`` answer must not; ``prepare``: run
    before every cell, returns path values of a fresh object for that cell; ``fresh_token``: the caller uses a new
    token of its own (the command revokes the token it is sent with)."""

    ids: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] | None = None
    if_match: str | None = None
    marker: str | None = None
    prepare: Callable[["World"], dict[str, str]] | None = None
    fresh_token: bool = False


@dataclass
class World:
    client: Any
    session: Any
    headers: dict[str, dict[str, str]]
    users: dict[str, uuid.UUID]
    ids: dict[str, str]
    lines: dict[str, Any]
    case_id: uuid.UUID | None = None


def session_of_op(w: World) -> dict[str, str]:
    """A fresh browser session of the operator member (only it may end it)."""
    started = sessions.start(w.session, w.users["op"], method="password")
    w.session.commit()
    return {"session_id": str(started.id)}


def requests_for(w: World) -> dict[tuple[str, str, str], Req]:
    route = collection(trench(w.lines["neu_isenburg"]))
    ids = w.ids
    return {
        ("POST", "/api/v1/me/tokens", ""): Req(json={"name": "Matrix", "expires_in_days": 30}),
        ("POST", "/api/v1/me/logout", ""): Req(fresh_token=True),
        ("POST", "/api/v1/auth/login", "no password"): Req(json={"tenant": "he", "email": "planer@he.example"}),
        ("POST", "/api/v1/auth/logout", ""): Req(fresh_token=True),
        ("DELETE", "/api/v1/me/sessions/{session_id}", ""): Req(prepare=session_of_op),
        ("POST", "/api/v1/me/password", "wrong current"): Req(json={"current_password": "not the password",
                                                                   "new_password": "harbour owl tundra 9"}),
        ("POST", "/api/v1/me/totp/confirm", "wrong code"): Req(json={"code": "12345"}),
        ("DELETE", "/api/v1/me/totp", "wrong password"): Req(json={"password": "not the password"}),
        ("GET", "/api/v1/organisations", ""): Req(marker="operator_org"),
        ("GET", "/api/v1/organisations/{org_id}", "operator"): Req(ids={"org_id": ids["operator_org"]}),
        ("GET", "/api/v1/organisations/{org_id}", "authority"): Req(ids={"org_id": ids["authority_org"]}),
        ("POST", "/api/v1/resolve", ""): Req(json=route),
        ("POST", "/api/v1/route-file", ""): Req(json=route),
        ("GET", "/tiles/{layer}/{z}/{x}/{y}.mvt", "roads ?tenant=he"): Req(ids={"layer": "roads"},
                                                                          query={"tenant": "he"}),
        ("GET", "/tiles/{layer}/{z}/{x}/{y}.mvt", "roads"): Req(ids={"layer": "roads"}),
        ("GET", "/tiles/{layer}/{z}/{x}/{y}.mvt", "applications"): Req(ids={"layer": "applications"},
                                                                       marker="application_id"),
        ("GET", "/tiles/{layer}.json", "roads"): Req(ids={"layer": "roads"}),
        ("GET", "/tiles/{layer}.json", "applications"): Req(ids={"layer": "applications"}),
        ("GET", "/styles/breitband.json", "?tenant=he"): Req(query={"tenant": "he"}),
        ("GET", "/fonts/{fontstack}/{glyph_range}.pbf", ""): Req(ids={"fontstack": "DejaVu Sans",
                                                                       "glyph_range": "0-255"}),
        # the marker: the application's project name, which only a found reference brings into the answer
        ("GET", "/api/v1/search", "reference"): Req(query={"q": "{reference}"},
                                                   marker="Gravenbruch, Bauabschnitt 3"),
        ("POST", "/api/v1/applications", ""): Req(json=draft_body(route)),
        ("POST", "/api/v1/applications", "multipart"): Req(
            files={"file": ("trasse.geojson", json.dumps(route).encode(), "application/geo+json")},
            data={"application": json.dumps({k: v for k, v in draft_body(None).items() if k != "sections"})}),
        ("PUT", "/api/v1/applications/{application_id}/route", ""): Req(json=route, if_match=STALE),
        ("GET", "/api/v1/applications", ""): Req(marker="application_id"),
        ("GET", "/api/v1/applications/{application_id}", "draft"): Req(ids={"application_id": ids["draft_id"]}),
        ("PATCH", "/api/v1/applications/{application_id}", ""): Req(json={"project_name": "Bauabschnitt 4"},
                                                                    if_match=STALE),
        ("POST", "/api/v1/applications/{application_id}/submit", ""): Req(if_match=STALE),
        ("POST", "/api/v1/applications/{application_id}/supplements", ""): Req(
            json={"message": "Querschnitt ergänzt", "sections": route, "planned_start": "2026-06-02"},
            if_match=STALE),
        ("POST", "/api/v1/applications/{application_id}/withdraw", ""): Req(json={"reason": "Trasse entfällt"},
                                                                           if_match=STALE),
        ("POST", "/api/v1/applications/{application_id}/works-start", ""): Req(
            json={"started_on": "2026-06-01", "note": "los"}, if_match=STALE),
        ("POST", "/api/v1/applications/{application_id}/works-completion", ""): Req(
            json={"completed_on": "2026-07-01", "as_built": route, "note": "fertig"}, if_match=STALE),
        ("POST", "/api/v1/applications/{application_id}/attachments", "draft"): Req(
            ids={"application_id": ids["draft_id"]}, files={"file": ("Querschnitt.pdf", PDF, "application/pdf")},
            data={"kind": "cross_section"}),
        ("POST", "/api/v1/applications/{application_id}/pipeline/{step}/retry", ""): Req(ids={"step": "resolution"}),
        ("POST", "/api/v1/cases/{case_id}/request-information", ""): Req(
            json={"message": "Querschnitt fehlt", "items": ["Querschnitt"]}, if_match=STALE),
        ("POST", "/api/v1/cases/{case_id}/confirm-complete", ""): Req(json={"note": "vollständig"}, if_match=STALE),
        # no catalogue codes: they are checked against the caller's tenant before the case is looked up
        ("POST", "/api/v1/cases/{case_id}/decision", ""): Req(
            json={"outcome": "granted", "additional_conditions": ["Gehweg freihalten"], "explanation": "Zustimmung"},
            if_match=STALE),
        # without If-Match: 428 as soon as the role fits, before the case is looked up (the same for every id, so
        # it tells nothing about the case)
        ("POST", "/api/v1/cases/{case_id}/decision", "no If-Match"): Req(
            json={"outcome": "granted", "additional_conditions": ["Gehweg freihalten"], "explanation": "Zustimmung"}),
        ("POST", "/api/v1/cases/{case_id}/forward", ""): Req(
            json={"to_organisation_id": ids["kreis_offenbach"], "reason": "Kreisstraße"}, if_match=STALE),
        ("POST", "/api/v1/cases/{case_id}/extend-deadline", ""): Req(json={"reason": "Umfangreiche Prüfung"},
                                                                     if_match=STALE),
        ("GET", "/api/v1/cases", ""): Req(marker="case_id"),
        ("GET", "/api/v1/deadlines", ""): Req(query={"received": "2027-02-27"}, marker='"tenant":"he"'),
        ("GET", "/api/v1/conditions", ""): Req(marker='"HE-'),
        ("GET", "/api/v1/refusal-reasons", ""): Req(marker='"HE-'),
        ("GET", "/api/v1/statements", ""): Req(marker="statement_id"),
        ("POST", "/api/v1/statements/{statement_id}/answer", ""): Req(json={"answer": "agree"}, if_match=STALE),
        ("GET", "/api/v1/cases/{case_id}/statements", ""): Req(marker="statement_id"),
        ("GET", "/api/v1/cases/{case_id}/documents", ""): Req(marker="document_id"),
        ("POST", "/api/v1/documents/{document_id}/regenerate", ""): Req(prepare=no_pending_generation),
        ("POST", "/api/v1/documents/{document_id}/revoke", ""): Req(json={"reason": "Fehler im Bescheid"},
                                                                    prepare=fresh_ready_document),
        # public: the token of the e-mailed link is the credential; an Authorization header changes nothing
        ("GET", "/contact-confirmations", "token"): Req(query={"token": "{contact_token}"}, marker="contact_email"),
        ("GET", "/contact-confirmations", "unknown token"): Req(query={"token": "bbc_unknown"}),
        ("POST", "/contact-confirmations", "token"): Req(data={"token": "{contact_token}"},
                                                         prepare=fresh_contact_token),
        ("POST", "/contact-confirmations", "used token"): Req(data={"token": "{used_contact_token}"}),
        ("POST", "/verify", ""): Req(files={"file": ("Bescheid.pdf", PDF, "application/pdf")}),
        # administration: the reviewer of Stadt Neu-Isenburg (an authority admin's own organisation) as the object
        ("GET", "/api/v1/admin/users", ""): Req(marker="tiefbau@neu-isenburg.example"),
        ("GET", "/api/v1/admin/users/{user_id}", ""): Req(ids={"user_id": str(w.users["rev"])}),
        ("POST", "/api/v1/admin/users", ""): Req(
            json={"email": "{new_email}", "name": "Neu", "role": "authority_reviewer",
                  "organisation_id": ids["authority_org"]}, prepare=fresh_address),
        ("PATCH", "/api/v1/admin/users/{user_id}", ""): Req(ids={"user_id": str(w.users["rev"])},
                                                            json={"name": "Tiefbau Neu-Isenburg"}),
        ("POST", "/api/v1/admin/users/{user_id}/deactivate", ""): Req(prepare=fresh_reviewer),
        ("POST", "/api/v1/admin/users/{user_id}/reactivate", ""): Req(ids={"user_id": str(w.users["rev"])}),
        ("POST", "/api/v1/admin/users/{user_id}/invitation", ""): Req(ids={"user_id": str(w.users["rev"])}),
        ("GET", "/api/v1/admin/organisations", ""): Req(query={"q": "Neu-Isenburg"}, marker="authority_org"),
        ("POST", "/api/v1/admin/organisations", ""): Req(json={"kind": "participating_body",
                                                               "name": "Untere Denkmalschutzbehörde Matrix"}),
        ("PATCH", "/api/v1/admin/organisations/{org_id}", ""): Req(ids={"org_id": ids["authority_org"]},
                                                                   json={"phone": "06102 241-0"}),
        ("POST", "/api/v1/auth/password-reset", ""): Req(json={"tenant": "he",
                                                               "email": "planer@glasfaser-test.example"}),
        ("GET", "/api/v1/auth/links/{token}", "token"): Req(prepare=fresh_link),
        ("GET", "/api/v1/auth/links/{token}", "unknown token"): Req(ids={"token": "bb_unknown"}),
        ("POST", "/api/v1/auth/links/{token}", "weak password"): Req(json={"password": "kurz"}, prepare=fresh_link),
        ("POST", "/api/v1/auth/links/{token}", "used token"): Req(json={"password": "Lindenbaum Fahrrad Kompass"},
                                                                  prepare=used_link),
        ("GET", "/api/v1/ogc/collections/{collection_id}/items", ""): Req(marker="application_id"),
        ("GET", "/api/v1/exports/cases", "csv"): Req(query={"format": "csv"}, marker="case_id"),
        ("GET", "/api/v1/exports/applications", "csv"): Req(query={"format": "csv"}, marker="application_id"),
        ("GET", "/api/v1/events", ""): Req(marker="application_id"),
        ("GET", "/api/v1/webhooks", ""): Req(marker="webhook_id"),
        ("POST", "/api/v1/webhooks", ""): Req(json={"url": "http://10.20.30.40/hook",
                                                    "event_types": ["application.submitted"]}),
        ("PATCH", "/api/v1/webhooks/{webhook_id}", ""): Req(json={"url": "http://10.20.30.41/hook"},
                                                            prepare=fresh_webhook),
        ("DELETE", "/api/v1/webhooks/{webhook_id}", ""): Req(prepare=fresh_webhook),
        ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret", ""): Req(prepare=fresh_webhook),
        ("GET", "/api/v1/webhooks/{webhook_id}/deliveries", ""): Req(marker="delivery_id"),
    }


# --- fresh objects for commands that succeed ---------------------------------------------------------------------

def fresh_webhook(w: World) -> dict[str, str]:
    r = w.client.post("/api/v1/webhooks", headers=w.headers["op"],
                      json={"url": "http://10.20.30.42/hook", "event_types": ["case.*"]})
    assert r.status_code == 201, r.text
    return {"webhook_id": r.json()["id"]}


def fresh_ready_document(w: World) -> dict[str, str]:
    """Another issued generation of the case's document (a row only: revoking needs no file)."""
    first = w.session.get(DecisionDocument, uuid.UUID(w.ids["document_id"]))
    latest = max(w.session.scalars(select(DecisionDocument.generation).where(
        DecisionDocument.case_id == first.case_id)))
    now = datetime.now(timezone.utc)
    doc = DecisionDocument(id=uuid.uuid4(), tenant_key=first.tenant_key, application_id=first.application_id,
                           case_id=first.case_id, generation=latest + 1, kind=first.kind, outcome=first.outcome,
                           decided_at=first.decided_at, status="ready", validity="valid", attempts=1,
                           sha256=uuid.uuid4().hex * 2, size_bytes=1, signer=first.signer, signed_at=now,
                           created_at=now, updated_at=now)
    w.session.add(doc)
    w.session.commit()
    return {"document_id": str(doc.id)}


def fresh_contact_token(w: World) -> dict[str, str]:
    """A new confirmation request for another address the operator typed in (each is confirmed once)."""
    from notifications.contacts import request_confirmation

    token, _ = request_confirmation(w.session, tenant_key="he", org_id=uuid.UUID(w.ids["operator_org"]),
                                    email=f"bauleitung-{uuid.uuid4().hex[:8]}@glasfaser-test.example",
                                    application_id=uuid.UUID(w.ids["application_id"]),
                                    now=datetime.now(timezone.utc))
    w.session.commit()
    return {"contact_token": token}


def fresh_address(w: World) -> dict[str, str]:
    return {"new_email": f"neu-{uuid.uuid4().hex[:8]}@neu-isenburg.example"}


def fresh_reviewer(w: World) -> dict[str, str]:
    """Another reviewer of Stadt Neu-Isenburg, to be deactivated."""
    org = w.session.get(identity.Organisation, uuid.UUID(w.ids["authority_org"]))
    user = identity.create_user(w.session, org, fresh_address(w)["new_email"], "Neu", Role.authority_reviewer)
    w.session.commit()
    return {"user_id": str(user.id)}


def fresh_link(w: World) -> dict[str, str]:
    """An open invitation link of a new reviewer of Stadt Neu-Isenburg."""
    user = w.session.get(User, uuid.UUID(fresh_reviewer(w)["user_id"]))
    issued = links.issue(w.session, user, LinkPurpose.invitation, created_by=None, now=breitband.clock.now())
    w.session.commit()
    return {"token": issued.secret}


def used_link(w: World) -> dict[str, str]:
    token = fresh_link(w)["token"]
    link = w.session.scalars(select(AccountLink).where(AccountLink.token_hash == identity.hash_token(token))).one()
    link.used_at = breitband.clock.now()
    w.session.commit()
    return {"token": token}


def no_pending_generation(w: World) -> dict[str, str]:
    """The issued document again with no newer generation in progress (a regeneration by an earlier cell is
    removed), so that every allowed caller may regenerate it."""
    w.session.execute(delete(DecisionDocument).where(DecisionDocument.case_id == w.case_id,
                                                     DecisionDocument.status != "ready"))
    w.session.commit()
    return {}


# --- the world ------------------------------------------------------------------------------------------------------

def tile_of(lon: float, lat: float, z: int = 15) -> tuple[int, int, int]:
    n = 2 ** z
    rad = math.radians(lat)
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(rad)) / math.pi) / 2 * n)


@pytest.fixture
def matrix(client, session, he, other_world, lines, clock, db, task_db) -> World:
    clock.set("2026-02-02T09:00:00+01:00")
    ni = authority_org(session, key=NEU_ISENBURG)
    ni_admin = person(session, ni, "leitung@neu-isenburg.example", Role.authority_admin)
    bodies = []
    for name, role, email in (("Straßenverkehrsbehörde Neu-Isenburg", "traffic", "svb@neu-isenburg.example"),
                              ("Untere Wasserbehörde Kreis Offenbach", "water", "uwb@kreis-offenbach.example")):
        org = identity.create_organisation(session, "he", OrgKind.participating_body, name)
        participation.add_body(session, "he", org, role, None, breitband.clock.now())
        bodies.append(person(session, org, email, Role.authority_reviewer))
    # tenant xb of the other world gets valid rules (Hessen's), so that its people's requests reach its own data
    identity.update_tenant(session, "xb", rules=session.get(identity.Tenant, "he").rules)
    session.commit()
    people = {"op": he.operator, "op2": he.other_operator, "rev": he.neu_isenburg, "adm": ni_admin,
              "rev2": he.frankfurt, "adm2": he.hessen_mobil, "body": bodies[0], "body2": bodies[1],
              "tadm": he.admin, "x_op": other_world.operator_member, "x_adm": other_world.authority_admin,
              "x_tadm": other_world.admin}
    headers = {"anon": {}, **{k: p.headers for k, p in people.items()}}
    users = {k: p.user_id for k, p in people.items()}

    # the operator's webhook (before the submission, so that it gets a delivery)
    r = client.post("/api/v1/webhooks", headers=headers["op"],
                    json={"url": "http://10.20.30.40/hook", "event_types": ["application.*"]})
    assert r.status_code == 201, r.text
    webhook_id = r.json()["id"]

    # the application: a draft with a cross-section attached, submitted → one case (Stadt Neu-Isenburg)
    route = collection(trench(lines["neu_isenburg"]))
    r = client.post("/api/v1/applications", headers=headers["op"], json=draft_body(route))
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    r = client.post(f"/api/v1/applications/{app_id}/attachments", headers=headers["op"],
                    files={"file": ("Querschnitt.pdf", PDF, "application/pdf")}, data={"kind": "cross_section"})
    assert r.status_code == 201, r.text
    attachment_id = r.json()["id"]
    etag = client.get(f"/api/v1/applications/{app_id}", headers=headers["op"]).headers["etag"]
    r = client.patch(f"/api/v1/applications/{app_id}", headers={**headers["op"], "If-Match": etag},
                     json={"attachment_ids": [attachment_id]})
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/applications/{app_id}/submit", headers={**headers["op"], "If-Match": r.headers["etag"]})
    assert r.status_code == 200, r.text
    cases = r.json()["cases"]
    assert [c["authority"]["name"] for c in cases] == ["Stadt Neu-Isenburg"], cases
    reference = r.json()["reference"]
    case_id = cases[0]["id"]

    # a draft of the operator (attachments are uploaded to drafts)
    r = client.post("/api/v1/applications", headers=headers["op"], json=draft_body(route))
    assert r.status_code == 201, r.text
    draft_id = r.json()["id"]

    # a statement request to the first body (as the participation step writes it)
    statement = StatementRequest(id=uuid.uuid4(), tenant_key="he", application_id=uuid.UUID(app_id), version=1,
                                 body_org_id=bodies[0].organisation_id, role="traffic",
                                 triggers=[{"rule": "matrix", "reason": "Gehwegsperrung"}], status="requested",
                                 requested_at=clock.now, due_on=clock.now.date().replace(month=3),
                                 created_at=clock.now, updated_at=clock.now)
    session.add(statement)
    session.commit()

    # the decision and its signed document
    etag = client.get(f"/api/v1/cases/{case_id}", headers=headers["rev"]).headers["etag"]
    r = client.post(f"/api/v1/cases/{case_id}/decision", headers={**headers["rev"], "If-Match": etag},
                    json={"outcome": "granted", "conditions": ["HE-N01"], "explanation": "Zustimmung",
                          "confirm_pending_statements": True})          # the body's request is still open
    assert r.status_code == 200, r.text
    outbox.relay(db)
    event = session.scalars(select(Event).where(Event.case_id == uuid.UUID(case_id),
                                                Event.type == "case.decided")).one()
    document_id = documents_for_event.apply(args=[outbox.event_dict(event)]).get()
    assert document_generate.apply(args=[document_id]).get()["status"] == "ready"
    session.expire_all()
    assert session.get(DecisionDocument, uuid.UUID(document_id)).status == "ready"
    delivery_id = session.scalars(select(Delivery.id).where(Delivery.subscription_id == uuid.UUID(webhook_id))
                                  .limit(1)).one()

    # two spare tokens of the operator: one it revokes itself, one the tenant admin revokes
    user = session.get(User, he.operator.user_id)
    own_spare = identity.create_token(session, user, "spare 1")[0].id
    admin_spare = identity.create_token(session, user, "spare 2")[0].id
    session.commit()

    # confirmation links for addresses the operator typed in: one open, one used
    from notifications.contacts import confirm, request_confirmation

    now = datetime.now(timezone.utc)
    contact_token, _ = request_confirmation(session, tenant_key="he", org_id=he.orgs["operator"],
                                            email="Bauleitung.Sued@glasfaser-test.example",
                                            application_id=uuid.UUID(app_id), now=now)
    used_token, _ = request_confirmation(session, tenant_key="he", org_id=he.orgs["operator"],
                                         email="vertretung@glasfaser-test.example", application_id=None, now=now)
    confirm(session, used_token, now)
    session.commit()

    first = lines["neu_isenburg"]["coordinates"][0]
    z, x, y = tile_of(*first)
    ids = {"application_id": app_id, "draft_id": draft_id, "case_id": case_id, "attachment_id": attachment_id,
           "webhook_id": webhook_id,
           "delivery_id": str(delivery_id), "document_id": document_id, "statement_id": str(statement.id),
           "feature_id": app_id, "collection_id": "applications", "number": "1", "step": "resolution",
           "user_id": str(he.operator.user_id), "token_id": str(own_spare), "operator_org": str(he.orgs["operator"]),
           "authority_org": str(ni.id), "kreis_offenbach": str(he.orgs["kreis_offenbach"]),
           "z": str(z), "x": str(x), "y": str(y), "contact_token": contact_token, "used_contact_token": used_token,
           "contact_email": "bauleitung.sued@glasfaser-test.example", "reference": reference}
    w = World(client, session, headers, users, ids, lines, uuid.UUID(case_id))
    w.ids["admin_token_id"] = str(admin_spare)
    return w


# --- the walk -------------------------------------------------------------------------------------------------------

def operations(app) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
            if method in ("get", "post", "put", "patch", "delete")}


def coverage_problems(app) -> list[str]:
    routes = operations(app)
    decided = {(m, p) for m, p, _ in MATRIX}
    problems = [f"{m} {p}: a route without a decision in the access matrix; add a row to MATRIX in "
                f"tests/permits/test_access_matrix.py" for m, p in sorted(routes - decided)]
    problems += [f"{m} {p}: a row in the access matrix for a route that no longer exists; remove it"
                 for m, p in sorted(decided - routes)]
    return problems


# Rows in which no caller gets through. Every other row has at least one caller with a normal answer, which proves
# that its request (path values, body) is right and the refusals in it are the authorisation's, not a wrong URL's.
NOBODY_GETS_THROUGH = {("GET", "/contact-confirmations", "unknown token"),
                       ("GET", "/api/v1/auth/links/{token}", "unknown token"),
                       ("POST", "/api/v1/auth/links/{token}", "used token"),
                       ("POST", "/contact-confirmations", "used token"),
                       ("POST", "/api/v1/cases/{case_id}/decision", "no If-Match")}


def test_matrix_names_every_route(app):
    problems = coverage_problems(app)
    assert not problems, "\n".join(problems)
    for key, row in MATRIX.items():
        cells = row.split()
        assert len(cells) == len(CALLERS), f"{key}: {len(cells)} cells for {len(CALLERS)} callers"
        through = [c for c in cells if any(o[:3] not in ("401", "403", "404", "410", "428") for o in c.split("|"))]
        assert bool(through) != (key in NOBODY_GETS_THROUGH), f"{key}: {row}"


def fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], template)


def contains(response, marker: str) -> bool:
    """The marker in the answer's bytes (also in a binary vector tile, whose strings are UTF-8)."""
    return marker.encode() in response.content


def cell_ok(expected: str, response, marker: str | None) -> bool:
    for option in expected.split("|"):
        status, sign = int(option[:3]), option[3:]
        if response.status_code != status:
            continue
        if sign and marker is None:
            raise AssertionError(f"'{option}' needs a marker for the row")
        if sign == "+" and not contains(response, marker):
            continue
        if sign == "-" and contains(response, marker):
            continue
        return True
    return False


def send(w: World, method: str, path: str, caller: str, req: Req, values: dict[str, str]):
    headers = dict(w.headers[caller])
    if req.fresh_token and caller != "anon":
        user = w.session.get(User, w.users[caller])
        headers = {"Authorization": "Bearer " + identity.create_token(w.session, user, "matrix")[1]}
        w.session.commit()
    if req.if_match:
        headers["If-Match"] = req.if_match
    query = {k: fill(v, values) for k, v in req.query.items()}
    kwargs: dict[str, Any] = {"headers": headers, "params": query or None}
    if req.json is not None:
        kwargs["content"] = fill(json.dumps(req.json), values)
        headers["Content-Type"] = "application/json"
    if req.files is not None:
        kwargs["files"] = {k: (n, io.BytesIO(b), t) for k, (n, b, t) in req.files.items()}
    if req.data is not None:
        kwargs["data"] = {k: fill(v, values) for k, v in req.data.items()}
    return w.client.request(method, fill(path, values), **kwargs)


@pytest.mark.slow
def test_access_matrix(app, matrix, settings, monkeypatch):
    w = matrix
    # /readyz waits this long for a worker's answer (there is none here: 503); 13 callers need not wait 1 s each
    monkeypatch.setattr(settings, "readiness_timeout_s", 0.1)
    problems = coverage_problems(app)
    requests = requests_for(w)
    unknown = set(requests) - set(MATRIX)
    assert not unknown, f"request details for rows that are not in MATRIX: {unknown}"
    mismatches: list[str] = []
    holes: list[str] = []
    cells = 0
    for (method, path, variant), row in MATRIX.items():
        req = requests.get((method, path, variant), Req())
        shared = {**w.ids, **req.ids}
        if path == "/api/v1/users/{user_id}/tokens/{token_id}":
            shared["token_id"] = w.ids["admin_token_id"]
        marker = None
        if req.marker is not None:
            marker = w.ids.get(req.marker, req.marker)
        for caller, expected in zip(CALLERS, row.split(), strict=True):
            values = {**shared, **(req.prepare(w) if req.prepare else {})}
            r = send(w, method, path, caller, req, values)
            cells += 1
            if cell_ok(expected, r, marker):
                continue
            where = f"{method} {path}{' [' + variant + ']' if variant else ''} as {caller}"
            got = f"{r.status_code}{'' if marker is None else ('+' if contains(r, marker) else '-')}"
            line = f"{where}: expected {expected}, got {got}: {r.text[:160]}"
            mismatches.append(line)
            # An authorisation hole: a caller refused by the matrix (401/403/404, or a list without the object)
            # that got the object.
            refused = all(o[:3] in ("401", "403", "404") or o.endswith("-") for o in expected.split("|"))
            if refused and r.status_code not in (401, 403, 404) and (
                    r.status_code >= 300 or marker is None or contains(r, marker)):
                holes.append(f"AUTHORISATION HOLE: {line}")
    assert not problems, "\n".join(problems)
    assert not holes, (f"{len(holes)} authorisation holes (a caller the matrix refuses got through):\n"
                       + "\n".join(holes) + f"\n\nall {len(mismatches)} differences:\n" + "\n".join(mismatches))
    assert not mismatches, f"{len(mismatches)} of {cells} cells differ from the matrix:\n" + "\n".join(mismatches)
    assert cells == len(MATRIX) * len(CALLERS)
