"""Memory of an API process under oversized bodies, with the body limits (breitband/limits.py) and without them.

    .venv/bin/python bench/body_limits.py [--mb 50] [--verify-mb 100]

Issue 11, finding 3: a 50 MB JSON body raised the server's memory by 300 MB; the unauthenticated POST /verify read
100 MB before rejecting it. This starts ``uvicorn breitband.main:app`` twice on loopback — LIMITED with the default
limits, UNLIMITED with every body limit set to 100,000 MiB (the behaviour before the limits, as the baseline of the
same run) — and sends, without a token, each of:

- ``POST /api/v1/applications`` with a JSON body of --mb MB, once with Content-Length and once chunked;
- ``POST /verify`` with a multipart PDF of --verify-mb MB, chunked.

Per request it prints the status, the seconds until the answer, the bytes the client got to send before the answer
(the server stops reading at the limit, so the client's writes fail soon after it), and the growth of the server's
peak resident memory (VmHWM) over its resident memory before the request (each case in a fresh process).

Database: the test database of BREITBAND_TEST_DATABASE_URL (or BREITBAND_DATABASE_URL) must exist with the schema
(any test run creates it); nothing is written. Redis for the rate-limit counters: BREITBAND_LIMITS_REDIS_URL
(default db 2; only read for these requests' auth-failure counter).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def start(env_extra: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "BREITBAND_LOG_LEVEL": "WARNING", **env_extra}
    if os.environ.get("BREITBAND_TEST_DATABASE_URL"):
        env["BREITBAND_DATABASE_URL"] = os.environ["BREITBAND_TEST_DATABASE_URL"]
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "breitband.main:app", "--host", "127.0.0.1",
                             "--port", str(port), "--no-access-log"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise SystemExit("uvicorn did not start")
    return proc, port


def send(port: int, head: bytes, body_chunks) -> tuple[int | None, float, int]:
    """Send the request; return (status, seconds until the status line, bytes of the body sent)."""
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.perf_counter()
    sent = 0
    try:
        sock.sendall(head)
        sock.setblocking(False)
        response = b""
        for chunk in body_chunks:
            view = memoryview(chunk)
            while view:
                try:
                    n = sock.send(view)
                    sent += n
                    view = view[n:]
                except BlockingIOError:
                    time.sleep(0.001)
                try:
                    data = sock.recv(65536)
                    if data:
                        response += data
                except BlockingIOError:
                    pass
                if response:
                    break
            if response:
                break
        sock.setblocking(True)
        sock.settimeout(120)
        while b"\r\n" not in response:
            data = sock.recv(65536)
            if not data:
                break
            response += data
    except (BrokenPipeError, ConnectionResetError):
        sock.setblocking(True)
        sock.settimeout(5)
        try:
            response += sock.recv(65536)
        except OSError:
            pass
    finally:
        elapsed = time.perf_counter() - started
        sock.close()
    line = response.split(b"\r\n", 1)[0].split()
    return (int(line[1]) if len(line) > 1 else None), elapsed, sent


def json_body(mb: int):
    """A JSON object of about ``mb`` MiB: a FeatureCollection whose coordinates are numbers (the costly kind)."""
    pair = b"[8.681012345678901,50.05001234567891],"
    per_chunk = CHUNK // len(pair)
    yield b'{"project_name":"big","sections":{"type":"FeatureCollection","features":[{"type":"Feature",' \
          b'"properties":{},"geometry":{"type":"LineString","coordinates":['
    for _ in range(mb):
        yield pair * per_chunk
    yield b"[8.6,50.0]]}}]}}"


def chunked(parts):
    for part in parts:
        if part:
            yield b"%x\r\n" % len(part) + part + b"\r\n"
    yield b"0\r\n\r\n"


def multipart(mb: int):
    boundary = b"bench-boundary"
    yield (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
           b"Content-Type: application/pdf\r\n\r\n%PDF-1.7\n")
    for _ in range(mb):
        yield b"0" * CHUNK
    yield b"\r\n--" + boundary + b"--\r\n"


def cases(mb: int, verify_mb: int):
    length = sum(len(p) for p in json_body(mb))
    yield ("POST /api/v1/applications, Content-Length",
           b"POST /api/v1/applications HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % length, lambda: json_body(mb))
    yield ("POST /api/v1/applications, chunked",
           b"POST /api/v1/applications HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n", lambda: chunked(json_body(mb)))
    yield ("POST /verify, chunked multipart",
           b"POST /verify HTTP/1.1\r\nHost: bench\r\nContent-Type: multipart/form-data; boundary=bench-boundary\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n", lambda: chunked(multipart(verify_mb)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--verify-mb", type=int, default=100)
    args = parser.parse_args()
    unlimited = {f"BREITBAND_BODY_LIMIT_{k}_MB": "100000" for k in ("ROUTE", "VERIFY")}
    unlimited["BREITBAND_BODY_LIMIT_MB"] = "100000"
    print(f"{'case':45} {'server':10} {'status':>6} {'s':>7} {'sent MiB':>9} {'peak RSS +MiB':>14}")
    for name, head, body in cases(args.mb, args.verify_mb):
        for label, env in (("limited", {}), ("unlimited", unlimited)):
            proc, port = start(env)
            try:
                send(port, b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", [b""])
                time.sleep(0.3)
                before = status_kb(proc.pid, "VmRSS")
                status, seconds, sent = send(port, head, body())
                time.sleep(0.3)
                peak = status_kb(proc.pid, "VmHWM")
            finally:
                proc.terminate()
                proc.wait(10)
            print(f"{name:45} {label:10} {status!s:>6} {seconds:7.2f} {sent / CHUNK:9.1f} "
                  f"{(peak - before) / 1024:14.1f}")


if __name__ == "__main__":
    main()
