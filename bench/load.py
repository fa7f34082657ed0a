"""Load test: operators submitting and supplementing, authorities working their inboxes and deciding, against the
stack of `scripts/run` (several API processes and Celery workers, beat), then integrity checks on the database.

    .venv/bin/python bench/load.py [--duration 300] [--operators 50] [--authorities 20] [--seed 1]
                                   [--api-processes 2] [--workers 2] [--worker-concurrency 1] [--worker-nice 0]

Bounded and loopback only. What it sets up, all of its own:

* PostgreSQL database ``breitband_load`` (BREITBAND_LOAD_DATABASE_URL; default: the server of
  BREITBAND_DATABASE_URL), dropped and created again every run; `scripts/run` migrates it and loads the demo.
* A private Redis server on a free loopback port (broker db 0, results db 1, rate-limit counters db 2), started and
  stopped by the bench: the shared Redis on 6379 is used by the demo (0/1), the rate limits (2), the test suite
  (13 limits, 14/15) and colleagues' runs, and a broker db shared with another worker would lose tasks to it.
  ``--redis-url redis://127.0.0.1:6379/12`` uses that db of an existing server instead (and the next two).
* In a child process: an SMTP server (aiosmtpd) counting every message per (event id, recipient), and an HTTP
  webhook receiver counting every call per delivery id. The stack's BREITBAND_WEBHOOK_BLOCKED_NETWORKS leaves out
  loopback (as tests/conftest.py does); loopback is governed by that list alone, the own-address block covers the
  host's other addresses.
* `scripts/run` as a subprocess with BREITBAND_PORT (8100), BREITBAND_API_PROCESSES, BREITBAND_WORKERS,
  BREITBAND_WORKER_CONCURRENCY, its own data dir and beat schedule under var/load/ (logs: var/load/stack.log).
* Users: operator organisations (the demo's "Glasfaser Rhein-Main GmbH" and four more), --operators operator users
  spread over them; --authorities users (reviewers, the first of each authority its admin) spread over the road
  authorities the routes reach; tokens made with breitband.identity in this process. Webhook subscriptions through
  the API: every operator organisation (all events), every staffed authority (case.*) and the operating office
  (all events of the tenant).
* Routes along real roads of the demo network: named streets of the Hessen OSM extracts, 200-300 m of each,
  offset 6 m beside the centre line (as tests/support/hessen.py does), resolved by the product's resolution;
  a template is used only when every authority it reaches has bench users. An application has one or two of them.

Virtual users (asyncio + httpx, one connection pool, every user its own token), each waiting an exponentially
distributed think time before each action (operators --operator-think, mean 45 s; authority users
--authority-think, mean 15 s; reading before acting --read, 2 s). Defaults offer ~1.1 operator actions/s (~0.44
submissions/s) and ~1.2 authority actions/s, about 5 requests/s: on this 2-core machine the workers then use about
0.8 of a core (a decision document costs ~1.5 s of CPU, a delivery ~40 ms), so the load is heavy but the machine is
not simply saturated; shorter think times saturate it and measure only the queueing.

* operator: GET /applications?status=information_requested (its own inbox); if one of its applications waits for
  information: GET it, POST …/supplements (If-Match); otherwise create and submit (--submit-share, 40 %: POST
  /applications with an Idempotency-Key, read, POST …/submit with If-Match) or GET one of its applications.
* authority: GET /cases?status=received&status=in_review (the inbox), GET one of the first ten cases, read, then
  request information (20 % of received cases that never had a request) or decide (granted with catalogue and
  free-text conditions 85 %, partially granted 10 %, refused 5 %) with If-Match. 412 (a colleague changed the case
  since it was read) and 409 (already decided) are the expected outcome of colleagues working one inbox and are
  counted apart from other 4xx.

Afterwards it waits (at most --drain-timeout s) until the outbox is relayed, deliveries are done, pipelines have
finished and documents are issued, then checks with SQL on the bench database:

1. every submission the API accepted (200) is submitted in the database with one case per authority of its
   resolution (and as many as the response listed), no authority twice;
2. every decided case has exactly one decision document, issued (status ready), its PDF on disk with that SHA-256;
   every decision the API accepted is in the database with that outcome;
3. every submitted or supplemented version has exactly one pipeline run, succeeded;
4. every event is published and has exactly one delivery per target: the e-mail addresses and webhook
   subscriptions its audience has at check time (the product's audience providers and the relay's subscription
   rule) — none missing, none extra; every delivery is delivered; the SMTP server received each e-mail delivery
   exactly once (event id + recipient) and the receiver each webhook delivery exactly once (delivery id), and
   nothing else.

Exit status 1 when a target is missed (any 5xx or transport error, anything lost or duplicated, the drain timed out,
p95 of the inbox > 100 ms or of a decision > 300 ms), with the reasons printed last.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "load"
TENANT = "he"
INBOX_P95_MS = 100.0
DECISION_P95_MS = 300.0

OPERATOR_ORGS = [("Glasfaser Rhein-Main GmbH", None),          # the demo's operator (address from the demo)
                 ("Lastnetz Main-Taunus GmbH", "planung@lastnetz-main-taunus.example"),
                 ("Odenwald-Faser Lasttest GmbH", "bau@odenwald-faser-last.example"),
                 ("Wetterau Glasfaser Lasttest GmbH", "netz@wetterau-glas-last.example"),
                 ("Bergstraße Fiber Lasttest GmbH", "antrag@bergstrasse-fiber-last.example")]
METHODS = ["open_trench", "micro_trenching", "mini_trenching", "directional_drilling", "milling", "ploughing"]
CONDITION_SETS = [["HE-N01", "HE-N02"], ["HE-N01", "HE-N02", "HE-N05"], ["HE-N01", "HE-N03", "HE-N06"],
                  ["HE-N02", "HE-N04", "HE-N06", "HE-N07"]]
EXPECTED_CONFLICTS = {409, 412}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- mail catcher and webhook receiver (child process) ----------------------------------------------------------------

def receivers_main(smtp_port: int, http_port: int, conn) -> None:
    import email
    import logging

    from aiosmtpd.smtp import SMTP

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    mails: Counter = Counter()        # (event id, recipient) -> messages
    mail_ids: Counter = Counter()     # Message-ID -> messages
    hooks: Counter = Counter()        # delivery id -> calls
    hook_meta: dict[str, tuple[str, str]] = {}   # delivery id -> (path, event id)
    unsigned = 0

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            msg = email.message_from_bytes(envelope.content)
            event_id = msg.get("X-Breitband-Event-Id", "")
            mail_ids[msg.get("Message-ID", "")] += 1
            for rcpt in envelope.rcpt_tos:
                mails[(event_id, rcpt.strip().lower())] += 1
            return "250 OK"

    async def http(reader, writer):
        nonlocal unsigned
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k:
                        headers[k.strip().lower()] = v.strip()
                await reader.readexactly(int(headers.get("content-length", "0")))
                delivery = headers.get("breitband-delivery-id", "")
                hooks[delivery] += 1
                hook_meta[delivery] = (path, headers.get("breitband-event-id", ""))
                if not headers.get("breitband-signature", "").startswith("v1="):
                    unsigned += 1
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, IndexError, ValueError):
            pass
        finally:
            writer.close()

    async def main():
        loop = asyncio.get_running_loop()
        smtp = await loop.create_server(lambda: SMTP(Handler(), hostname="loadbench.localhost"), "127.0.0.1",
                                        smtp_port)
        web = await asyncio.start_server(http, "127.0.0.1", http_port)
        conn.send("ready")
        while True:
            await asyncio.sleep(0.2)
            if conn.poll():
                cmd = conn.recv()
                if cmd == "counts":
                    conn.send({"mails": dict(mails), "mail_ids": dict(mail_ids), "hooks": dict(hooks),
                               "hook_meta": hook_meta, "unsigned": unsigned})
                elif cmd == "stop":
                    break
        smtp.close()
        web.close()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(main())


# --- the stack -------------------------------------------------------------------------------------------------------

def loadavg() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def cpu_snapshot(stack_pid: int, receivers_pid: int) -> dict[str, float]:
    """CPU seconds used so far: the whole machine (busy, from /proc/stat), the stack's API, worker and beat
    process trees, the PostgreSQL backends connected to the bench database, this process and the receivers."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:9]]
    out = {"machine busy": (sum(v) - v[3] - v[4]) / tick, "machine total": sum(v) / tick}
    parent, cpu, cmd = {}, {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                cmd[int(d)] = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parent[int(d)], cpu[int(d)] = int(f[1]), (int(f[11]) + int(f[12])) / tick

    def tree(pid: int) -> float:
        return cpu.get(pid, 0.0) + sum(tree(c) for c, pp in parent.items() if pp == pid)

    for pid, pp in parent.items():
        if pp == stack_pid:
            c = cmd.get(pid, "")
            kind = ("API" if " serve" in c else "workers" if " worker" in c else "beat" if " beat" in c else
                    "other")
            out[kind] = out.get(kind, 0.0) + tree(pid)
    out["postgres (bench db backends)"] = sum(t for p, t in cpu.items() if "breitband_load" in cmd.get(p, "")
                                              and cmd.get(p, "").startswith("postgres"))
    out["load generator"] = cpu.get(os.getpid(), 0.0)
    out["mail/webhook receivers"] = cpu.get(receivers_pid, 0.0)
    return out


def cpu_report(before: dict[str, float], after: dict[str, float], elapsed: float) -> None:
    wall = after["machine total"] - before["machine total"]
    busy = after["machine busy"] - before["machine busy"]
    ours = sum(after.get(k, 0) - before.get(k, 0) for k in after if not k.startswith("machine"))
    print(f"CPU during the load ({elapsed:.0f} s, {os.cpu_count()} CPUs): machine busy {busy / wall:.0%}; "
          + ", ".join(f"{k} {(after.get(k, 0) - before.get(k, 0)) / elapsed:.2f} cores"
                      for k in ("API", "workers", "beat", "postgres (bench db backends)", "load generator",
                                "mail/webhook receivers"))
          + f"; everything else on the machine (other users, PostgreSQL's own processes) "
            f"{(busy - ours) / elapsed:.2f} cores")


def recreate_database(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)')


def wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"scripts/run ended with {proc.returncode} before the API answered; see "
                             f"{VAR / 'stack.log'}")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200 and r.json().get("ready", True):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    raise SystemExit(f"{url} not ready within {timeout:.0f} s; see {VAR / 'stack.log'}")


