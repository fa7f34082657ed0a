"""Browser-test fixtures: a real uvicorn server on a free port against the test database, committed people in
tenant "he" (an operator and a reviewer of the Landkreis Offenbach), and Debian's Chromium driven by Playwright.

The people, their tokens and the operator's applications are deleted afterwards (the append-only audit trail
stays, as it must). Screenshots and the server log go to test-artifacts/web/ (gitignored).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from breitband import identity
from breitband.models import Organisation, OrgKind, Role, User
from breitband.settings import PROJECT_ROOT
from geo.models import Authority

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 # WebGL without a GPU: Chromium's software renderer (SwiftShader) must be allowed explicitly
                 "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "web"
KREIS_OFFENBACH = "06438"


@dataclass
class Person:
    name: str
    email: str
    token: str
    organisation_id: uuid.UUID


@dataclass
class People:
    operator: Person
    reviewer: Person
    operator_org_id: uuid.UUID
    user_ids: list[uuid.UUID]


@pytest.fixture(scope="module")
def people(engine, he_data) -> Iterator[People]:
    """A new operator organisation with one member, and a reviewer of the Landkreis Offenbach, COMMITTED (the
    server runs in another process). Removed afterwards, with the operator's applications and cases."""
    from permits.catalogue import load_catalogue_file

    run = uuid.uuid4().hex[:8]
    with Session(bind=engine) as session:
        load_catalogue_file(session, "he", PROJECT_ROOT / "data" / "tenants" / "he_conditions.toml")
        op_org = identity.create_organisation(session, "he", OrgKind.operator, f"Glasfaser Browsertest {run} GmbH")
        kreis = session.scalars(select(Organisation).join(Authority, Authority.organisation_id == Organisation.id)
                                .where(Authority.tenant_key == "he", Authority.key == KREIS_OFFENBACH)).one()
        made = []
        for org, email, name, role in ((op_org, f"planerin-{run}@glasfaser.example", "Petra Planerin",
                                        Role.operator_member),
                                       (kreis, f"pruefer-{run}@kreis-offenbach.example", "Paul Prüfer",
                                        Role.authority_reviewer)):
            user = identity.create_user(session, org, email, name, role)
            _, secret = identity.create_token(session, user, "browser test")
            made.append((user, Person(name, email, secret, org.id)))
        session.commit()
        result = People(operator=made[0][1], reviewer=made[1][1], operator_org_id=op_org.id,
                        user_ids=[u.id for u, _ in made])
    yield result
    with Session(bind=engine) as session:
        session.execute(delete(User).where(User.id.in_(result.user_ids)))   # tokens go with them (cascade)
        # the organisation's applications, versions, attachments and cases go with it (cascade)
        session.execute(delete(Organisation).where(Organisation.id == result.operator_org_id))
        session.commit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(engine, people, tmp_path_factory) -> Iterator[str]:
    """uvicorn serving the app (API + web app) on a free port, against the test database."""
    if not (PROJECT_ROOT / "web" / "dist" / "index.html").is_file():
        pytest.fail("web/dist is missing: scripts/setup.sh builds the web app (npm ci && npm run build in web/)")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BREITBAND_PUBLIC_BASE_URL": base, "BREITBAND_LOG_LEVEL": "INFO",
           "BREITBAND_DATA_DIR": str(tmp_path_factory.mktemp("web-data"))}
    log = open(ARTIFACTS / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "breitband.app:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=PROJECT_ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not start (see {ARTIFACTS / 'server.log'})")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
