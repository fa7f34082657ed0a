"""A private Breitband stack for the fault tests, so that they can break its servers without touching the shared
ones other test runs use: a PostgreSQL 15 + PostGIS cluster in a temporary directory, a redis-server, an aiosmtpd
SMTP server in the test process, the API (``breitband serve``) and a Celery worker (``breitband worker``) as
subprocesses, as ``scripts/run`` starts them. Beat is not started: the tests send the beat tasks themselves
(``Stack.tick``) when they want one beat cycle to have happened, so that no test waits a real schedule.

Everything is started by ``Stack.start`` and stopped by ``Stack.close`` (the fixture in tests/faults/conftest.py
calls it also when a test fails).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import tomllib
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import redis
from celery import Celery
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from breitband import identity
from breitband.migrate import create_database, upgrade
from breitband.models import OrgKind, Role
from breitband.settings import PROJECT_ROOT
from geo.importers import import_boundaries, import_roads
from geo.rules import validate_rules
from permits.cases.catalogue import load_catalogue_file
from permits.participation import service as participation
from tests.support.api import collection, draft_body, trench
from tests.support.hessen import DATA, HE_BOUNDARY_FILES, HE_ROAD_FILES, NEU_ISENBURG, authority_org, stretch
from tests.support.mail import SmtpServer
from tests.support.waiting import free_port, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")
BIN = Path(sys.executable).parent                        # the venv's scripts: breitband, celery

# Retry schedule of notifications, scaled down: one hour of the real schedule takes TIME_SCALE times less.
TIME_SCALE = 360.0
NOTIFY_RETRY_BASE_S = 30.0             # the defaults of breitband/settings.py
NOTIFY_RETRY_MAX_DELAY_S = 7200.0
NOTIFY_RETRY_WINDOW_H = 24.0


def _tail(path: Path, lines: int = 25, width: int = 400) -> str:
    try:
        return "\n".join(line[:width] for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- PostgreSQL -------------------------------------------------------------------------------------------------------

class PrivatePostgres:
    """A PostgreSQL 15 cluster of its own in a temporary directory, on a free port, trust authentication.

    initdb and the server refuse to run as root: as root (the CI and this machine run tests as root) they run as the
    ``postgres`` system user with ``runuser``, in a directory owned by it (not under pytest's 0700 tmp dirs, which
    that user cannot enter). fsync is off: the faults are server restarts, not power cuts, and it keeps restarts and
    the schema build fast on a busy machine."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="breitband-faults-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)

    def _run(self, *argv: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, timeout=timeout, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")

    def _ctl(self, action: str, *extra: str) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=100")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                  "-t", "60", action, *extra)

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self._ctl("restart", "-m", mode)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "breitband") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- Redis ------------------------------------------------------------------------------------------------------------

class PrivateRedis:
    """redis-server on a free port without persistence: stopped and started again, it is empty (like a broker
    that lost its queues)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.dir)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self.ping, 20, what="redis-server to answer")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


# --- API and worker processes -----------------------------------------------------------------------------------------

class Service:
    """A subprocess in a session (process group) of its own, so that it and its children (prefork pool) can be
    signalled together by its id."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as fh:
            fh.write(f"\n--- start {self.name} {datetime.now().isoformat()} ---\n".encode())
            fh.flush()
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=PROJECT_ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_size(self) -> int:
        """Where the log ends now: a mark for ``output``."""
        return self.log.stat().st_size

    def output(self, since: int = 0) -> str:
        """What the process (and any later one with the same log) wrote to the log from byte ``since`` on."""
        with open(self.log, "rb") as fh:
            fh.seek(since)
            return fh.read().decode(errors="replace")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def group(self) -> list[int]:
        """The pids of the process group (the process and its pool children)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.proc.pid:
                        pids.append(int(entry.name))
                except (ProcessLookupError, PermissionError):
                    pass
        return pids

    def kill(self) -> None:
        """SIGKILL to the process and all its children at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        try:                                                   # pool children that outlived their parent
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None


# --- the people of the tests ------------------------------------------------------------------------------------------

