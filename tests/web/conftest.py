"""Browser-test fixtures: a real uvicorn server on a free port against the test database and broker, a real Celery
worker on the same broker (the outbox relay, the review pipeline and the decision documents run as they do in
production), committed people in tenant "he" (an operator, a reviewer of the Landkreis Offenbach, a reviewer of a
traffic authority registered as the participating body for the Kreis Offenbach, and a tenant admin), each with a
password (people sign in to the web app with it) and an API token (for the tests' own calls), and Debian's Chromium
driven by Playwright.

The people, their tokens and the operator's applications are deleted afterwards (the append-only audit trail
stays, as it must). Screenshots and the server log go to test-artifacts/web/ (gitignored).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from playwright.sync_api import expect
from sqlalchemy import delete
from sqlalchemy.orm import Session

from accounts import passwords
from breitband import identity
from breitband.models import Organisation, OrgKind, Role, User
from breitband.settings import PROJECT_ROOT
from permits.cases.catalogue import load_catalogue_file
from permits.participation import service as participation
from tests.support.hessen import KREIS_OFFENBACH, authority_org
from tests.support.web_server import running_server

CHROMIUM = "/usr/bin/chromium"
# Playwright's assertions wait 5 s by default; a page that loads its case and its map on a 2-core machine busy with
# the workers of the same test (pipeline, documents) needs longer at times. A failing assertion still fails, later.
expect.set_options(timeout=15_000)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 # WebGL without a GPU: Chromium's software renderer (SwiftShader) must be allowed explicitly
                 "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]


@dataclass
class Person:
    name: str
    email: str
    token: str
    organisation_id: uuid.UUID
    password: str = ""
    user_id: uuid.UUID | None = None


def password_for(email: str) -> str:
    """A password that passes the policy (12+ characters, not common, not the address or name)."""
    return f"Kiefernzapfen-{hashlib.sha256(email.encode()).hexdigest()[:10]}!"


def give_password(user: User, password: str) -> None:
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = datetime.now(timezone.utc)


@dataclass
class People:
    operator: Person
    reviewer: Person
    body: Person                  # Straßenverkehrsbehörde, asked when an application declares traffic restrictions
    admin: Person                 # tenant admin (operating office): sees pipeline errors, retries steps
    operator_org_id: uuid.UUID
    body_org_id: uuid.UUID
    office_org_id: uuid.UUID
    user_ids: list[uuid.UUID]


@pytest.fixture(scope="module")
def people(engine, he_data) -> Iterator[People]:
    """A new operator organisation with one member, a reviewer of the Landkreis Offenbach, and a new traffic
    authority registered as the body to hear about traffic restrictions in the Kreis Offenbach (the rule
    "verkehrsrechtliche-anordnung" of the tenant's participation rules), COMMITTED (the server and the worker use
    their own connections). Removed afterwards, with the operator's applications, cases, documents and statement
    requests."""
    run = uuid.uuid4().hex[:8]
    with Session(bind=engine) as session:
        load_catalogue_file(session, "he", PROJECT_ROOT / "data" / "tenants" / "he_conditions.toml")
        op_org = identity.create_organisation(session, "he", OrgKind.operator, f"Glasfaser Browsertest {run} GmbH")
        body_org = identity.create_organisation(session, "he", OrgKind.participating_body,
                                                f"Straßenverkehrsbehörde Kreis Offenbach {run}")
        participation.add_body(session, "he", body_org, "traffic", KREIS_OFFENBACH, datetime.now(timezone.utc))
        office = identity.create_organisation(session, "he", OrgKind.operating_office,
                                              f"Servicestelle Browsertest {run}")
        kreis = authority_org(session, key=KREIS_OFFENBACH)
        made = []
        for org, email, name, role in ((op_org, f"planerin-{run}@glasfaser.example", "Petra Planerin",
                                        Role.operator_member),
                                       (kreis, f"pruefer-{run}@kreis-offenbach.example", "Paul Prüfer",
                                        Role.authority_reviewer),
                                       (body_org, f"verkehr-{run}@kreis-offenbach.example", "Vera Verkehr",
                                        Role.authority_reviewer),
                                       (office, f"service-{run}@servicestelle.example", "Sven Service",
                                        Role.tenant_admin)):
            user = identity.create_user(session, org, email, name, role)
            give_password(user, password_for(email))
            _, secret = identity.create_token(session, user, "browser test")
            made.append((user, Person(name, email, secret, org.id, password_for(email), user.id)))
        session.commit()
        result = People(operator=made[0][1], reviewer=made[1][1], body=made[2][1], admin=made[3][1],
                        operator_org_id=op_org.id, body_org_id=body_org.id, office_org_id=office.id,
                        user_ids=[u.id for u, _ in made])
    yield result
    with Session(bind=engine) as session:
        session.execute(delete(User).where(User.id.in_(result.user_ids)))   # tokens go with them (cascade)
        # the organisations' applications, versions, attachments, cases, documents, statement requests and the
        # body's registration go with them (cascade)
        session.execute(delete(Organisation).where(Organisation.id.in_([result.operator_org_id,
                                                                        result.body_org_id,
                                                                        result.office_org_id])))
        session.commit()


@pytest.fixture(scope="module")
def server(engine, people, settings, worker) -> Iterator[str]:
    """The app on a free port (``running_server``). The worker (tests/support/workers.py) runs the outbox relay the
    server kicks after each commit, the pipeline steps and the document generation."""
    with running_server(settings) as base:
        yield base


CSP_VIOLATIONS: list[str] = []


class CspWatchingBrowser:
    """The Playwright browser, whose every new context reports Content-Security-Policy violations that Chromium logs
    to the console ("Refused to load / execute / apply ... because it violates the following Content Security Policy
    directive") into CSP_VIOLATIONS; the autouse fixture below fails the test that caused one."""

    def __init__(self, browser) -> None:
        self._browser = browser

    def new_context(self, **kwargs):
        ctx = self._browser.new_context(**kwargs)
        ctx.on("console", lambda m: CSP_VIOLATIONS.append(f"{m.type}: {m.text}")
               if "Content Security Policy" in m.text else None)
        return ctx

    def new_page(self, **kwargs):
        return self.new_context(**kwargs).new_page()

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture(autouse=True)
def no_csp_violation():
    """Every browser test runs the web app under the service's CSP (breitband/headers.py): nothing may be refused."""
    CSP_VIOLATIONS.clear()
    yield
    assert CSP_VIOLATIONS == [], "the Content-Security-Policy blocked something:\n" + "\n".join(CSP_VIOLATIONS)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield CspWatchingBrowser(b)
        b.close()