def stop_stack(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)      # scripts/run's trap stops API, workers and beat
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- set-up in the bench database ------------------------------------------------------------------------------------

ROUTE_SQL = """
WITH named AS (
    SELECT name, (ST_Dump(ST_LineMerge(ST_Union(geom)))).geom AS g
    FROM road_segments
    WHERE tenant_key = :t AND name IS NOT NULL AND NOT is_private AND NOT is_path
      AND highway IN ('residential', 'tertiary', 'secondary', 'unclassified', 'living_street')
    GROUP BY name
), long AS (
    SELECT DISTINCT ON (name) name, g, ST_Length(g) AS len FROM named ORDER BY name, ST_Length(g) DESC
)
SELECT name, ST_AsGeoJSON(ST_Transform(ST_SetSRID(ST_OffsetCurve(
           ST_LineSubstring(g, 20 / len, LEAST(len - 20, 20 + 280) / len), 6), ST_SRID(g)), 4326), 7)
FROM long WHERE len >= 220 ORDER BY name
"""


def route_templates(session) -> list[dict]:
    from sqlalchemy import text

    from geo.service import resolve

    out = []
    for name, geojson in session.execute(text(ROUTE_SQL), {"t": TENANT}):
        geom = json.loads(geojson)
        if geom["type"] != "LineString" or len(geom["coordinates"]) < 2:
            continue
        feature = {"type": "Feature", "geometry": geom, "properties": {"laying_method": "open_trench",
                                                                        "depth_cm": 60, "width_cm": 40}}
        try:
            res = resolve(session, TENANT, {"type": "FeatureCollection", "features": [feature]}, "EPSG:4326")
        except Exception:  # noqa: BLE001 - a street the resolution refuses is no template
            session.rollback()
            continue
        auths = res.get("authorities") or []
        if not auths or any(a.get("id") is None for a in auths) or \
                res["outside_public_roads"]["length_m"] > 0.2 * res["total_length_m"]:
            continue
        out.append({"name": name, "geometry": geom, "authorities": sorted(a["id"] for a in auths)})
    return out