@dataclass
class Person:
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class People:
    operator: Person                  # Glasfaser operator, submits
    authority: Person                 # reviewer of Stadt Neu-Isenburg (decides the cases on its roads)
    body: Person                      # reviewer of the traffic authority heard for Neu-Isenburg
    contact_email: str                # the application's contact (gets application.* e-mails)


def build_people(engine, tag: str) -> People:
    with Session(bind=engine) as s:
        op = identity.create_organisation(s, "he", OrgKind.operator, f"Störfall Netz {tag} GmbH")
        body_org = identity.create_organisation(s, "he", OrgKind.participating_body,
                                                f"Straßenverkehrsbehörde Neu-Isenburg {tag}")
        participation.add_body(s, "he", body_org, "traffic", NEU_ISENBURG, datetime.now(timezone.utc))
        ni = authority_org(s, key=NEU_ISENBURG)

        def person(org, email, role) -> Person:
            user = identity.create_user(s, org, email, email.split("@")[0], role)
            _, secret = identity.create_token(s, user, "faults")
            return Person(email, secret)

        people = People(operator=person(op, f"planer-{tag}@stoerfall-netz.example", Role.operator_member),
                        authority=person(ni, f"tiefbau-{tag}@neu-isenburg.example", Role.authority_reviewer),
                        body=person(body_org, f"svb-{tag}@neu-isenburg.example", Role.authority_reviewer),
                        contact_email=f"kontakt-{tag}@stoerfall-netz.example")
        s.commit()
    return people


# --- the stack --------------------------------------------------------------------------------------------------------

