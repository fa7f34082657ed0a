"""Backup and restore of one deployment: the database, the uploaded files, the decision documents and the signing
keys, together, with a manifest and checksums (`breitband backup DIR`, `breitband restore DIR`).

A backup directory holds::

    manifest.json        format, time, database revision, row count of every table, every file with size and SHA-256
    database.dump        pg_dump in custom format (restored with pg_restore)
    files/data/...       <data_dir>: attachments/ (by SHA-256), documents/<tenant>/<id>.pdf, keys/ (development keys
                         and the authorities' imported keys, encrypted as stored)
    files/signing/...    <signing_dir> (production signing keys and certificates), when one is configured

The database is dumped first, as one consistent snapshot; the files are copied afterwards. Attachments and documents
are written to disk before the database row that names them is committed and are never changed afterwards, so every
file the dump refers to is in the copy (a file written after the dump is copied too and is harmless).

Restore checks everything before it changes anything: the manifest and every checksum (a wrong one is refused naming
the file), that the target database is empty (no table outside the extensions), and that no file already in the
data or signing directory has other content than the backup's. Then it creates the database if needed, restores the
dump in a single transaction (a failure leaves the database as it was), copies the files and compares the restored
row counts with the manifest's."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from breitband.migrate import create_database

FORMAT = "breitband-backup/1"
MANIFEST = "manifest.json"
DUMP = "database.dump"
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore that cannot be made; the message says what and where. Nothing was changed."""


@dataclass(frozen=True)
class Target:
    """Where a restore writes: the database and the directories."""

    database_url: str
    data_dir: Path
    signing_dir: Path | None