def set_up(args, base_url: str, hook_url: str) -> dict:
    """Organisations, users, tokens (in this process, on the bench database), route templates, webhooks (API)."""
    import httpx
    from sqlalchemy import select

    from breitband import identity
    from breitband.db import get_database
    from breitband.models import Organisation, OrgKind, Role, User

    rng = random.Random(args.seed)
    with get_database().sessionmaker() as session:
        templates = route_templates(session)
        hits = Counter(a for t in templates for a in t["authorities"])
        staffed_ids = [a for a, _ in hits.most_common(min(args.staffed_authorities, args.authorities))]
        templates = [t for t in templates if set(t["authorities"]) <= set(staffed_ids)]
        if len(templates) < 5:
            raise SystemExit(f"only {len(templates)} route templates reach staffed authorities; check the demo data")
        authorities = [session.get(Organisation, uuid.UUID(a)) for a in staffed_ids]

        operators, reviewers = [], []
        orgs = []
        for name, mail in OPERATOR_ORGS:
            org = session.scalar(select(Organisation).where(Organisation.tenant_key == TENANT,
                                                            Organisation.name == name))
            orgs.append(org or identity.create_organisation(session, TENANT, OrgKind.operator, name, email=mail))
        for i in range(args.operators):
            org = orgs[i % len(orgs)]
            user = identity.create_user(session, org, f"operator{i:03d}@lasttest-{i % len(orgs)}.example",
                                        f"Planer {i:03d}", Role.operator_member)
            _, secret = identity.create_token(session, user, "load", expires_in=timedelta(days=1))
            operators.append({"i": i, "org": str(org.id), "org_index": i % len(orgs), "email": user.email,
                              "token": secret})
        for i in range(args.authorities):
            org = authorities[i % len(authorities)]
            role = Role.authority_admin if i < len(authorities) else Role.authority_reviewer
            user = identity.create_user(session, org, f"pruefer{i:03d}@lasttest-behoerde-{i % len(authorities)}"
                                        ".example", f"Prüferin {i:03d}", role)
            _, secret = identity.create_token(session, user, "load", expires_in=timedelta(days=1))
            reviewers.append({"i": i, "org": str(org.id), "org_name": org.name, "role": role.value,
                              "token": secret})
        admin = session.scalar(select(User).where(User.tenant_key == TENANT, User.role == Role.tenant_admin.value)
                               .order_by(User.email).limit(1))
        _, admin_token = identity.create_token(session, admin, "load", expires_in=timedelta(days=1))
        session.commit()

    subscriptions = {}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        def subscribe(token, path, types):
            r = client.post("/api/v1/webhooks", headers={"Authorization": f"Bearer {token}"},
                            json={"url": f"{hook_url}{path}", "event_types": types, "description": "load test"})
            if r.status_code != 201:
                raise SystemExit(f"webhook subscription for {path} refused: {r.status_code} {r.text[:500]}")
            subscriptions[r.json()["id"]] = path

        subscribe(admin_token, "/office", [])
        for k in range(len(OPERATOR_ORGS)):
            first = next(o for o in operators if o["org_index"] == k) if k < len(operators) else None
            if first:
                subscribe(first["token"], f"/operator/{k}", [])
        for r in reviewers:
            if r["role"] == Role.authority_admin.value:
                subscribe(r["token"], f"/authority/{r['i']}", ["case.*"])
        conditions = client.get("/api/v1/conditions", headers={"Authorization": f"Bearer {reviewers[0]['token']}"})
        reasons = client.get("/api/v1/refusal-reasons",
                             headers={"Authorization": f"Bearer {reviewers[0]['token']}"})
    rng.shuffle(templates)
    return {"templates": templates, "operators": operators, "reviewers": reviewers,
            "authorities": [(str(a.id), a.name) for a in authorities], "subscriptions": subscriptions,
            "conditions": [c["code"] for c in conditions.json()], "reasons": [c["code"] for c in reasons.json()]}


# --- virtual users ---------------------------------------------------------------------------------------------------

class Stats:
    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.codes: dict[str, Counter] = defaultdict(Counter)
        self.samples: list[str] = []
        self.errors: Counter = Counter()
        self.submitted: dict[str, int] = {}          # application id -> cases in the submit response
        self.decided: dict[str, str] = {}            # case id -> outcome
        self.info_requested: set[str] = set()
        self.supplemented: Counter = Counter()       # application id -> supplements accepted
        self.created = 0

    def unexpected(self, name: str, r) -> None:
        if len(self.samples) < 12:
            self.samples.append(f"{name} {r.status_code}: {r.text[:300]}")


