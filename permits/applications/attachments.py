"""Attachment files: content sniffing, file-name sanitising and durable content-addressed storage.

Accepted are the plans as planners make them: PDF, PNG, JPEG, GIF, WebP, TIFF, DXF (ASCII and binary), DWG
(stored, not parsed: recognised by its version magic ``AC10xx`` alone), GeoPackage (SQLite with the application_id
GPKG/GP10/GP11 or a gpkg_contents table), Shapefile zips (each .shp with its .shx and .dbf), KML, KMZ and GeoJSON.
Each is checked to be what it claims: the content decides the format; a file name extension or a declared media
type that names another accepted format is refused (422, both named); zips pass ``breitband.zips`` (bombs, path
tricks, nested archives, encryption) and must hold what their kind needs. Nothing is stored unless every check passed.

Files are stored once per content under ``<data_dir>/attachments/<sha[0:2]>/<sha[2:4]>/<sha256>``: written to a
temporary file in the same directory, fsynced, then renamed into place (atomic on POSIX) and the directory fsynced.
A crash leaves either the complete file or nothing; a rolled-back upload leaves at most an unreferenced blob.
The stored content type is the sniffed one, never the client's header or the file name.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import sqlite3
import tempfile
import unicodedata
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

from breitband.errors import ProblemError, UnprocessableEntity
from breitband.zips import ZipLimits, ZipMember, check_zip

if TYPE_CHECKING:
    from permits.models import Attachment

CHUNK = 1 << 20
HEAD = 4096


@dataclass(frozen=True)
class Format:
    """An accepted kind of file: the media type it is stored and served with, the file name extensions that fit
    it (the first is given to a name without one), its name for people, and the other media types clients send for
    it (a declared type among them, or the stored one, is no contradiction)."""

    content_type: str
    extensions: tuple[str, ...]
    label: str
    aliases: tuple[str, ...] = ()

    @property
    def media_types(self) -> tuple[str, ...]:
        return (self.content_type, *self.aliases)


_ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/x-zip", "multipart/x-zip")
FORMATS: dict[str, Format] = {f.content_type: f for f in (
    Format("application/pdf", (".pdf",), "PDF", ("application/x-pdf",)),
    Format("image/png", (".png",), "PNG"),
    Format("image/jpeg", (".jpg", ".jpeg", ".jpe"), "JPEG", ("image/pjpeg",)),
    Format("image/gif", (".gif",), "GIF"),
    Format("image/webp", (".webp",), "WebP"),
    Format("image/tiff", (".tif", ".tiff"), "TIFF"),
    Format("image/vnd.dxf", (".dxf",), "DXF", ("application/dxf", "application/x-dxf", "image/x-dxf",
                                                "drawing/x-dxf", "text/plain")),
    Format("image/vnd.dwg", (".dwg",), "DWG", ("application/acad", "application/x-acad", "application/dwg",
                                                "application/x-dwg", "image/x-dwg", "drawing/dwg",
                                                "application/autocad_dwg")),
    Format("application/geopackage+sqlite3", (".gpkg",), "GeoPackage",
           ("application/x-sqlite3", "application/vnd.sqlite3")),
    Format("application/zip", (".zip",), "Shapefile (zip)",
           (*_ZIP_TYPES[1:], "application/x-shapefile", "application/x-esri-shape", "application/vnd.shp")),
    Format("application/vnd.google-earth.kml+xml", (".kml",), "KML", ("application/xml", "text/xml", "text/plain")),
    Format("application/vnd.google-earth.kmz", (".kmz", ".zip"), "KMZ", _ZIP_TYPES),
    Format("application/geo+json", (".geojson", ".json"), "GeoJSON",
           ("application/json", "application/vnd.geo+json", "text/plain")),
)}
ACCEPTED = ("PDF, PNG, JPEG, GIF, WebP, TIFF, DXF, DWG, GeoPackage, Shapefile (zip with .shp, .shx and .dbf), KML, "
            "KMZ or GeoJSON")
# What a client sends when it does not know the type: no claim, so no contradiction
_GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream", "application/unknown",
                  "application/x-download", "application/force-download", "application/download"}
_ZIP = Format("application/zip", (".zip",), "a zip archive")
_KNOWN_TYPES = {t for f in FORMATS.values() for t in f.media_types}
_KNOWN_EXTENSIONS = {e for f in FORMATS.values() for e in f.extensions}

_DXF_TEXT = re.compile(rb"(?:999[ \t]*\r?\n[^\n]*\n[ \t]*)*0[ \t]*\r?\n[ \t]*SECTION[ \t]*\r?\n")
_XML_ROOT = re.compile(rb"<\s*(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)")
_GEOJSON_TYPE = re.compile(rb'"type"\s*:\s*"(?:FeatureCollection|Feature|Point|MultiPoint|LineString|MultiLineString|'
                           rb'Polygon|MultiPolygon|GeometryCollection)"')
# Shapefile zips: the parts of a Shapefile and the files GIS programs write beside it
_SHAPEFILE_PARTS = {".shp", ".shx", ".dbf", ".prj", ".cpg", ".sbn", ".sbx", ".qix", ".fix", ".xml", ".qmd", ".qml",
                    ".sld", ".atx", ".aih", ".ain", ".ixs", ".mxs", ".lyr", ".lyrx", ".txt"}
_KMZ_PARTS = {".kml", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".dae", ".xml", ".txt"}
_DBF_VERSIONS = {0x02, 0x03, 0x04, 0x05, 0x30, 0x31, 0x32, 0x43, 0x63, 0x83, 0x8B, 0x8E, 0xCB, 0xF5, 0xFB}
_SHP_FILE_CODE = b"\x00\x00\x27\x0a"      # 9994, big-endian: the first word of .shp and .shx


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    zip: ZipLimits


def upload_limits(settings: Any) -> UploadLimits:
    """The limits of one upload from the settings (``max_attachment_mb``, ``zip_max_*``)."""
    return UploadLimits(max_bytes=int(settings.max_attachment_mb * (1 << 20)), zip=ZipLimits(
        max_members=settings.zip_max_members, max_unzipped_bytes=int(settings.zip_max_unzipped_mb * (1 << 20)),
        max_ratio=settings.zip_max_ratio))


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


def sniff(head: bytes) -> Format | None:
    """The format by its magic number or first text, from the first bytes alone (a zip: the Shapefile zip, told
    apart from a KMZ by ``identify``). SQLite files and text that looks like GeoJSON need ``identify``'s closer look."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"%PDF-"):
        return FORMATS["application/pdf"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FORMATS["image/png"]
    if head.startswith(b"\xff\xd8\xff"):
        return FORMATS["image/jpeg"]
    if head.startswith((b"GIF87a", b"GIF89a")):
        return FORMATS["image/gif"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return FORMATS["image/webp"]
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return FORMATS["image/tiff"]
    if head.startswith(b"AutoCAD Binary DXF\r\n\x1a\x00") or _DXF_TEXT.match(text):
        return FORMATS["image/vnd.dxf"]
    # DWG: the version magic AC1001 … AC1032 (R2.2 … 2018+) of a binary file; recognised by this header only
    if re.match(rb"AC10\d\d", head) and b"\x00" in head[6:128]:
        return FORMATS["image/vnd.dwg"]
    if head.startswith(b"SQLite format 3\x00") and head[68:72] in (b"GPKG", b"GP10", b"GP11"):
        return FORMATS["application/geopackage+sqlite3"]
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return FORMATS["application/zip"]
    if text.startswith(b"<"):
        prolog = re.sub(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", b"", text, flags=re.S).lstrip()
        m = _XML_ROOT.match(prolog)
        if m and m.group(1).lower() == b"kml":
            return FORMATS["application/vnd.google-earth.kml+xml"]
    return None


def _problem(status: int, type_: str, detail: str, **extra: Any) -> ProblemError:
    return ProblemError(detail, status=status, type=type_, title="Attachment refused", field="file",
                        **{k: v for k, v in extra.items() if v is not None})


def _unsupported(name: str | None, why: str = "", **extra: Any) -> UnsupportedMediaType:
    shown = f"The file {name!r}" if name else "The file"
    return UnsupportedMediaType(f"{shown} is not a {ACCEPTED} file{why} (judged by its content, not its name)",
                                accepted=sorted(FORMATS), field="file", file_name=name, **extra)


def _is_geopackage(path: Path) -> bool:
    """An SQLite file without the GeoPackage application_id is still one when it has the gpkg_contents table
    (GeoPackage 1.0 files written before the id was fixed). Opened read-only and immutable: nothing is run."""
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)) as db:
            return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'gpkg_contents'"
                              ).fetchone() is not None
    except sqlite3.Error:
        return False


