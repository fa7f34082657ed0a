"""Checks of an untrusted zip archive before anything reads its content: route files (``geo.route_files``) and
attachments (``permits.applications.attachments``) share them.

``check_zip`` refuses, with a 422 problem naming the archive and the member:
- an archive that cannot be read, a member whose data do not match its CRC or whose local header names another
  file than the central directory (``invalid-zip``);
- more members than ``max_members``, more than ``max_unzipped_bytes`` unpacked, or a member (or the members
  together) of more than ``ratio_min_bytes`` compressed more than ``max_ratio`` : 1 — the marks of a zip bomb
  (``zip-too-large``);
- path tricks: absolute paths, ``..``, backslashes, drive letters, control characters, symbolic links, two members
  with the same name or names that differ only in case (Windows and macOS unpack them onto one file)
  (``invalid-zip``);
- encrypted members and compression methods Python cannot unpack (``invalid-zip``);
- a zip (or KMZ) inside the zip: nested archives are not accepted at all, so 42.zip's layers never unfold
  (``invalid-zip``).

The declared sizes are not trusted: every member is read through once, in chunks, and Python's reader stops at the
declared size and then checks the CRC, so a member that unpacks to more than it declares is refused as damaged and
the work is bounded by ``max_unzipped_bytes``. What a caller then does with the members (a Shapefile's parts, a
KMZ's KML) is its own business; it gets each member's name, size and first bytes.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from breitband.errors import UnprocessableEntity

HEAD_BYTES = 4096
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A zip's own magic numbers (local file header, empty archive, spanned archive) and the extensions of zip formats
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_ZIP_SUFFIXES = (".zip", ".kmz", ".jar", ".7z", ".rar", ".gz", ".tgz", ".tar", ".bz2", ".xz")


@dataclass(frozen=True)
class ZipLimits:
    """Limits of one archive. The defaults are those of ``breitband.settings`` (``zip_max_*``)."""

    max_members: int = 200
    max_unzipped_bytes: int = 256 * (1 << 20)
    max_ratio: float = 100.0
    ratio_min_bytes: int = 1 << 20


@dataclass(frozen=True)
class ZipMember:
    name: str
    size: int
    head: bytes                 # the first HEAD_BYTES of its content

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix.lower()

    @property
    def base(self) -> str:
        return PurePosixPath(self.name).name


def _refuse(label: str, detail: str, type_: str = "invalid-zip", **extra: Any) -> UnprocessableEntity:
    return UnprocessableEntity(f"{label}: {detail}", type=type_, **{k: v for k, v in extra.items() if v is not None})


def unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe to unpack, or None."""
    if not name:
        return "an empty name"
    if "\\" in name:
        return "a backslash in the name (a Windows path)"
    if _CONTROL.search(name):
        return "a control character in the name"
    if name.startswith("/"):
        return "an absolute path"
    if _DRIVE.match(name):
        return "a drive letter"
    if ".." in PurePosixPath(name).parts:
        return "a path outside the archive (..)"
    return None


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.2f}".rstrip("0").rstrip(".")


def check_zip(source: bytes | Path | BinaryIO, limits: ZipLimits, label: str = "The zip archive"
              ) -> list[ZipMember]:
    """The members (directories left out) of a zip that passed every check; else a 422 problem (see the module
    docstring). ``label`` names the archive in messages, e.g. "The zip archive 'trasse.zip'"."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise _refuse(label, "cannot be read (damaged, incomplete or not a zip)", reason="damaged") from None
    with zf:
        return _check(zf, limits, label)


def _check(zf: zipfile.ZipFile, limits: ZipLimits, label: str) -> list[ZipMember]:
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise _refuse(label, f"holds {len(infos)} members, more than the limit of {limits.max_members}",
                      "zip-too-large", reason="members", members=len(infos), limit=limits.max_members)
    seen: dict[str, str] = {}
    total = 0
    for info in infos:
        name = info.filename
        why = unsafe_name(info.orig_filename) or unsafe_name(name)
        if why:
            raise _refuse(label, f"member {name!r} has {why}", reason="unsafe-path", member=name)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _refuse(label, f"member {name!r} is a symbolic link", reason="symlink", member=name)
        if info.flag_bits & 0x1:
            raise _refuse(label, f"member {name!r} is encrypted; send it without a password", reason="encrypted",
                          member=name)
        folded = name.rstrip("/").casefold()
        if folded in seen:
            same = seen[folded] == name.rstrip("/")
            raise _refuse(label, f"member {name!r} is there twice" if same else
                          f"members {seen[folded]!r} and {name!r} differ only in case", reason="duplicate-name",
                          member=name)
        seen[folded] = name.rstrip("/")
        total += info.file_size
        if total > limits.max_unzipped_bytes:
            raise _refuse(label, f"unpacks to more than the limit of {_mib(limits.max_unzipped_bytes)} MiB",
                          "zip-too-large", reason="size", member=name, limit_bytes=limits.max_unzipped_bytes)
        if info.file_size > limits.ratio_min_bytes and \
                info.file_size > limits.max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise _refuse(label, f"member {name!r} is compressed {ratio:.0f} : 1, more than the limit of "
                          f"{limits.max_ratio:g} : 1 (a zip bomb?)", "zip-too-large", reason="ratio", member=name,
                          limit_ratio=limits.max_ratio)
    packed = sum(i.compress_size for i in infos)
    if total > limits.ratio_min_bytes and total > limits.max_ratio * max(packed, 1):
        raise _refuse(label, f"is compressed {total / max(packed, 1):.0f} : 1 as a whole, more than the limit of "
                      f"{limits.max_ratio:g} : 1 (a zip bomb of many small members?)", "zip-too-large",
                      reason="ratio", limit_ratio=limits.max_ratio)
    return [_read_member(zf, info, label) for info in infos if not info.is_dir()]


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> ZipMember:
    """Read the member through (bounded by its declared size, CRC checked); its first bytes; no nested zip."""
    name = info.filename
    if name.lower().endswith(_ZIP_SUFFIXES):
        raise _refuse(label, f"member {name!r} is an archive itself; archives inside archives are not accepted",
                      reason="nested-archive", member=name)
    head = b""
    try:
        with zf.open(info) as member:
            while True:
                chunk = member.read(_CHUNK)
                if not chunk:
                    break
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                    if head.startswith(_ZIP_MAGIC):
                        raise _refuse(label, f"member {name!r} is a zip archive itself; archives inside archives "
                                      "are not accepted", reason="nested-archive", member=name)
    except NotImplementedError:
        raise _refuse(label, f"member {name!r} uses a compression method that is not supported (use Deflate)",
                      reason="compression", member=name) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise _refuse(label, f"member {name!r} is damaged ({_reason(exc)})", reason="damaged", member=name) from None
    return ZipMember(name=name, size=info.file_size, head=head)


def _reason(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__)[:200]
