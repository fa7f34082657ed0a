"""A real OpenID Provider for the tests: panva/oidc-provider (OpenID Certified) run by Node from tests/support/oidc/
(provider.mjs; its accounts and clients are described there).

Use in a test (the fixture is session-scoped, one provider for the run):

    def test_sign_in(client, oidc_provider, ...):
        use_oidc(session, "xa", oidc_provider, organisations={"hessen-mobil": "Straßenbauamt Testland A"})
        start = client.get("/auth/oidc/he/start", follow_redirects=False)
        back = oidc_provider.sign_in(start.headers["location"], "reviewer")   # fills the provider's login form
        done = client.get(back, follow_redirects=False)                      # our callback: cookie + 302

``oidc_provider.sign_in`` drives the provider's devInteractions login form with httpx and returns the URL the
provider sends the browser back to (our callback with code, state and iss). Accounts: ``reviewer`` and ``colleague``
(org "hessen-mobil", role "pruefer", domain hessen-mobil.example), ``stranger`` (an unmapped org), ``foreign`` (a
foreign e-mail domain), ``unverified`` (email_verified false), ``chief`` (an unmapped role).

The provider accepts the redirect URIs ``<base>/auth/oidc/<tenant>/callback`` and the post-logout redirect URIs
``<base>/auth/oidc/<tenant>/signed-out`` for the base URL and tenants it was started with: the session fixture uses
the test settings' public_base_url and the tenants of TENANTS. A browser story whose server runs elsewhere starts
one of its own: ``with running_provider(base_urls=[server.url], tenants=["he"]) as provider: ...``, gives the tenant
``use_oidc(...)`` rules (committed) and starts the server with ``SECRET_ENV=provider.client_secret`` in its
environment (the rules name that variable; the session fixture sets it in this process only). A browser signs in on
the provider's login page by typing the account id into "login" and anything into "password"; there is no consent
page. Mind that tests/support/oidc.py's ``oidc_provider`` runs without the ``worker`` marker: it is quick and local.

``npm ci`` runs once if tests/support/oidc/node_modules is missing or older than the lock file (scripts/setup.sh
installs it too). Without Node the tests that use the provider are skipped.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from sqlalchemy.orm import Session

from breitband.models import Tenant
from breitband.settings import PROJECT_ROOT
from geo.rules import validate_rules
from tests.support.waiting import free_port, wait_for

HERE = Path(__file__).resolve().parent / "oidc"
TENANTS = ("he", "by", "nw", "xa", "xb")     # tenants of tests/support/hessen.py, data/tenants, tests/conftest.py
SECRET = "breitband-test-secret"
INTRUDER = ("intruder", "intruder-secret")   # the provider's second client (another audience)
SECRET_ENV = "BREITBAND_TEST_OIDC_CLIENT_SECRET"


def callback_uri(base_url: str, tenant: str) -> str:
    return f"{base_url.rstrip('/')}/auth/oidc/{tenant}/callback"


def signed_out_uri(base_url: str, tenant: str) -> str:
    return f"{base_url.rstrip('/')}/auth/oidc/{tenant}/signed-out"


@dataclass
class OpenIdProvider:
    """A running provider: its issuer, the confidential client registered for Breitband, and the log file."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    log: Path
    browser: httpx.Client = field(default_factory=lambda: httpx.Client(follow_redirects=False, timeout=10))

    def rules(self, **overrides: Any) -> dict[str, Any]:
        """A tenant's ``[sign_in.oidc]`` section for this provider (secret from SECRET_ENV); ``overrides`` replace
        keys."""
        section = {
            "name": "Test-IdP", "issuer": self.issuer, "client_id": self.client_id, "client_secret_env": SECRET_ENV,
            "scopes": ["openid", "email", "profile", "org", "role"], "organisation_claim": "org",
            "role_claim": "role", "organisations": {"hessen-mobil": "Hessen Mobil"},
            "roles": {"pruefer": "authority_reviewer"}, "allowed_domains": ["hessen-mobil.example"],
            "provision": True,
        }
        return {**section, **overrides}

    def sign_in(self, authorize_url: str, account: str) -> str:
        """Follow ``authorize_url`` as a browser would, sign in as ``account`` on the login form, and return the
        absolute URL the provider redirects to outside itself (the relying party's callback). A fresh cookie jar per
        call: every sign-in starts without a provider session."""
        self.browser.cookies.clear()
        response = self.browser.get(authorize_url)
        for _ in range(10):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if not target.startswith(self.issuer + "/"):
                    return target
                response = self.browser.get(target)
                continue
            action, fields = self._form(response, account)
            response = self.browser.post(action, data=fields)
        raise AssertionError(f"the provider did not redirect back (last page: {response.status_code})")

    def _form(self, page: httpx.Response, account: str) -> tuple[str, dict[str, str]]:
        """The action and fields of the provider's interaction form (login, or consent if it asks)."""
        action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
        if page.status_code != 200 or action is None:
            text = re.sub(r"<[^>]+>|\s+", " ", page.text)[-400:]
            raise AssertionError(f"the provider answered {page.status_code} without a form: {text}")
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        if fields.get("prompt") == "login":
            fields.update(login=account, password="any password")
        return urljoin(str(page.url), unescape(action.group(1))), fields

    def tokens_for(self, client: tuple[str, str], account: str, redirect_uri: str, *, nonce: str) -> dict[str, Any]:
        """A complete authorization code flow as ``client`` (id, secret), outside Breitband: the token response
        (with a real, signed ID token for that client's audience). For tests of the ID token validation."""
        verifier = "v" * 20 + hashlib.sha256(nonce.encode()).hexdigest()
        challenge = _s256(verifier)
        url = str(httpx.URL(f"{self.issuer}/auth", params={
            "response_type": "code", "client_id": client[0], "redirect_uri": redirect_uri,
            "scope": "openid email profile org role", "state": "test-state", "nonce": nonce,
            "code_challenge": challenge, "code_challenge_method": "S256"}))
        back = httpx.URL(self.sign_in(url, account))
        response = httpx.post(f"{self.issuer}/token", auth=client, data={
            "grant_type": "authorization_code", "code": back.params["code"], "redirect_uri": redirect_uri,
            "code_verifier": verifier})
        response.raise_for_status()
        return response.json()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def use_oidc(session: Session, tenant_key: str, provider: OpenIdProvider, **overrides: Any) -> dict[str, Any]:
    """Give the tenant valid rules (those of data/tenants/he.toml under its own key, when it has none) with a
    ``[sign_in.oidc]`` for ``provider``; flushed in the caller's session. → the section."""
    tenant = session.get(Tenant, tenant_key)
    rules = dict(tenant.rules) if tenant.rules else {**tomllib.loads((PROJECT_ROOT / "data" / "tenants" / "he.toml")
                                                                     .read_text()), "key": tenant_key}
    section = provider.rules(**overrides)
    tenant.rules = validate_rules({**rules, "sign_in": {**rules.get("sign_in", {}), "oidc": section}}, tenant_key)
    session.flush()
    return section


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def install() -> None:
    """``npm ci`` in tests/support/oidc when node_modules is missing or from another lock file (a stamp file holds
    the lock file's hash, as scripts/setup.sh does for web/)."""
    lock_hash = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()[:16]
    stamp = HERE / "node_modules" / f".breitband-lock-{lock_hash}"
    if stamp.exists():
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True,
                   timeout=300)
    stamp.touch()