def _geojson(path: Path, head: bytes, name: str | None) -> Format:
    """JSON whose top level is an object naming a GeoJSON type (a FeatureCollection, Feature or geometry ``"type"``
    member in its first bytes), UTF-8 throughout and ending with the object's ``}``. Recognised, not parsed: a full
    parse of a 25 MiB file would cost seconds and hundreds of MiB per upload (bench/attachment_checks.py)."""
    if not _GEOJSON_TYPE.search(head):
        raise _unsupported(name, ": it is JSON but not GeoJSON (no FeatureCollection, Feature or geometry type at "
                           "its start)")
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, tail = 0, b""
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise _problem(422, "invalid-geojson", f"The file {name!r} is not UTF-8 text (byte "
                               f"{offset + exc.start}); GeoJSON is UTF-8", file_name=name) from None
            offset += len(chunk)
            tail = (tail + chunk)[-64:]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise _problem(422, "invalid-geojson", f"The file {name!r} is not UTF-8 text (it ends inside a character)",
                       file_name=name) from None
    if not tail.rstrip(b" \t\r\n").endswith(b"}"):
        raise _problem(422, "invalid-geojson", f"The file {name!r} ends before its GeoJSON object is closed (no "
                       "final }): it seems cut off", file_name=name)
    return FORMATS["application/geo+json"]


