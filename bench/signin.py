"""Benchmark: "sign-in to first inbox page" in the browser, for an authority reviewer signing in with a password.

    .venv/bin/python bench/signin.py [--runs 20] [--warmup 2] [--applications 12]

What it sets up, all of its own:

* PostgreSQL database ``breitband_bench_signin`` (BREITBAND_BENCH_SIGNIN_DATABASE_URL; default: the server of
  BREITBAND_DATABASE_URL), dropped, created and migrated (`alembic upgrade head`) every run;
* tenant "he" from data/tenants/he.toml with the VG250 boundaries of Hessen (the authority directory) and the OSM
  roads of the Frankfurter Kreuz;
* a private Redis server on a free loopback port (broker, results, rate-limit counters): submissions kick the
  outbox relay and the review pipeline through the broker, and nothing may land in the demo's or a colleague's
  queue (no worker runs: the pipeline steps stay pending, as they may);
* uvicorn serving the app (API and the built web app, web/dist) on a free port, one process, log level WARNING
  (log: var/bench-signin/server.log);
* an operator with a token submits --applications applications through the HTTP API, along two real streets of
  Neu-Isenburg (tests/support/hessen.py's routes), so the Stadt Neu-Isenburg's inbox has that many open cases;
* a reviewer of that authority with a password (Argon2id, accounts/passwords.py).

Then, in Chromium (/usr/bin/chromium driven by Playwright, headless), --warmup + --runs sign-ins, each in a fresh
browser context (no cookies, no cache: the web app is loaded anew, as on a reviewer's first visit of the day):
open /#/login, type the address and the password, press "Anmelden", wait until the inbox table has its rows. It
prints p50/p95/max in ms of

* the whole: from opening /#/login until the inbox table is rendered;
* its parts: loading the sign-in page until the form is there; from pressing "Anmelden" until the table is there;
  the POST /api/v1/auth/login request alone (as the browser timed it);

and, measured separately in this process, one Argon2id verification (accounts.passwords.verify with the stored
hash: the password check of every sign-in), with its share of the login request.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench-signin"
MAIN_URL = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")
BENCH_URL = os.environ.get("BREITBAND_BENCH_SIGNIN_DATABASE_URL") or make_url(MAIN_URL).set(
    database="breitband_bench_signin").render_as_string(hide_password=False)
os.environ["BREITBAND_DATABASE_URL"] = BENCH_URL
os.environ.pop("BREITBAND_DATABASE_READONLY_URL", None)
os.environ.setdefault("BREITBAND_LOG_LEVEL", "WARNING")
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from accounts import passwords  # noqa: E402
from breitband import identity  # noqa: E402
from breitband.demo import ensure_tenant  # noqa: E402
from breitband.migrate import create_database, drop_database, upgrade  # noqa: E402
from breitband.models import OrgKind, Role  # noqa: E402
from geo.importers import import_boundaries, import_roads  # noqa: E402
from tests.support.api import collection, draft_body, trench  # noqa: E402
from tests.support.hessen import HE_BOUNDARY_FILES, NEU_ISENBURG, authority_org, stretch  # noqa: E402
from tests.support.waiting import free_port, wait_for  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--enable-unsafe-swiftshader",
                 "--use-angle=swiftshader"]
ROADS = [ROOT / "data" / "roads" / "hessen" / "frankfurter-kreuz.osm.pbf"]
STREETS = ["neu_isenburg", "neu_isenburg_2"]         # Admiral-Rosendahl-Straße, Buchenring (Stadt Neu-Isenburg)
REVIEWER_EMAIL = "pruefer@neu-isenburg.bench.example"
REVIEWER_PASSWORD = "Stadtwald-Gravenbruch-2026!"


def say(msg: str = "") -> None:
    print(msg, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def figures(name: str, values: list[float]) -> str:
    return f"  {name:<50} p50 {pct(values, 50):7.1f}   p95 {pct(values, 95):7.1f}   max {max(values):7.1f} ms"


# --- the world --------------------------------------------------------------------------------------------------

def build_world(engine) -> str:
    """Tenant he with boundaries and the Frankfurter Kreuz; an operator (→ its token) and the reviewer."""
    with Session(bind=engine) as session:
        ensure_tenant(session)
        import_boundaries(session, "he", HE_BOUNDARY_FILES)
        import_roads(session, "he", ROADS)
        session.commit()
        operator_org = identity.create_organisation(session, "he", OrgKind.operator, "Glasfaser Bench GmbH",
                                                    email="planung@glasfaser-bench.example")
        operator = identity.create_user(session, operator_org, "planer@glasfaser-bench.example", "Olaf Planer",
                                        Role.operator_member)
        _, secret = identity.create_token(session, operator, "bench")
        reviewer = identity.create_user(session, authority_org(session, key=NEU_ISENBURG), REVIEWER_EMAIL,
                                        "Rita Prüferin", Role.authority_reviewer)
        passwords.check(REVIEWER_PASSWORD, email=REVIEWER_EMAIL, name=reviewer.name)
        reviewer.password_hash = passwords.hash_password(REVIEWER_PASSWORD)
        session.commit()
    return secret


def submit_applications(base: str, engine, token: str, count: int) -> int:
    """``count`` applications along the Neu-Isenburg streets, created and submitted through the API. → the cases
    of the reviewer's authority."""
    with engine.connect() as conn:
        routes = [stretch(conn, name) for name in STREETS]
    headers = {"Authorization": f"Bearer {token}"}
    cases = 0
    today = date.today()
    with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=60) as api:
        for n in range(count):
            body = draft_body(collection(trench(routes[n % len(routes)])),
                              project_name=f"FTTH Neu-Isenburg, Bauabschnitt {n + 1}",
                              operator_reference=f"GB-NI-{n + 1:03d}",
                              planned_start=(today + timedelta(days=30)).isoformat(),
                              planned_end=(today + timedelta(days=90)).isoformat())
            created = api.post("/applications", json=body)
            created.raise_for_status()
            submitted = api.post(f"/applications/{created.json()['id']}/submit", json={},
                                 headers={"If-Match": created.headers["etag"]})
            if submitted.status_code != 200:
                raise SystemExit(f"submit answered {submitted.status_code}: {submitted.text}")
            cases += sum(c["authority"]["name"].endswith("Neu-Isenburg") for c in submitted.json()["cases"])
    return cases


