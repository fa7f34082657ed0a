"""`breitband backup DIR` and `breitband restore DIR` as an operator runs them: a backup of the test database with
files in the data and signing directories, restored into a new database and new directories; row counts and file
hashes compared. Bad input: a non-empty target database, a damaged file, an interrupted backup."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from breitband import backup as backups
from breitband.migrate import drop_database
from breitband.settings import PROJECT_ROOT
from tests.conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.slow

RESTORED_URL = make_url(TEST_DATABASE_URL).set(
    database=make_url(TEST_DATABASE_URL).database + "_restored").render_as_string(hide_password=False)


def cli(*args: str, data_dir: Path, signing_dir: Path | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "BREITBAND_DATA_DIR": str(data_dir)}
    env.pop("BREITBAND_SIGNING_DIR", None)
    if signing_dir is not None:
        env["BREITBAND_SIGNING_DIR"] = str(signing_dir)
    return subprocess.run([sys.executable, "-m", "breitband.cli", *args], capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT, timeout=300)


def hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def database_exists(url: str) -> bool:
    import psycopg

    admin = make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (make_url(url).database,)).fetchone() is not None


@pytest.fixture
def source(engine, tmp_path):
    """Committed rows in the test database and files in a data and a signing directory."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (key, name, srid, rules) VALUES ('bk', 'Backup-Land', 25832, "
                          "'{}') ON CONFLICT DO NOTHING"))
    data, signing = tmp_path / "data", tmp_path / "signing"
    (data / "attachments" / "ab" / "cd").mkdir(parents=True)
    (data / "attachments" / "ab" / "cd" / ("abcd" + "0" * 60)).write_bytes(b"%PDF-1.7 a plan\n" * 1000)
    (data / "documents" / "he").mkdir(parents=True)
    (data / "documents" / "he" / "d1.pdf").write_bytes(os.urandom(50_000))
    (data / "keys" / "he").mkdir(parents=True)
    (data / "keys" / "he" / "key.pem").write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n")
    os.chmod(data / "keys" / "he" / "key.pem", 0o600)
    signing.mkdir()
    (signing / "he.cert.pem").write_text("-----BEGIN CERTIFICATE-----\ny\n")
    yield data, signing
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = 'bk'"))
    drop_database(RESTORED_URL)


def test_backup_and_restore_into_a_new_database(source, tmp_path):
    data, signing = source
    drop_database(RESTORED_URL)
    out = tmp_path / "backup"
    proc = cli("backup", str(out), data_dir=data, signing_dir=signing)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["files"] == 4 and summary["rows"] > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["database"]["row_counts"]["public.tenants"] >= 1
    assert (out / "database.dump").stat().st_size > 0
    assert oct(out.stat().st_mode & 0o777) == "0o700"
    # A second backup into the same directory never overwrites the first.
    again = cli("backup", str(out), data_dir=data, signing_dir=signing)
    assert again.returncode == 1 and "not an empty directory" in again.stderr

    new_data, new_signing = tmp_path / "restored-data", tmp_path / "restored-signing"
    proc = cli("restore", str(out), "--database-url", RESTORED_URL, data_dir=new_data, signing_dir=new_signing)
    assert proc.returncode == 0, proc.stderr
    restored = json.loads(proc.stdout)
    assert restored["files_copied"] == 4
    assert backups.row_counts(RESTORED_URL) == backups.row_counts(TEST_DATABASE_URL)
    assert hashes(new_data) == hashes(data) and hashes(new_signing) == hashes(signing)
    assert oct((new_data / "keys" / "he" / "key.pem").stat().st_mode & 0o777) == "0o600"

    # Into a database that is no longer empty: refused, nothing changed.
    before = backups.row_counts(RESTORED_URL)
    proc = cli("restore", str(out), "--database-url", RESTORED_URL, data_dir=new_data, signing_dir=new_signing)
    assert proc.returncode == 1 and "is not empty" in proc.stderr and "nothing was changed" in proc.stderr
    assert backups.row_counts(RESTORED_URL) == before


def test_restore_refuses_damaged_or_incomplete_backups(source, tmp_path):
    data, signing = source
    drop_database(RESTORED_URL)
    out = tmp_path / "backup"
    assert cli("backup", str(out), data_dir=data, signing_dir=signing).returncode == 0
    target_data = tmp_path / "t-data"

    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    doc = damaged / "files" / "data" / "documents" / "he" / "d1.pdf"
    doc.write_bytes(b"changed" + doc.read_bytes()[7:])
    proc = cli("restore", str(damaged), "--database-url", RESTORED_URL, data_dir=target_data, signing_dir=signing)
    assert proc.returncode == 1 and str(doc) in proc.stderr and "checksum" in proc.stderr
    assert not database_exists(RESTORED_URL) and not target_data.exists()

    interrupted = tmp_path / "interrupted"
    shutil.copytree(out, interrupted)
    (interrupted / "manifest.json").unlink()
    proc = cli("restore", str(interrupted), "--database-url", RESTORED_URL, data_dir=target_data,
               signing_dir=signing)
    assert proc.returncode == 1 and "not a complete backup" in proc.stderr

    # A file in the data directory with other content than the backup's is never overwritten.
    (target_data / "documents" / "he").mkdir(parents=True)
    (target_data / "documents" / "he" / "d1.pdf").write_bytes(b"another document")
    proc = cli("restore", str(out), "--database-url", RESTORED_URL, data_dir=target_data, signing_dir=signing)
    assert proc.returncode == 1 and "exists with other content" in proc.stderr
    assert (target_data / "documents" / "he" / "d1.pdf").read_bytes() == b"another document"
    assert not database_exists(RESTORED_URL)

    # Signing files but no signing directory configured: refused before anything happens.
    proc = cli("restore", str(out), "--database-url", RESTORED_URL, data_dir=tmp_path / "x", signing_dir=None)
    assert proc.returncode == 1 and "BREITBAND_SIGNING_DIR" in proc.stderr