def _libpq(database_url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password, and the environment that passes the password (not on the
    command line, where every user of the machine could read it)."""
    url = make_url(database_url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _psycopg_url(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def user_tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Tables outside the system schemas that no extension owns (PostGIS' spatial_ref_sys is the extension's)."""
    return conn.execute("""
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%%' AND NOT c.relispartition
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.deptype = 'e')
        ORDER BY 1, 2""").fetchall()


def row_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(_psycopg_url(database_url), connect_timeout=10) as conn:
        return {f"{schema}.{table}": conn.execute(
                    sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                ).fetchone()[0]
                for schema, table in user_tables(conn)}


def _revision(database_url: str) -> str | None:
    with psycopg.connect(_psycopg_url(database_url), connect_timeout=10) as conn:
        if conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()[0] is None:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None


def _walk(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()) if root.is_dir() else []


def _copy_tree(source: Path, dest_root: Path, prefix: str, exclude: Path | None) -> list[dict[str, Any]]:
    entries = []
    for path in _walk(source):
        if exclude is not None and path.is_relative_to(exclude):
            continue
        rel = path.relative_to(source).as_posix()
        target = dest_root / prefix / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        mode = path.stat().st_mode & 0o777
        os.chmod(target, mode)
        entries.append({"path": f"{prefix}/{rel}", "size": target.stat().st_size, "sha256": sha256_file(target),
                        "mode": f"{mode:o}"})
    return entries


def backup(directory: Path, database_url: str, data_dir: Path, signing_dir: Path | None,
           progress: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Write a backup into ``directory`` (new or empty); returns the manifest."""
    directory = directory.absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BackupError(f"{directory}: exists and is not an empty directory; a backup never overwrites another")
    data_dir, signing = Path(data_dir).absolute(), Path(signing_dir).absolute() if signing_dir else None
    counts = row_counts(database_url)
    revision = _revision(database_url)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)                  # it holds signing keys and personal data
    uri, env = _libpq(database_url)
    progress(f"dumping the database ({len(counts)} tables, {sum(counts.values())} rows)")
    proc = subprocess.run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--dbname={uri}",
                           f"--file={directory / DUMP}"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise BackupError(f"pg_dump failed: {proc.stderr.strip()}")
    progress(f"copying {data_dir}")
    entries = [{"path": DUMP, "size": (directory / DUMP).stat().st_size, "sha256": sha256_file(directory / DUMP),
                "mode": "600"}]
    # A backup directory inside the data directory would copy itself.
    entries += _copy_tree(data_dir, directory, "files/data", exclude=directory)
    if signing is not None:
        progress(f"copying {signing}")
        entries += _copy_tree(signing, directory, "files/signing", exclude=directory)
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {"name": make_url(database_url).database, "alembic_revision": revision, "row_counts": counts},
        "data_dir": str(data_dir), "signing_dir": str(signing) if signing else None,
        "files": entries,
    }
    # The manifest is written last: a directory without one is an interrupted backup and restore refuses it.
    tmp = directory / (MANIFEST + ".partial")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(directory / MANIFEST)
    progress(f"backup complete: {len(entries) - 1} files, {sum(e['size'] for e in entries)} bytes")
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise BackupError(f"{path}: missing; {directory} is not a complete backup (interrupted or not one of ours)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: format {manifest.get('format') if isinstance(manifest, dict) else None!r} "
                          f"is not {FORMAT!r}")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(e, dict) and {"path", "sha256", "size"} <= e.keys()
                                              for e in files):
        raise BackupError(f"{path}: the list of files is malformed")
    for e in files:
        p = Path(e["path"])
        if p.is_absolute() or ".." in p.parts or not (e["path"] == DUMP or e["path"].startswith("files/")):
            raise BackupError(f"{path}: file entry {e['path']!r} points outside the backup")
    return manifest


def verify(directory: Path, manifest: dict[str, Any]) -> None:
    """Every file of the manifest is present with its size and checksum; no unlisted file sits beside them."""
    listed = set()
    for e in manifest["files"]:
        path = directory / e["path"]
        listed.add(path)
        if not path.is_file():
            raise BackupError(f"{path}: listed in the manifest but missing")
        if path.stat().st_size != e["size"] or sha256_file(path) != e["sha256"]:
            raise BackupError(f"{path}: checksum does not match the manifest (changed or damaged since the backup)")
    extra = [p for p in _walk(directory / "files") if p not in listed]
    if extra:
        raise BackupError(f"{extra[0]}: not listed in the manifest (added after the backup)")


def _destination(entry: str, target: Target) -> Path | None:
    if entry.startswith("files/data/"):
        return target.data_dir / entry.removeprefix("files/data/")
    if entry.startswith("files/signing/"):
        return target.signing_dir / entry.removeprefix("files/signing/") if target.signing_dir else None
    return None


def restore(directory: Path, target: Target, progress: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Restore a backup into an empty database and the data (and signing) directory. Returns a summary."""
    directory = directory.absolute()
    manifest = read_manifest(directory)
    progress(f"checking {len(manifest['files'])} files against the manifest")
    verify(directory, manifest)
    files = [e for e in manifest["files"] if e["path"] != DUMP]
    signing_files = [e for e in files if e["path"].startswith("files/signing/")]
    if signing_files and target.signing_dir is None:
        raise BackupError(f"the backup holds {len(signing_files)} files of a signing directory "
                          f"({manifest.get('signing_dir')}); set BREITBAND_SIGNING_DIR to restore them")
    # Nothing already stored is lost: a file that exists with other content stops the restore before it begins.
    for e in files:
        dest = _destination(e["path"], target)
        if dest is not None and dest.exists() and (not dest.is_file() or sha256_file(dest) != e["sha256"]):
            raise BackupError(f"{dest}: exists with other content than the backup's {e['path']}; nothing was changed")
    url = make_url(target.database_url)
    created = create_database(target.database_url)
    if not created:
        with psycopg.connect(_psycopg_url(target.database_url), connect_timeout=10) as conn:
            tables = user_tables(conn)
        if tables:
            raise BackupError(f"database {url.database!r} is not empty ({len(tables)} tables, e.g. "
                              f"{tables[0][0]}.{tables[0][1]}); restore only into an empty or new database; "
                              "nothing was changed")
    uri, env = _libpq(target.database_url)
    progress(f"restoring the database into {url.database!r}")
    proc = subprocess.run([_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction",
                           "--exit-on-error", f"--dbname={uri}", str(directory / DUMP)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupError(f"pg_restore failed, the database is as it was: {proc.stderr.strip()}")
    progress(f"copying {len(files)} files")
    copied = 0
    for e in files:
        dest = _destination(e["path"], target)
        if dest is None or dest.exists():
            continue                    # identical content, checked above
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".restoring")
        shutil.copyfile(directory / e["path"], tmp)
        os.chmod(tmp, int(e.get("mode", "600"), 8))
        tmp.replace(dest)
        copied += 1
    for keys in (target.data_dir / "keys",):
        if keys.is_dir():
            for d in [keys, *(p for p in keys.rglob("*") if p.is_dir())]:
                os.chmod(d, 0o700)
    counts = row_counts(target.database_url)
    expected = manifest["database"]["row_counts"]
    differ = {t: (expected.get(t), counts.get(t)) for t in set(expected) | set(counts)
              if expected.get(t) != counts.get(t)}
    if differ:
        raise BackupError(f"restored row counts differ from the backup's: {dict(sorted(differ.items()))}")
    summary = {"database": url.database, "tables": len(counts), "rows": sum(counts.values()),
               "files_copied": copied, "files_already_present": len(files) - copied,
               "alembic_revision": manifest["database"].get("alembic_revision"),
               "backup_created_at": manifest.get("created_at")}
    progress("restore complete")
    return summary