class Load:
    def __init__(self, args, setup: dict, client, stats: Stats, end: float) -> None:
        self.args, self.setup, self.client, self.stats, self.end = args, setup, client, stats, end

    async def call(self, name: str, method: str, url: str, token: str, **kw):
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        t0 = time.perf_counter()
        try:
            r = await self.client.request(method, url, headers=headers, **kw)
        except Exception as exc:  # noqa: BLE001 - transport errors are counted and reported
            self.stats.errors[f"{name}: {type(exc).__name__}"] += 1
            return None
        self.stats.lat[name].append(time.perf_counter() - t0)
        self.stats.codes[name][r.status_code] += 1
        if r.status_code >= 400 and r.status_code not in EXPECTED_CONFLICTS:
            self.stats.unexpected(name, r)
        return r

    async def think(self, rng: random.Random, mean: float) -> bool:
        """Sleep an exponential think time; False once the run's time is over."""
        delay = rng.expovariate(1 / mean) if mean > 0 else 0
        if time.monotonic() + delay >= self.end:
            await asyncio.sleep(max(0.0, self.end - time.monotonic()))
            return False
        await asyncio.sleep(delay)
        return True

    def draft(self, rng: random.Random, op: dict, n: int) -> dict:
        templates = self.setup["templates"]
        features = []
        for t in rng.sample(templates, 2 if rng.random() < 0.3 else 1):
            method = rng.choice(METHODS)
            props = {"laying_method": method, "depth_cm": 60, "width_cm": 40}
            if method in ("micro_trenching", "mini_trenching", "milling"):
                props.update(depth_cm=30, width_cm=12, reduced_depth=True)
            features.append({"type": "Feature", "geometry": t["geometry"], "properties": props})
        start = date.today() + timedelta(days=rng.randint(40, 120))
        return {"project_name": f"FTTH Lasttest {op['i']:03d}-{n:04d}", "operator_reference": f"LT-{op['i']}-{n}",
                "contact": {"name": f"Planer {op['i']:03d}", "email": op["email"], "phone": "+49 69 1234"},
                "sections": {"type": "FeatureCollection", "features": features},
                "planned_start": start.isoformat(), "planned_end": (start + timedelta(days=45)).isoformat(),
                "traffic_restrictions": [{"kind": "sidewalk_closure", "description": "Gehweg halbseitig gesperrt"}]}

    async def operator(self, op: dict) -> None:
        rng = random.Random(f"{self.args.seed}-op-{op['i']}")
        mine: set[str] = set()
        n = 0
        await asyncio.sleep(rng.uniform(0, self.args.ramp))
        token = op["token"]
        while await self.think(rng, self.args.operator_think):
            waiting = []
            if mine:
                r = await self.call("GET /applications?status=information_requested", "GET",
                                    "/api/v1/applications?status=information_requested&limit=200", token)
                if r is not None and r.status_code == 200:
                    waiting = [a["id"] for a in r.json()["items"] if a["id"] in mine]
            if waiting:
                app_id = rng.choice(waiting)
                r = await self.call("GET /applications/{id}", "GET", f"/api/v1/applications/{app_id}", token)
                if r is None or r.status_code != 200:
                    continue
                if not await self.think(rng, self.args.read):
                    break
                r = await self.call("POST /applications/{id}/supplements", "POST",
                                    f"/api/v1/applications/{app_id}/supplements", token,
                                    headers={"If-Match": r.headers["etag"], "Idempotency-Key": str(uuid.uuid4())},
                                    json={"message": "Anbei der Regelquerschnitt und der Verkehrszeichenplan."})
                if r is not None and r.status_code == 200:
                    self.stats.supplemented[app_id] += 1
                continue
            if mine and rng.random() >= self.args.submit_share:
                app_id = rng.choice(sorted(mine))          # look at one of its applications (status, cases)
                await self.call("GET /applications/{id}", "GET", f"/api/v1/applications/{app_id}", token)
                continue
            n += 1
            r = await self.call("POST /applications", "POST", "/api/v1/applications", token,
                                headers={"Idempotency-Key": str(uuid.uuid4())}, json=self.draft(rng, op, n))
            if r is None or r.status_code != 201:
                continue
            self.stats.created += 1
            app_id, etag = r.json()["id"], r.headers["etag"]
            if not await self.think(rng, self.args.read):
                break
            r = await self.call("POST /applications/{id}/submit", "POST", f"/api/v1/applications/{app_id}/submit",
                                token, headers={"If-Match": etag, "Idempotency-Key": str(uuid.uuid4())})
            if r is not None and r.status_code == 200:
                mine.add(app_id)
                self.stats.submitted[app_id] = len(r.json().get("cases") or [])

    async def authority(self, rv: dict) -> None:
        rng = random.Random(f"{self.args.seed}-au-{rv['i']}")
        token = rv["token"]
        conditions = [c for c in self.setup["conditions"]] or ["HE-N01"]
        await asyncio.sleep(rng.uniform(0, self.args.ramp))
        while await self.think(rng, self.args.authority_think):
            r = await self.call("GET /cases (inbox)", "GET", "/api/v1/cases?status=received&status=in_review&limit=50",
                                token)
            if r is None or r.status_code != 200:
                continue
            items = r.json()["items"][:10]
            if not items:
                continue
            case_id = rng.choice(items)["id"]
            r = await self.call("GET /cases/{id}", "GET", f"/api/v1/cases/{case_id}", token)
            if r is None or r.status_code != 200:
                continue
            case, etag = r.json(), r.headers["etag"]
            if not await self.think(rng, self.args.read):
                break
            headers = {"If-Match": etag, "Idempotency-Key": str(uuid.uuid4())}
            if case["status"] == "received" and not case.get("information_requests") and rng.random() < 0.2:
                r = await self.call("POST /cases/{id}/request-information", "POST",
                                    f"/api/v1/cases/{case_id}/request-information", token, headers=headers,
                                    json={"message": "Bitte reichen Sie einen Regelquerschnitt nach.",
                                          "items": ["Regelquerschnitt", "Verkehrszeichenplan"]})
                if r is not None and r.status_code == 200:
                    self.stats.info_requested.add(case_id)
                continue
            x = rng.random()
            if x < 0.85:
                body = {"outcome": "granted", "conditions": [c for c in rng.choice(CONDITION_SETS) if c in conditions]
                        or conditions[:2], "additional_conditions": ["Baubeginn zwei Wochen vorher anzeigen."]}
            elif x < 0.95:
                body = {"outcome": "partially_granted", "conditions": conditions[:2],
                        "reasons": self.setup["reasons"][:1],
                        "explanation": "Der Abschnitt im Kreuzungsbereich ist im Mikrotrenching auszuführen."}
            else:
                body = {"outcome": "refused", "reasons": self.setup["reasons"][:1],
                        "explanation": "Die Trasse kollidiert mit einer geplanten Fahrbahnerneuerung."}
            r = await self.call("POST /cases/{id}/decision", "POST", f"/api/v1/cases/{case_id}/decision", token,
                                headers=headers, json=body)
            if r is not None and r.status_code == 200:
                self.stats.decided[case_id] = body["outcome"]