def _stem(member: ZipMember) -> str:
    return member.name[: -len(member.suffix)].casefold() if member.suffix else member.name.casefold()


def _zip_kind(path: Path, name: str | None, limits: ZipLimits) -> Format:
    """A Shapefile zip (every .shp with its .shx and .dbf, the parts' content checked, only a Shapefile's files
    beside them) or a KMZ (a KML, with the images and models it shows); any other zip is not accepted."""
    label = f"The zip archive {name!r}" if name else "The zip archive"
    try:
        members = check_zip(path, limits, label)
    except ProblemError as exc:
        exc.extra.update(field="file", file_name=name)
        raise
    content = [m for m in members if not m.name.startswith("__MACOSX/") and not m.base.startswith("._")]
    shps = [m for m in content if m.suffix == ".shp"]
    kmls = [m for m in content if m.suffix == ".kml"]
    if shps:
        fmt, allowed = FORMATS["application/zip"], _SHAPEFILE_PARTS
        by_stem = {(_stem(m), m.suffix): m for m in content}
        for shp in shps:
            missing = [s for s in (".shx", ".dbf") if (_stem(shp), s) not in by_stem]
            if missing:
                raise _problem(422, "zip-content-mismatch", f"{label} holds {shp.name!r} without its "
                               + " and ".join(shp.name[: -4] + s for s in missing) + "; a Shapefile needs .shp, "
                               ".shx and .dbf", file_name=name, member=shp.name,
                               missing=[shp.name[:-4] + s for s in missing])
        for m in content:
            bad = ((m.suffix in (".shp", ".shx") and not m.head.startswith(_SHP_FILE_CODE))
                   or (m.suffix == ".dbf" and (len(m.head) < 32 or m.head[0] not in _DBF_VERSIONS)))
            if bad:
                raise _problem(422, "zip-content-mismatch", f"{label}: member {m.name!r} is not a Shapefile "
                               f"{m.suffix} file (its content says otherwise)", file_name=name, member=m.name)
    elif kmls:
        fmt, allowed = FORMATS["application/vnd.google-earth.kmz"], _KMZ_PARTS
        for m in kmls:
            if sniff(m.head) is not FORMATS["application/vnd.google-earth.kml+xml"]:
                raise _problem(422, "zip-content-mismatch", f"{label}: member {m.name!r} is not KML (no <kml> "
                               "root element)", file_name=name, member=m.name)
    else:
        names = [m.name for m in content]
        raise _unsupported(name, ": the zip holds neither a Shapefile (.shp, .shx, .dbf) nor a KML (KMZ); it "
                           "holds " + (", ".join(names[:20]) or "nothing"), members=names[:20])
    strange = [m.name for m in content if m.suffix not in allowed]
    if strange:
        raise _problem(422, "zip-content-mismatch", f"{label} is a {fmt.label} but also holds "
                       + ", ".join(repr(n) for n in strange[:10]) + "; send those files separately",
                       file_name=name, member=strange[0], members=strange[:20])
    return fmt


