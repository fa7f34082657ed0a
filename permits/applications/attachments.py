"""Attachment files: content sniffing, file-name sanitising and durable content-addressed storage.

Files are stored once per content under ``<data_dir>/attachments/<sha[0:2]>/<sha[2:4]>/<sha256>``: written to a
temporary file in the same directory, fsynced, then renamed into place (atomic on POSIX) and the directory fsynced.
A crash leaves either the complete file or nothing; a rolled-back upload leaves at most an unreferenced blob.
The content type is taken from the bytes (magic numbers), never from the client's header or the file name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from breitband.errors import ProblemError, UnprocessableEntity

if TYPE_CHECKING:
    from permits.models import Attachment

CHUNK = 1 << 20

# (magic test, content type, extension)
SNIFFERS: list[tuple[object, str, str]] = [
    (lambda b: b.startswith(b"%PDF-"), "application/pdf", ".pdf"),
    (lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"), "image/png", ".png"),
    (lambda b: b.startswith(b"\xff\xd8\xff"), "image/jpeg", ".jpg"),
    (lambda b: b.startswith((b"GIF87a", b"GIF89a")), "image/gif", ".gif"),
    (lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP", "image/webp", ".webp"),
    (lambda b: b.startswith((b"II*\x00", b"MM\x00*")), "image/tiff", ".tif"),
]
EXTENSIONS = {"application/pdf": (".pdf",), "image/png": (".png",), "image/jpeg": (".jpg", ".jpeg"),
              "image/gif": (".gif",), "image/webp": (".webp",), "image/tiff": (".tif", ".tiff")}
ACCEPTED = "PDF, PNG, JPEG, GIF, WebP or TIFF"


class PayloadTooLarge(ProblemError):
    status, type, title = 413, "attachment-too-large", "Attachment too large"


class QuotaExceeded(ProblemError):
    status, type, title = 422, "attachment-quota-exceeded", "Attachment quota of the application exceeded"


class QuotaSizeExceeded(ProblemError):
    status, type, title = 413, "attachment-quota-exceeded", "Attachment quota of the application exceeded"


def check_quota(existing: "list[Attachment]", incoming_bytes: int, max_count: int, max_total_bytes: int) -> None:
    """Refuse one more attachment of ``incoming_bytes`` when the application already holds ``max_count`` files (422)
    or the files together would pass ``max_total_bytes`` (413). Every stored attachment counts, submitted or not
    (each takes storage); the caller holds the application's row lock, so parallel uploads cannot both pass."""
    count, used = len(existing), sum(a.size_bytes for a in existing)
    use = {"attachments": count, "total_bytes": used, "max_attachments": max_count, "max_total_bytes": max_total_bytes}
    if count >= max_count:
        raise QuotaExceeded(f"The application already has {count} attachments, the most allowed (quota: "
                            f"{max_count} attachments per application)", quota="max_attachments_per_application",
                            field="file", **use)
    if used + incoming_bytes > max_total_bytes:
        raise QuotaSizeExceeded(
            f"The application's attachments take {_mib(used)} MiB; this file of {_mib(incoming_bytes)} MiB would "
            f"pass the quota of {_mib(max_total_bytes)} MiB per application", quota="max_attachments_total_mb",
            field="file", incoming_bytes=incoming_bytes, **use)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.2f}".rstrip("0").rstrip(".")


class UnsupportedMediaType(ProblemError):
    status, type, title = 415, "unsupported-media-type", "Unsupported media type"


def sniff(head: bytes) -> tuple[str, str] | None:
    for test, content_type, ext in SNIFFERS:
        if test(head):  # type: ignore[operator]
            return content_type, ext
    return None


_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')


def sanitise_file_name(name: str | None, content_type: str) -> str:
    """A safe display/download name: no directories, control or reserved characters, no leading dots, at most
    150 characters, and an extension that matches the sniffed content."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name)
    name = " ".join(name.split()).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = stem.strip(" .")
    if not stem.strip("_"):
        stem = "anhang"
    expected = EXTENSIONS[content_type]
    suffix = "." + ext.lower() if ext else ""
    if suffix not in expected:
        stem = f"{stem}.{ext}" if ext else stem
        suffix = expected[0]
    return stem[: 150 - len(suffix)] + suffix


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size_bytes: int
    content_type: str
    extension: str


def blob_path(data_dir: Path, sha256: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("not a SHA-256 hex digest")
    return data_dir / "attachments" / sha256[:2] / sha256[2:4] / sha256


def store(data_dir: Path, stream: BinaryIO, max_bytes: int) -> StoredFile:
    """Stream the upload to disk, hashing as it goes; reject over ``max_bytes`` (413) and unknown types (415)."""
    root = data_dir / "attachments"
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    head = b""
    fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=root)
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"The file is larger than the limit of {max_bytes / (1 << 20):g} MiB",
                                          limit_bytes=max_bytes)
                if len(head) < 16:
                    head += chunk[: 16 - len(head)]
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise UnprocessableEntity("The file is empty", type="empty-attachment", field="file")
        sniffed = sniff(head)
        if sniffed is None:
            raise UnsupportedMediaType(f"The file is not a {ACCEPTED} file (judged by its content, not its name)",
                                       accepted=sorted(EXTENSIONS))
        sha = digest.hexdigest()
        target = blob_path(data_dir, sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and target.stat().st_size == size:
            os.unlink(tmp_name)
        else:
            os.replace(tmp_name, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return StoredFile(sha256=sha, size_bytes=size, content_type=sniffed[0], extension=sniffed[1])
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