async def run_load(args, setup: dict, base_url: str) -> tuple[Stats, float]:
    import httpx

    stats = Stats()
    limits = httpx.Limits(max_connections=args.operators + args.authorities + 10,
                          max_keepalive_connections=args.operators + args.authorities + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        started = time.monotonic()
        load = Load(args, setup, client, stats, started + args.duration)
        await asyncio.gather(*[load.operator(op) for op in setup["operators"]],
                             *[load.authority(rv) for rv in setup["reviewers"]])
        return stats, time.monotonic() - started


# --- drain and integrity ---------------------------------------------------------------------------------------------

DRAIN_SQL = {
    "unpublished events": "SELECT count(*) FROM permit_events WHERE published_at IS NULL",
    "open deliveries": "SELECT count(*) FROM notification_deliveries WHERE status IN ('pending','sending','retrying')",
    "unfinished pipeline runs": "SELECT count(*) FROM pipeline_runs WHERE status NOT IN ('succeeded','failed')",
    "documents not done": "SELECT count(*) FROM decision_documents WHERE status IN ('pending','generating')",
    "decided cases without document": "SELECT count(*) FROM cases c WHERE c.status IN ('granted',"
        "'partially_granted','refused','deemed_granted') AND NOT EXISTS (SELECT 1 FROM decision_documents d "
        "WHERE d.case_id = c.id)",
}


def drain(timeout: float) -> tuple[bool, float, dict]:
    from sqlalchemy import text

    from breitband.db import get_database

    started = time.monotonic()
    quiet = 0
    while True:
        with get_database().engine.connect() as conn:
            left = {k: conn.execute(text(q)).scalar() for k, q in DRAIN_SQL.items()}
        quiet = quiet + 1 if not any(left.values()) else 0
        if quiet >= 2:
            return True, time.monotonic() - started, left
        if time.monotonic() - started > timeout:
            return False, time.monotonic() - started, left
        time.sleep(2)


def integrity(stats: Stats, setup: dict, received: dict) -> tuple[dict, list[str]]:
    """→ (figures, problems). Problems name what was lost or duplicated."""
    from sqlalchemy import select, text

    import permits.pipeline.audience  # noqa: F401 - registers the audience provider that audience() asks
    from breitband.db import get_database
    from breitband.models import Organisation, OrgKind
    from notifications.models import Event, WebhookSubscription
    from notifications.outbox import audience, matches
    from permits.documents.service import file_path

    problems: list[str] = []
    figures: dict = {}

    def problem(kind: str, items: list, show: int = 5) -> None:
        if items:
            problems.append(f"{kind}: {len(items)} (e.g. {', '.join(map(str, items[:show]))})")

    with get_database().sessionmaker() as session:
        q = lambda sql, **p: session.execute(text(sql), p).all()  # noqa: E731

        # 1. submissions -> cases
        rows = q("""SELECT a.id::text, a.status, (SELECT jsonb_array_length(v.resolution->'authorities')
                        FROM application_versions v WHERE v.application_id = a.id AND v.number = 1),
                      (SELECT count(*) FROM cases c WHERE c.application_id = a.id AND c.forwarded_from_case_id IS NULL),
                      (SELECT count(DISTINCT c.authority_org_id) FROM cases c WHERE c.application_id = a.id
                         AND c.forwarded_from_case_id IS NULL)
                    FROM applications a WHERE a.submitted_at IS NOT NULL""")
        db_apps = {r[0]: r for r in rows}
        figures["submissions accepted (API)"] = len(stats.submitted)
        figures["applications submitted (DB)"] = len(db_apps)
        figures["cases (DB)"] = sum(r[3] for r in rows)
        problem("accepted submissions missing in the database", [a for a in stats.submitted if a not in db_apps])
        problem("submitted applications the API did not confirm", [a for a in db_apps if a not in stats.submitted])
        problem("applications whose cases differ from their resolution's authorities",
                [f"{a} ({r[2]} authorities, {r[3]} cases)" for a, r in db_apps.items() if r[2] != r[3]])
        problem("applications with two cases for one authority",
                [a for a, r in db_apps.items() if r[3] != r[4]])
        problem("applications whose cases differ from the submit response",
                [a for a, n in stats.submitted.items() if a in db_apps and db_apps[a][3] != n])

        # 2. decisions -> documents
        rows = q("""SELECT c.id::text, c.status, count(d.id), count(d.id) FILTER (WHERE d.status = 'ready'),
                           array_agg(d.id::text) FILTER (WHERE d.id IS NOT NULL)
                    FROM cases c LEFT JOIN decision_documents d ON d.case_id = c.id
                    WHERE c.status IN ('granted','partially_granted','refused','deemed_granted')
                    GROUP BY c.id, c.status""")
        decided = {r[0]: r for r in rows}
        figures["decisions accepted (API)"] = len(stats.decided)
        figures["decided cases (DB)"] = len(decided)
        problem("accepted decisions missing or different in the database",
                [c for c, o in stats.decided.items() if c not in decided or decided[c][1] != o])
        problem("decided cases without a document", [c for c, r in decided.items() if r[2] == 0])
        problem("decided cases with more than one document", [c for c, r in decided.items() if r[2] > 1])
        problem("documents not issued (status other than ready)", [c for c, r in decided.items() if r[2] != r[3]])
        from permits.documents.models import DecisionDocument

        bad_files = []
        docs = session.scalars(select(DecisionDocument).where(DecisionDocument.status == "ready")).all()
        for doc in docs:
            path = file_path(doc)
            if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != doc.sha256:
                bad_files.append(str(doc.id))
        figures["documents issued"] = len(docs)
        problem("issued documents whose PDF is missing or has another SHA-256", bad_files)
        orphan = q("SELECT d.id::text FROM decision_documents d JOIN cases c ON c.id = d.case_id "
                   "WHERE c.status NOT IN ('granted','partially_granted','refused','deemed_granted')")
        problem("documents of undecided cases", [r[0] for r in orphan])

        # information requests and supplements
        rows = q("SELECT id::text, jsonb_array_length(information_requests) FROM cases")
        reqs = {r[0]: r[1] for r in rows}
        figures["information requests accepted (API)"] = len(stats.info_requested)
        problem("accepted information requests missing in the database",
                [c for c in stats.info_requested if not reqs.get(c)])
        rows = q("SELECT application_id::text, count(*) FROM application_versions WHERE kind = 'supplement' "
                 "GROUP BY 1")
        sup = {r[0]: r[1] for r in rows}
        figures["supplements accepted (API)"] = sum(stats.supplemented.values())
        figures["supplement versions (DB)"] = sum(sup.values())
        problem("accepted supplements missing in the database",
                [a for a, n in stats.supplemented.items() if sup.get(a, 0) < n])

        # 3. pipelines
        rows = q("""SELECT v.application_id::text, v.number, count(r.id),
                           count(r.id) FILTER (WHERE r.status = 'succeeded')
                    FROM application_versions v LEFT JOIN pipeline_runs r
                      ON r.application_id = v.application_id AND r.version = v.number
                    WHERE v.submitted_at IS NOT NULL GROUP BY 1, 2""")
        figures["pipeline runs (DB)"] = sum(r[2] for r in rows)
        problem("submitted versions without a pipeline run", [f"{r[0]} v{r[1]}" for r in rows if r[2] == 0])
        problem("submitted versions with more than one run", [f"{r[0]} v{r[1]}" for r in rows if r[2] > 1])
        problem("pipeline runs that did not succeed", [f"{r[0]} v{r[1]}" for r in rows if r[2] != r[3]])
        failed_steps = q("SELECT run_id::text, name, left(error, 200) FROM pipeline_steps WHERE status <> 'succeeded'")
        problem("pipeline steps not succeeded", [f"{r[0]} {r[1]}: {r[2]}" for r in failed_steps], 3)

        # 4. events -> deliveries
        office = set(session.scalars(select(Organisation.id).where(
            Organisation.tenant_key == TENANT, Organisation.kind == OrgKind.operating_office.value)))
        subs = list(session.scalars(select(WebhookSubscription).where(WebhookSubscription.active.is_(True),
                                                                      WebhookSubscription.deleted_at.is_(None))))
        actual: dict[tuple, list] = defaultdict(list)
        delivery_rows = q("SELECT event_id::text, channel, target, id::text, status, attempts "
                          "FROM notification_deliveries")
        for r in delivery_rows:
            actual[(r[0], r[1], r[2])].append(r)
        expected: set[tuple] = set()
        events = session.scalars(select(Event).order_by(Event.seq)).all()
        unpublished = [str(e.id) for e in events if e.published_at is None]
        for ev in events:
            recipients = audience(session, ev)
            for rc in recipients:
                for address in rc.emails:
                    if address.strip():
                        expected.add((str(ev.id), "email", address.strip().lower()))
            orgs = {rc.organisation_id for rc in recipients} | office
            for sub in subs:
                if sub.organisation_id in orgs and matches(sub.event_types, ev.type):
                    expected.add((str(ev.id), "webhook", str(sub.id)))
        figures["events"] = len(events)
        figures["event types"] = dict(Counter(e.type for e in events).most_common())
        figures["deliveries (DB)"] = len(delivery_rows)
        figures["deliveries by channel"] = dict(Counter(r[1] for r in delivery_rows))
        figures["deliveries tried more than once"] = sum(1 for r in delivery_rows if r[5] > 1)
        problem("unpublished events", unpublished)
        problem("deliveries missing (event, channel, target)", sorted(expected - set(actual)))
        problem("deliveries without a target in the event's audience", sorted(set(actual) - expected))
        problem("more than one delivery per event and target", [k for k, v in actual.items() if len(v) > 1])
        problem("deliveries not delivered", [f"{r[3]} {r[1]} {r[4]}" for r in delivery_rows if r[4] != "delivered"])

        # receivers
        mails = Counter({tuple(k): v for k, v in received["mails"].items()})
        email_rows = {(r[0], r[2]): r for r in delivery_rows if r[1] == "email" and r[4] == "delivered"}
        figures["e-mails received (SMTP)"] = sum(mails.values())
        problem("delivered e-mails the SMTP server did not receive", [k for k in email_rows if mails.get(k, 0) == 0])
        problem("e-mails received more than once", [f"{k} x{n}" for k, n in mails.items() if n > 1])
        problem("e-mails received without a delivery", [k for k in mails if k not in email_rows])
        hooks = Counter(received["hooks"])
        hook_rows = {r[3]: r for r in delivery_rows if r[1] == "webhook" and r[4] == "delivered"}
        paths = setup["subscriptions"]
        figures["webhook calls received"] = sum(hooks.values())
        problem("delivered webhooks the receiver did not get", [d for d in hook_rows if hooks.get(d, 0) == 0])
        problem("webhooks received more than once", [f"{d} x{n}" for d, n in hooks.items() if n > 1])
        problem("webhooks received without a delivery", [d for d in hooks if d not in hook_rows])
        problem("webhooks received at another subscription's URL or for another event",
                [d for d, (path, ev) in received["hook_meta"].items() if d in hook_rows and
                 (paths.get(hook_rows[d][2]) != path or hook_rows[d][0] != ev)])
        problem("webhooks without a v1 signature", ["unsigned"] * received["unsigned"])
    return figures, problems


def baseline(base_url: str, setup: dict, rounds: int) -> dict[str, list[float]]:
    """The same reads, one at a time on the quiet stack (after the drain): every authority user's inbox and the
    first case in it, in turn."""
    import httpx

    lat: dict[str, list[float]] = defaultdict(list)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for i in range(rounds):
            rv = setup["reviewers"][i % len(setup["reviewers"])]
            h = {"Authorization": f"Bearer {rv['token']}"}
            t0 = time.perf_counter()
            r = client.get("/api/v1/cases?status=received&status=in_review&limit=50", headers=h)
            lat["GET /cases (inbox)"].append(time.perf_counter() - t0)
            items = r.json()["items"] if r.status_code == 200 else []
            if items:
                t0 = time.perf_counter()
                client.get(f"/api/v1/cases/{items[0]['id']}", headers=h)
                lat["GET /cases/{id}"].append(time.perf_counter() - t0)
    return lat


# --- report ----------------------------------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k] * 1000


def report_http(stats: Stats, elapsed: float) -> tuple[int, dict]:
    total = sum(len(v) for v in stats.lat.values())
    fivexx = sum(n for c in stats.codes.values() for s, n in c.items() if s >= 500)
    print(f"\nHTTP: {total} requests in {elapsed:.1f} s = {total / elapsed:.1f} requests/s; 5xx: {fivexx}; "
          f"transport errors: {sum(stats.errors.values())}")
    print(f"{'endpoint':<46}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}  statuses")
    p95 = {}
    for name in sorted(stats.lat):
        v = stats.lat[name]
        p95[name] = pct(v, 95)
        codes = " ".join(f"{s}:{n}" for s, n in sorted(stats.codes[name].items()))
        print(f"{name:<46}{len(v):>7}{pct(v, 50):>9.1f}{p95[name]:>9.1f}{pct(v, 99):>9.1f}"
              f"{max(v) * 1000:>9.1f}  {codes}")
    for k, n in stats.errors.items():
        print(f"transport error {k}: {n}")
    if stats.samples:
        print("unexpected 4xx/5xx (samples):")
        for s in stats.samples:
            print("  " + s)
    return fivexx, p95


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    ap.add_argument("--operators", type=int, default=50)
    ap.add_argument("--authorities", type=int, default=20)
    ap.add_argument("--staffed-authorities", type=int, default=10,
                    help="how many road authorities (those most routes reach) the authority users are spread over")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--operator-think", type=float, default=45.0, help="operators' mean think time before each "
                    "action, s")
    ap.add_argument("--authority-think", type=float, default=15.0, help="authority users' mean think time, s")
    ap.add_argument("--submit-share", type=float, default=0.4, help="share of an operator's actions (without an "
                    "information request waiting) that create and submit an application; the others read one")
    ap.add_argument("--read", type=float, default=2.0, help="mean time between reading and acting, s")
    ap.add_argument("--ramp", type=float, default=10.0, help="users start uniformly within this many seconds")
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--api-processes", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-concurrency", type=int, default=1)
    ap.add_argument("--worker-nice", type=int, default=0, help="BREITBAND_WORKER_NICE for the stack (0: not niced)")
    ap.add_argument("--drain-timeout", type=float, default=300.0)
    ap.add_argument("--redis-url", default=None, help="use dbs N, N+1, N+2 of this Redis instead of a private one")
    args = ap.parse_args()

    from sqlalchemy.engine import make_url

    main_url = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")
    db_url = os.environ.get("BREITBAND_LOAD_DATABASE_URL") or make_url(main_url).set(
        database="breitband_load").render_as_string(hide_password=False)
    VAR.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {loadavg()} ({os.cpu_count()} CPUs)", flush=True)

    redis_proc = None
    if args.redis_url:
        u = args.redis_url.rstrip("/")
        head, _, n = u.rpartition("/")
        n = int(n) if n.isdigit() else 12
        head = head if _ else u
        redis = [f"{head}/{n + i}" for i in range(3)]
    else:
        rport = free_port()
        redis_proc = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", str(VAR)], stdout=subprocess.DEVNULL)
        redis = [f"redis://127.0.0.1:{rport}/{i}" for i in range(3)]
    smtp_port, hook_port = free_port(), free_port()
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    receivers = ctx.Process(target=receivers_main, args=(smtp_port, hook_port, child), daemon=True)
    receivers.start()
    if not parent.poll(30) or parent.recv() != "ready":
        raise SystemExit("mail catcher / webhook receiver did not start")

    base_url = f"http://127.0.0.1:{args.port}"
    env = {**os.environ,
           "BREITBAND_DATABASE_URL": db_url, "BREITBAND_BROKER_URL": redis[0], "BREITBAND_RESULT_BACKEND": redis[1],
           "BREITBAND_LIMITS_REDIS_URL": redis[2], "BREITBAND_SMTP_HOST": "127.0.0.1",
           "BREITBAND_SMTP_PORT": str(smtp_port), "BREITBAND_PORT": str(args.port),
           "BREITBAND_PUBLIC_BASE_URL": base_url, "BREITBAND_DATA_DIR": str(VAR / "data"),
           "BREITBAND_BEAT_SCHEDULE": str(VAR / "celerybeat-schedule"), "BREITBAND_LOG_LEVEL": "WARNING",
           "BREITBAND_API_PROCESSES": str(args.api_processes), "BREITBAND_WORKERS": str(args.workers),
           "BREITBAND_WORKER_CONCURRENCY": str(args.worker_concurrency),
           "BREITBAND_WEBHOOK_BLOCKED_NETWORKS":
               '["0.0.0.0/8", "::/128", "169.254.0.0/16", "fe80::/10", "224.0.0.0/4", "ff00::/8"]'}
    env.pop("BREITBAND_DATABASE_READONLY_URL", None)
    env.pop("BREITBAND_WORKER_NICE", None)
    if args.worker_nice:
        env["BREITBAND_WORKER_NICE"] = str(args.worker_nice)
    os.environ.update({k: v for k, v in env.items() if k.startswith("BREITBAND_")})
    os.environ.pop("BREITBAND_DATABASE_READONLY_URL", None)
    sys.path.insert(0, str(ROOT))

    stack = None
    failures: list[str] = []
    try:
        print(f"database {make_url(db_url).database} (dropped and created again), Redis {redis[0]} (broker), "
              f"{redis[1]} (results), {redis[2]} (rate limits), SMTP 127.0.0.1:{smtp_port}, webhooks "
              f"127.0.0.1:{hook_port}", flush=True)
        recreate_database(db_url)
        for p in (VAR / "celerybeat-schedule",):
            p.unlink(missing_ok=True)
        t0 = time.monotonic()
        log = open(VAR / "stack.log", "w")
        stack = subprocess.Popen([str(ROOT / "scripts" / "run")], env=env, cwd=ROOT, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"{base_url}/readyz", 900, stack)
        print(f"scripts/run ready after {time.monotonic() - t0:.0f} s: {args.api_processes} API processes, "
              f"{args.workers} worker(s) x concurrency {args.worker_concurrency}"
              + (f" (nice {args.worker_nice})" if args.worker_nice else "") + ", beat", flush=True)

        setup = set_up(args, base_url, f"http://127.0.0.1:{hook_port}")
        print(f"{len(setup['templates'])} route templates (real streets), authorities staffed: "
              + "; ".join(f"{n}" for _, n in setup["authorities"]))
        print(f"{args.operators} operators in {len(OPERATOR_ORGS)} organisations, {args.authorities} authority users,"
              f" {len(setup['subscriptions'])} webhook subscriptions")
        op_rate = args.operators / (args.operator_think + args.submit_share * args.read)
        au_rate = args.authorities / (args.authority_think + args.read)
        print(f"think times (exponential): operators mean {args.operator_think:g} s, authorities "
              f"{args.authority_think:g} s, {args.read:g} s between reading and acting. Offered: operators "
              f"~{op_rate:.2f} actions/s (each: list own applications, then {args.submit_share:.0%} create + submit,"
              f" else read one or supplement; ~{op_rate * args.submit_share:.2f} submissions/s), authorities "
              f"~{au_rate:.2f} actions/s (inbox, one case, a command when the inbox is not empty)", flush=True)
        print(f"load average before the load: {loadavg()}", flush=True)

        cpu_before = cpu_snapshot(stack.pid, receivers.pid)
        stats, elapsed = asyncio.run(run_load(args, setup, base_url))
        cpu_after = cpu_snapshot(stack.pid, receivers.pid)
        print(f"\nload average at the end of the load: {loadavg()}")
        cpu_report(cpu_before, cpu_after, elapsed)
        fivexx, p95 = report_http(stats, elapsed)
        print(f"drafts created {stats.created}, submissions {len(stats.submitted)}, information requests "
              f"{len(stats.info_requested)}, supplements {sum(stats.supplemented.values())}, decisions "
              f"{len(stats.decided)} ({dict(Counter(stats.decided.values()))})")

        ok, waited, left = drain(args.drain_timeout)
        print(f"\ndrain: {'done' if ok else 'NOT done'} after {waited:.0f} s" + ("" if ok else f", left: {left}"))
        base = baseline(base_url, setup, 100)
        print("baseline on the quiet stack after the drain (sequential, same requests): " + "; ".join(
            f"{k} p50 {pct(v, 50):.1f} ms, p95 {pct(v, 95):.1f} ms (under load p95 / quiet p95 = "
            f"{p95.get(k, float('nan')) / pct(v, 95):.2f})" for k, v in base.items()), flush=True)
        parent.send("counts")
        received = parent.recv() if parent.poll(30) else {"mails": {}, "hooks": {}, "hook_meta": {}, "unsigned": 0}
        received["mails"] = {tuple(k): v for k, v in received["mails"].items()}
        figures, problems = integrity(stats, setup, received)
        print("\nintegrity (SQL on the bench database):")
        for k, v in figures.items():
            print(f"  {k}: {v}")
        print(f"  lost or duplicated: {'none' if not problems else len(problems)}")
        for p in problems:
            print(f"  PROBLEM {p}")

        if fivexx:
            failures.append(f"{fivexx} responses with 5xx")
        if stats.errors:
            failures.append(f"{sum(stats.errors.values())} transport errors")
        if not ok:
            failures.append(f"the workers did not drain within {args.drain_timeout:.0f} s: {left}")
        failures += problems
        inbox = p95.get("GET /cases (inbox)", float("nan"))
        decision = p95.get("POST /cases/{id}/decision", float("nan"))
        if not inbox <= INBOX_P95_MS:
            failures.append(f"inbox p95 {inbox:.1f} ms > {INBOX_P95_MS:.0f} ms")
        if not decision <= DECISION_P95_MS:
            failures.append(f"decision p95 {decision:.1f} ms > {DECISION_P95_MS:.0f} ms")
        print(f"\ntargets: 0 5xx ({fivexx}), 0 lost / 0 duplicated ({len(problems)} problems), inbox p95 "
              f"{inbox:.1f} ms (≤ {INBOX_P95_MS:.0f}), decision p95 {decision:.1f} ms (≤ {DECISION_P95_MS:.0f})")
    finally:
        stop_stack(stack)
        try:
            parent.send("stop")
        except OSError:
            pass
        receivers.join(5)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        print(f"load average at the end: {loadavg()}")
    if failures:
        print("\nMISSED:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