@contextmanager
def running_provider(base_urls: Sequence[str], tenants: Sequence[str] = TENANTS, *,
                     log_dir: Path | None = None) -> Iterator[OpenIdProvider]:
    """Start provider.mjs on a free port for these relying-party base URLs and tenants; stop it afterwards."""
    install()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    redirect = [callback_uri(b, t) for b in base_urls for t in tenants]
    post_logout = [signed_out_uri(b, t) for b in base_urls for t in tenants]
    args = ["node", "provider.mjs", "--port", str(port), "--client-secret", SECRET]
    args += [a for uri in redirect for a in ("--redirect-uri", uri)]
    args += [a for uri in post_logout for a in ("--post-logout-redirect-uri", uri)]
    log = Path(log_dir or tempfile.gettempdir()) / f"breitband-oidc-provider-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(args, cwd=HERE, stdout=out, stderr=subprocess.STDOUT)
    provider = OpenIdProvider(issuer=issuer, client_id="breitband", client_secret=SECRET,
                              redirect_uris=tuple(redirect), log=log)
    try:
        wait_for(lambda: process.poll() is not None or _discoverable(issuer), timeout=30,
                 what=f"the OpenID Provider at {issuer} (log: {log})")
        if process.poll() is not None:
            raise AssertionError(f"the OpenID Provider exited with {process.returncode}:\n{provider.log_text()}")
        yield provider
    finally:
        provider.browser.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _discoverable(issuer: str) -> bool:
    try:
        return httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def oidc_provider(settings, tmp_path_factory) -> Iterator[OpenIdProvider]:
    """The suite's OpenID Provider, for the relying party at the test settings' public_base_url (tenants he, by,
    nw). Fails when Node is not installed (scripts/setup.sh installs it)."""
    if not node_available():
        # scripts/setup.sh installs Node (the web app needs it too): missing here is a broken set-up, not a skip
        pytest.fail("Node.js and npm are needed for the OpenID Provider (tests/support/oidc); scripts/setup.sh "
                    "installs them")
    with running_provider([settings.public_base_url], log_dir=tmp_path_factory.mktemp("oidc")) as provider:
        os.environ[SECRET_ENV] = provider.client_secret
        try:
            yield provider
        finally:
            os.environ.pop(SECRET_ENV, None)