class Stack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pg = PrivatePostgres()
        self.redis = PrivateRedis(root)
        self.smtp = SmtpServer(port=free_port())
        self.api_port = free_port()
        self.api: Service | None = None
        self.worker: Service | None = None
        self.engine = None
        self.http: httpx.Client | None = None
        self.people: People | None = None
        self.route: dict[str, Any] | None = None          # a trench along Admiral-Rosendahl-Straße, Neu-Isenburg
        self._celery = None
        self._workers = 0

    # configuration of the subprocesses: only what is set here, nothing of the shared test servers
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BREITBAND_")}
        env.update({
            "BREITBAND_DATABASE_URL": self.pg.url(),
            "BREITBAND_BROKER_URL": self.redis.url(0),
            "BREITBAND_RESULT_BACKEND": self.redis.url(1),
            "BREITBAND_LIMITS_REDIS_URL": self.redis.url(2),
            "BREITBAND_SMTP_HOST": "127.0.0.1",
            "BREITBAND_SMTP_PORT": str(self.smtp.port),
            "BREITBAND_SMTP_TIMEOUT_S": "5",
            "BREITBAND_DATA_DIR": str(self.data_dir),
            "BREITBAND_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "BREITBAND_LOG_LEVEL": "WARNING",
            "BREITBAND_READINESS_TIMEOUT_S": "1",
            "BREITBAND_DATABASE_POOL_SIZE": "5",
            # a run without progress for 2 s is sent again by permits.pipeline_resume (default 15 min)
            "BREITBAND_PIPELINE_STALE_AFTER_S": "2",
            # the retry schedule of e-mails and webhooks, TIME_SCALE times faster (see test_smtp_outage.py)
            "BREITBAND_NOTIFY_RETRY_BASE_S": str(NOTIFY_RETRY_BASE_S / TIME_SCALE),
            "BREITBAND_NOTIFY_RETRY_MAX_DELAY_S": str(NOTIFY_RETRY_MAX_DELAY_S / TIME_SCALE),
            "BREITBAND_NOTIFY_RETRY_WINDOW_H": str(NOTIFY_RETRY_WINDOW_H / TIME_SCALE),
        })
        return env

    # --- set-up ---
    def start(self) -> None:
        self.pg.init()
        self.pg.start()
        self.redis.start()
        self.smtp.start()
        create_database(self.pg.url())
        upgrade(self.pg.url())               # CREATE EXTENSION postgis is the first migration's first statement
        self.engine = create_engine(self.pg.url(), pool_pre_ping=True, pool_size=2,
                                    connect_args={"options": "-c jit=off", "connect_timeout": 5})
        self._import_hessen()
        self.people = build_people(self.engine, uuid.uuid4().hex[:8])
        self.route = self._route()
        self.api = Service("api", [str(BIN / "breitband"), "serve", "--host", "127.0.0.1", "--port",
                                   str(self.api_port)], self.env(), self.root / "api.log")
        self.api.start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=30.0)
        wait_for(self._api_up, 60, 0.2, what="the API to answer /healthz")
        self.start_worker()

    def _import_hessen(self) -> None:
        """Tenant "he" with the Hessen boundaries and the OSM roads around Frankfurt, as he_data
        (tests/support/hessen.py) imports them into the shared test database; the conditions catalogue of Hessen."""
        with open(DATA / "tenants" / "he.toml", "rb") as fh:
            raw = tomllib.load(fh)
        with Session(bind=self.engine) as session:
            identity.create_tenant(session, "he", raw["name"], raw["crs"], validate_rules(raw, "he"))
            import_boundaries(session, "he", HE_BOUNDARY_FILES)
            import_roads(session, "he", HE_ROAD_FILES)
            load_catalogue_file(session, "he", DATA / "tenants" / "he_conditions.toml")
            session.commit()

    def _route(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return stretch(conn, "neu_isenburg")

    def _api_up(self) -> bool:
        try:
            return self.http.get("/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(self) -> Service:
        """``breitband worker`` (prefork, 2 processes) as scripts/run starts it."""
        self._workers += 1
        self.worker = Service(f"worker-{self._workers}",
                              [str(BIN / "breitband"), "worker", "--concurrency", "2", "--loglevel", "WARNING",
                               f"--hostname=faults{self._workers}@%h", "--without-heartbeat"],
                              self.env(), self.root / "worker.log")
        self.worker.start()
        wait_for(self._worker_up, 90, 0.5, what="the worker to answer a ping")
        return self.worker

    def fresh_worker(self) -> Service:
        """A new worker that holds no message: the old one stopped (warm shutdown puts its unacknowledged messages
        back into the queue) and the queue emptied before the new one starts."""
        self.worker.stop()
        with self.celery.connection_for_write() as conn:
            self.celery.control.purge(connection=conn)
        return self.start_worker()

    def _worker_up(self) -> bool:
        try:
            replies = self.celery.control.ping(timeout=1.0)
        except Exception:  # noqa: BLE001 - broker not reachable yet
            return False
        return any(f"faults{self._workers}@" in name for r in replies for name in r)

    @property
    def celery(self):
        if self._celery is None:
            self._celery = Celery("faults", broker=self.redis.url(0), backend=None)
            self._celery.conf.broker_connection_retry_on_startup = False
        return self._celery

    # --- during the tests ---
    def send(self, name: str, args: list[Any] | None = None, countdown: float | None = None) -> None:
        """A task message to the private broker on a fresh connection (what beat or a redelivery would send)."""
        with self.celery.connection_for_write() as conn:
            self.celery.send_task(name, args=args or [], countdown=countdown, connection=conn, retry=False,
                                  ignore_result=True)

    def tick(self) -> None:
        """One cycle of the beat backstops (breitband/celery.py BEAT_SCHEDULE) without waiting their schedule."""
        for name in ("notifications.relay", "permits.pipeline_resume", "notifications.dispatch_due"):
            self.send(name)

    def submit(self, reference: str, timeout: float = 30.0) -> dict[str, Any]:
        """Create a draft and submit it; asserts both succeed. → the submitted application."""
        body = draft_body(collection(trench(self.route)), planned_start="2027-03-01", planned_end="2027-04-30",
                          operator_reference=reference,
                          contact={"name": "Rita Zuverlässig", "email": self.people.contact_email})
        r = self.http.post("/api/v1/applications", json=body, headers=self.people.operator.headers, timeout=timeout)
        assert r.status_code == 201, r.text
        r = self.http.post(f"/api/v1/applications/{r.json()['id']}/submit", json={}, timeout=timeout,
                           headers={**self.people.operator.headers, "If-Match": r.headers["etag"]})
        assert r.status_code == 200, r.text
        return r.json()

    def scalar(self, sql: str, **params) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params) -> list:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).all()

    def run_status(self, app_id: str) -> str | None:
        return self.scalar("SELECT status FROM pipeline_runs WHERE application_id = :a ORDER BY version DESC "
                           "LIMIT 1", a=app_id)

    def mails_about(self, reference: str) -> dict[tuple[str, str], int]:
        """(event type, recipient) → number of messages the SMTP server received about this application."""
        counts: dict[tuple[str, str], int] = {}
        for m in list(self.smtp.received):
            if reference in m.subject or reference in m.body:
                for r in m.rcpt:
                    key = (str(m.message["X-Breitband-Event-Type"]), r)
                    counts[key] = counts.get(key, 0) + 1
        return counts

    def email_deliveries(self, app_id: str) -> dict[tuple[str, str], str]:
        """(event type, address) → delivery status of every e-mail the outbox planned for this application."""
        return {(t, g): s for t, g, s in self.rows(
            "SELECT d.event_type, d.target, d.status FROM notification_deliveries d JOIN permit_events e ON "
            "e.id = d.event_id WHERE e.application_id = :a AND d.channel = 'email'", a=app_id)}

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{_tail(self.root / name)}" for name in ("api.log", "worker.log")) + \
            f"\n--- postgres ---\n{_tail(self.pg.log)}"

    def heal(self) -> None:
        """Before each test: whatever an earlier test broke and did not bring back is started again."""
        if not self.pg.running():
            self.pg.start()
        if not self.redis.running():
            self.redis.start()
        if self.smtp.controller is None:
            self.smtp.start()
        if not self.api.running():
            self.api.start()
            wait_for(self._api_up, 60, 0.2, what="the API")
        if not self.worker.running():
            self.start_worker()

    def close(self) -> None:
        for step in (lambda: self.http and self.http.close(),
                     lambda: self.api and self.api.stop(),
                     lambda: self.worker and self.worker.stop(),
                     lambda: self.engine and self.engine.dispose(),
                     self.smtp.stop, self.redis.stop, self.pg.destroy):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - stop the rest in any case
                print(f"faults stack: cleanup step failed: {exc!r}", file=sys.stderr)