def _check_claims(fmt: Format, name: str | None, declared_type: str | None, family: tuple[Format, ...]) -> None:
    """A declared media type or a file name extension that names another accepted format than the content → 422
    naming both. Unknown or generic declarations claim nothing. ``family``: formats the content may still turn
    out to be (a zip: Shapefile zip or KMZ), so a claim fitting any of them passes until the closer look."""
    declared = (declared_type or "").split(";")[0].strip().lower()
    fits_type = {t for f in family for t in f.media_types}
    if declared not in _GENERIC_TYPES and declared in _KNOWN_TYPES and declared not in fits_type:
        raise _problem(422, "attachment-type-mismatch", f"The file {name!r} is sent as {declared} but its content "
                       f"is {fmt.label} ({fmt.content_type})", file_name=name, declared_type=declared,
                       content_type=fmt.content_type)
    suffix = PurePosixPath(re.split(r"[/\\]", name or "")[-1]).suffix.lower()
    if suffix in _KNOWN_EXTENSIONS and suffix not in {e for f in family for e in f.extensions}:
        raise _problem(422, "attachment-type-mismatch", f"The file {name!r} is named as {suffix} but its content "
                       f"is {fmt.label} ({fmt.content_type})", file_name=name, declared_extension=suffix,
                       content_type=fmt.content_type)


def identify(path: Path, head: bytes, name: str | None = None, declared_type: str | None = None,
             zip_limits: ZipLimits | None = None) -> Format:
    """The format of the file at ``path`` (``head``: its first bytes), checked to be what it claims: 415 when
    the content is no accepted format, 422 when the name or declared type says another, when a zip is unsafe
    (``breitband.zips``) or does not hold what its kind needs."""
    fmt = sniff(head)
    if fmt is None and head.startswith(b"SQLite format 3\x00"):
        if not _is_geopackage(path):
            raise _unsupported(name, ": it is an SQLite database but not a GeoPackage (no application_id GPKG, "
                               "no gpkg_contents table)")
        fmt = FORMATS["application/geopackage+sqlite3"]
    if fmt is None and head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        _check_claims(FORMATS["application/geo+json"], name, declared_type, (FORMATS["application/geo+json"],))
        fmt = _geojson(path, head, name)
    if fmt is None:
        raise _unsupported(name)
    if fmt.content_type == "application/zip":
        zips = (fmt, FORMATS["application/vnd.google-earth.kmz"])
        _check_claims(_ZIP, name, declared_type, zips)           # before the unpacking: a PDF name is enough
        fmt = _zip_kind(path, name, zip_limits or ZipLimits())
    _check_claims(fmt, name, declared_type, (fmt,))
    return fmt


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
    expected = FORMATS[content_type].extensions
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


def store(data_dir: Path, stream: BinaryIO, limits: UploadLimits, file_name: str | None = None,
          declared_type: str | None = None) -> StoredFile:
    """Stream the upload to disk, hashing as it goes; reject over ``limits.max_bytes`` (413), content of no
    accepted format (415) and content that is not what its name or declared type says, or an unsafe zip (422,
    ``identify``). Only a file that passed every check is moved into the store."""
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
                if size > limits.max_bytes:
                    raise PayloadTooLarge(f"The file is larger than the limit of {limits.max_bytes / (1 << 20):g} "
                                          "MiB", limit_bytes=limits.max_bytes)
                if len(head) < HEAD:
                    head += chunk[: HEAD - len(head)]
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise UnprocessableEntity("The file is empty", type="empty-attachment", field="file")
        fmt = identify(Path(tmp_name), head, file_name, declared_type, limits.zip)
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
        return StoredFile(sha256=sha, size_bytes=size, content_type=fmt.content_type, extension=fmt.extensions[0])
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