@contextmanager
def serving(env: dict[str, str]) -> Iterator[str]:
    """uvicorn with the app on a free loopback port against the bench database; → its base URL once /healthz
    answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {**os.environ, "BREITBAND_PUBLIC_BASE_URL": base, **env}
    with open(VAR / "server.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "breitband.app:create_app", "--factory",
                                 "--host", "127.0.0.1", "--port", str(port)], env=environment, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: proc.poll() is not None or _healthy(base), timeout=30, what=f"uvicorn at {base}")
            if proc.poll() is not None:
                raise SystemExit(f"uvicorn exited with {proc.returncode}: see {VAR / 'server.log'}")
            yield base
        finally:
            proc.terminate()
            proc.wait(10)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# --- the measurement --------------------------------------------------------------------------------------------

def sign_in_once(browser, base: str) -> dict[str, float]:
    """One reviewer's sign-in in a fresh context. → ms: total, page (form there), submit (to the table), login."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="de-DE")
    try:
        page = ctx.new_page()
        start = time.perf_counter()
        page.goto(f"{base}/#/login")
        email = page.get_by_label("E-Mail-Adresse")
        email.wait_for()
        form = time.perf_counter()
        email.fill(REVIEWER_EMAIL)
        page.get_by_label("Passwort", exact=True).fill(REVIEWER_PASSWORD)
        with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/login")) as answer:
            pressed = time.perf_counter()
            page.get_by_role("button", name="Anmelden").click()
        if answer.value.status != 200:
            raise SystemExit(f"sign-in failed: {answer.value.status} {answer.value.text()}")
        page.locator("#inbox-table tbody tr").first.wait_for()
        done = time.perf_counter()
        timing = answer.value.request.timing
        page_ms, submit_ms = (form - start) * 1000, (done - pressed) * 1000
        return {"total": page_ms + submit_ms, "page": page_ms, "submit": submit_ms,
                "login": timing["responseEnd"] - timing["requestStart"]}
    finally:
        ctx.close()


def argon2_verify_ms(engine, runs: int) -> list[float]:
    """One Argon2id verification of the reviewer's stored hash, ``runs`` times (in this process)."""
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM users WHERE email = %s",
                                      (REVIEWER_EMAIL,)).scalar_one()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        assert passwords.verify(stored, REVIEWER_PASSWORD)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--applications", type=int, default=12)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright  # deferred: only once the set-up went well

    if not (ROOT / "web" / "dist" / "index.html").is_file():
        raise SystemExit("web/dist is missing: scripts/setup.sh builds the web app (npm ci && npm run build in web/)")
    VAR.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    drop_database(BENCH_URL)
    create_database(BENCH_URL)
    upgrade(BENCH_URL)
    engine = create_engine(BENCH_URL)
    token = build_world(engine)
    say(f"database {make_url(BENCH_URL).database}: migrated, tenant he, boundaries and roads in "
        f"{time.perf_counter() - t:.1f} s")

    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(VAR)], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _redis_up(redis_port), timeout=10, what="the private Redis server")
        env = {"BREITBAND_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
               "BREITBAND_RESULT_BACKEND": f"redis://127.0.0.1:{redis_port}/1",
               "BREITBAND_LIMITS_REDIS_URL": f"redis://127.0.0.1:{redis_port}/2",
               "BREITBAND_DATA_DIR": str(VAR / "data"), "BREITBAND_LOG_LEVEL": "WARNING"}
        with serving(env) as base:
            cases = submit_applications(base, engine, token, args.applications)
            say(f"{args.applications} applications submitted: {cases} open cases in the inbox of the Stadt "
                f"Neu-Isenburg")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    for _ in range(args.warmup):
                        sign_in_once(browser, base)
                    runs = [sign_in_once(browser, base) for _ in range(args.runs)]
                finally:
                    browser.close()
    finally:
        redis.terminate()
        redis.wait(10)
    verify = argon2_verify_ms(engine, max(args.runs, 20))
    engine.dispose()
    report(runs, verify, args)


def _redis_up(port: int) -> bool:
    try:
        return subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True,
                              timeout=2).stdout.strip() == "PONG"
    except subprocess.TimeoutExpired:
        return False


def report(runs: list[dict[str, float]], verify: list[float], args) -> None:
    column = {key: [r[key] for r in runs] for key in ("total", "page", "submit", "login")}
    say()
    say(f"sign-in to first inbox page, {args.runs} sign-ins after {args.warmup} warm-up, each in a fresh browser "
        f"context (Chromium, 1440×900); load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    say(figures("whole (open /#/login → inbox table; no typing)", column["total"]))
    say(figures("  sign-in page until the form is there", column["page"]))
    say(figures("  'Anmelden' pressed → inbox table rendered", column["submit"]))
    say(figures("    of which POST /api/v1/auth/login", column["login"]))
    say(figures("Argon2id verify (in-process, one per sign-in)", verify))
    share = statistics.median(verify) / statistics.median(column["login"])
    say(f"  the password hash is {share:.0%} of the login request and "
        f"{statistics.median(verify) / statistics.median(column['total']):.0%} of the whole (p50 over p50)")


if __name__ == "__main__":
    main()