def queue_drained(stack: Stack) -> bool:
    """The worker took every message from the broker (the default queue is a Redis list)."""
    return redis.Redis.from_url(stack.redis.url(0)).llen("celery") == 0


def _idle_once(stack: Stack) -> bool:
    if not queue_drained(stack):
        return False
    with stack.celery.connection_for_write() as conn:                  # fresh: Redis may have been restarted
        inspect = stack.celery.control.inspect(timeout=2.0, limit=1, connection=conn)   # one worker at a time
        active, reserved = inspect.active(), inspect.reserved()
    if not active or not reserved:                                     # no worker answered (yet)
        return False
    return not any(active.values()) and not any(reserved.values())


def worker_idle(stack: Stack) -> bool:
    """Every message sent so far has been worked off: none is left in the queue, and the worker neither runs one
    (active) nor holds one it took and has not started (reserved); messages scheduled for later (a countdown) do
    not count. With ``wait_for`` it stands before an assertion that something did NOT happen (no second e-mail, no
    second document): the messages that could have done it have been processed, however long that took.

    Seen twice in a row: a message the worker has just taken from the queue may be registered as reserved only
    after it answers the first inspection (the queue and the control messages arrive on different connections)."""
    return _idle_once(stack) and _idle_once(stack)


@contextmanager
def flocked(path: Path):
    """Hold an exclusive flock on ``path`` (created if missing) until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def flock_waiters(path: Path) -> set[int]:
    """Pids that wait for an flock on ``path`` (from /proc/locks: blocked requests are the lines with ``->``)."""
    inode = os.stat(path).st_ino
    waiting = set()
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if "->" in parts and "FLOCK" in parts:
            rest = parts[parts.index("->") + 1:]         # FLOCK ADVISORY WRITE pid maj:min:inode start end
            if len(rest) >= 5 and rest[4].split(":")[-1] == str(inode):
                waiting.add(int(rest[3]))
    return waiting
