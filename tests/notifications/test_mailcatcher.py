"""`breitband mailcatcher` as scripts/run starts it: a real SMTP server in its own process that keeps what it gets;
/dev/mail and /api/v1/dev/mail show it to tenant admins only when BREITBAND_DEV_MAIL is on."""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest
from fastapi.testclient import TestClient

from breitband.app import create_app
from breitband.settings import PROJECT_ROOT
from tests.support.waiting import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def catcher(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "breitband.cli", "mailcatcher", "--host", "127.0.0.1",
                             "--port", str(port)], env={**os.environ, "BREITBAND_DATA_DIR": str(tmp_path)},
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.1)
    yield port, tmp_path
    proc.terminate()
    proc.wait(10)


def test_caught_mail_is_shown_to_tenant_admins_in_demo_mode(catcher, settings, db, he):
    port, data_dir = catcher
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "noreply@breitband.localhost", "tiefbau@neu-isenburg.example", \
        "Neuer Antrag HE-2027-000001 <Test>"
    msg["X-Request-ID"] = "req-123"
    msg.set_content("Guten Tag,\nfür Stadt Neu-Isenburg ist ein neuer Antrag eingegangen.")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(msg, to_addrs=["tiefbau@neu-isenburg.example", "bcc@example.org"])

    on = create_app(settings.model_copy(update={"dev_mail": True, "data_dir": data_dir}), db=db)
    with TestClient(on) as client:
        [item] = client.get("/api/v1/dev/mail", headers=he.admin.headers).json()["items"]
        assert item["subject"] == "Neuer Antrag HE-2027-000001 <Test>"
        assert item["to"] == ["tiefbau@neu-isenburg.example", "bcc@example.org"]      # the envelope, Bcc too
        assert "neuer Antrag eingegangen" in item["text"] and item["headers"]["X-Request-ID"] == "req-123"
        page = client.get("/dev/mail", headers=he.admin.headers)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "Neuer Antrag HE-2027-000001 &lt;Test&gt;" in page.text                 # escaped
        assert client.get("/dev/mail.css").headers["content-type"].startswith("text/css")
        # tenant admins only
        assert client.get("/api/v1/dev/mail", headers=he.operator.headers).status_code == 403
        assert client.get("/dev/mail").status_code == 401

    off = create_app(settings.model_copy(update={"data_dir": data_dir}), db=db)
    with TestClient(off) as client:
        r = client.get("/api/v1/dev/mail", headers=he.admin.headers)
        assert r.status_code == 404 and r.json()["type"].endswith("/dev-mail-off")


def test_a_taken_port_is_one_clear_line(catcher, tmp_path):
    port, _ = catcher
    proc = subprocess.run([sys.executable, "-m", "breitband.cli", "mailcatcher", "--host", "127.0.0.1", "--port",
                           str(port), "--directory", str(tmp_path / "other")], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=60)
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
