"""Attachments: content sniffing, sanitised names, durable content-addressed storage, size limit, visibility; plans
in every planner's format (DXF, DWG, GeoPackage, Shapefile zip, KML/KMZ, GeoJSON) checked to be what they claim, and
zips checked for bombs and path tricks before anything is stored (issue 14, item 2).

The GIS files are made with GDAL (pyogrio) from the example route; the binary DXF is the ASCII one re-encoded group by
group (and read back by GDAL); the encrypted zip is written with PKWARE's traditional encryption (and opened with
the password by Python's zipfile). DWG is recognised by its header alone (it is stored, not parsed), so its fixture
is a header: the version magic and the binary bytes after it."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import stat
import struct
import zipfile
import zlib

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely

from breitband.settings import PROJECT_ROOT
from geo.crs import transformer
from permits.applications.attachments import blob_path
from tests.support.api import PROBLEM, collection, draft_body, trench

PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
TYPE = "https://breitband.dev/problems/"


def upload(api, who, app_id, name, data, kind="route_plan", content_type="application/octet-stream", key=None):
    headers = dict(who.headers)
    if key:
        headers["Idempotency-Key"] = key
    return api.c.post(f"/api/v1/applications/{app_id}/attachments", files={"file": (name, data, content_type)},
                      data={"kind": kind}, headers=headers)


def test_upload_sniffs_sanitises_and_stores_by_sha256(api, he, lines, clock, settings):
    app = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg"])))).json()
    r = upload(api, he.operator, app["id"], "../../Trassenplan <BA 3>.PDF", PDF)
    assert r.status_code == 201, r.text
    att = r.json()
    sha = hashlib.sha256(PDF).hexdigest()
    assert (att["kind"], att["file_name"], att["content_type"], att["size_bytes"], att["sha256"]) == (
        "route_plan", "Trassenplan _BA 3_.pdf", "application/pdf", len(PDF), sha)
    assert r.headers["location"] == att["url"] == f"/api/v1/applications/{app['id']}/attachments/{att['id']}"
    path = blob_path(settings.data_dir, sha)
    assert path == settings.data_dir / "attachments" / sha[:2] / sha[2:4] / sha
    assert path.read_bytes() == PDF

    png = upload(api, he.operator, app["id"], "foto.2024", PNG, kind="photo").json()
    assert (png["content_type"], png["file_name"]) == ("image/png", "foto.2024.png")
    same = upload(api, he.operator, app["id"], "kopie.pdf", PDF).json()
    assert same["id"] != att["id"] and same["sha256"] == sha             # one blob, two attachments

    download = api.get(he.operator, att["url"][len("/api/v1"):])
    assert (download.status_code, download.content, download.headers["content-type"]) == (200, PDF, "application/pdf")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "Trassenplan%20_BA%203_.pdf" in download.headers["content-disposition"] or \
        'filename="Trassenplan _BA 3_.pdf"' in download.headers["content-disposition"]

    # the same upload with the same key is stored once
    k1 = upload(api, he.operator, app["id"], "a.pdf", PDF, key="upload-1")
    k2 = upload(api, he.operator, app["id"], "a.pdf", PDF, key="upload-1")
    assert (k1.status_code, k2.status_code, k2.json()["id"]) == (201, 201, k1.json()["id"])
    k3 = upload(api, he.operator, app["id"], "a.pdf", PNG, key="upload-1")
    assert (k3.status_code, k3.json()["type"]) == (422, TYPE + "idempotency-key-reused")


def test_unknown_types_empty_files_and_oversized_files_are_refused(api, he, lines, clock, settings, monkeypatch):
    app = api.create(he.operator, draft_body(None)).json()
    r = upload(api, he.operator, app["id"], "plan.pdf", b"MZ\x90\x00 this is a windows program")
    assert (r.status_code, r.headers["content-type"], r.json()["type"]) == (
        415, PROBLEM, TYPE + "unsupported-media-type")
    assert r.json()["detail"] == ("The file 'plan.pdf' is not a PDF, PNG, JPEG, GIF, WebP, TIFF, DXF, DWG, GeoPackage, "
                                  "Shapefile (zip with .shp, .shx and .dbf), KML, KMZ or GeoJSON file (judged by its "
                                  "content, not its name)")
    assert (r.json()["field"], r.json()["file_name"]) == ("file", "plan.pdf")
    r = upload(api, he.operator, app["id"], "leer.pdf", b"")
    assert (r.status_code, r.json()["type"]) == (422, TYPE + "empty-attachment")
    monkeypatch.setattr(settings, "max_attachment_mb", 0.0001)           # 104 bytes
    r = upload(api, he.operator, app["id"], "plan.pdf", PDF)
    assert (r.status_code, r.json()["type"], r.json()["limit_bytes"]) == (413, TYPE + "attachment-too-large", 104)
    r = upload(api, he.operator, app["id"], "plan.pdf", PDF, kind="selfie")
    assert r.status_code == 422
    assert api.get(he.operator, f"/applications/{app['id']}").json()["attachments"] == []
    leftovers = [p for p in (settings.data_dir / "attachments").iterdir() if p.name.startswith(".upload-")]
    assert leftovers == []


def test_power_of_attorney_and_what_authorities_see(api, he, lines, clock):
    created = api.create(he.operator, draft_body(
        collection(trench(lines["neu_isenburg"])),
        representative={"name": "Planungsbüro Süd", "organisation": "PB Süd GmbH", "email": "info@pb-sued.example"}))
    app_id = created.json()["id"]
    poa = upload(api, he.operator, app_id, "Vollmacht.pdf", PDF, kind="power_of_attorney").json()
    plan = upload(api, he.operator, app_id, "Plan.pdf", PDF, kind="route_plan").json()
    draft_only = upload(api, he.operator, app_id, "Entwurf.png", PNG, kind="other").json()

    r = api.c.patch(f"/api/v1/applications/{app_id}",
                    headers={**he.operator.headers, "If-Match": created.headers["etag"]},
                    json={"representative": {"name": "Planungsbüro Süd", "email": "info@pb-sued.example",
                                             "power_of_attorney_attachment_id": plan["id"]}})
    assert (r.status_code, r.json()["errors"][0]["message"]) == (
        422, f"attachment {plan['id']} is a route_plan, not a power_of_attorney")
    r = api.c.patch(f"/api/v1/applications/{app_id}",
                    headers={**he.operator.headers, "If-Match": created.headers["etag"]},
                    json={"attachment_ids": [plan["id"]],
                          "representative": {"name": "Planungsbüro Süd", "email": "info@pb-sued.example",
                                             "power_of_attorney_attachment_id": poa["id"]}})
    assert r.status_code == 200, r.text
    assert r.json()["content"]["attachment_ids"] == [plan["id"], poa["id"]]
    submitted = api.command(he.operator, f"/applications/{app_id}/submit", etag=r.headers["etag"])
    assert submitted.status_code == 200, submitted.text

    case_id = submitted.json()["cases"][0]["id"]
    seen = api.get(he.neu_isenburg, f"/applications/{app_id}").json()
    assert sorted(a["file_name"] for a in seen["attachments"]) == ["Plan.pdf", "Vollmacht.pdf"]
    assert api.get(he.neu_isenburg, f"/applications/{app_id}/attachments/{draft_only['id']}").status_code == 404
    assert api.get(he.neu_isenburg, f"/applications/{app_id}/attachments/{poa['id']}").content == PDF
    assert api.get(he.frankfurt, f"/applications/{app_id}/attachments/{poa['id']}").status_code == 404
    assert len(api.get(he.operator, f"/applications/{app_id}").json()["attachments"]) == 3

    # a supplement adds an attachment; authorities see it from then on
    api.command(he.neu_isenburg, f"/cases/{case_id}/request-information", {"message": "Querschnitt fehlt"})
    section = upload(api, he.operator, app_id, "Querschnitt.png", PNG, kind="cross_section").json()
    r = api.command(he.operator, f"/applications/{app_id}/supplements",
                    {"message": "Querschnitt anbei", "attachment_ids": [section["id"]]})
    assert r.status_code == 200, r.text
    assert api.get(he.neu_isenburg, f"/applications/{app_id}/attachments/{section['id']}").content == PNG
    assert api.get(he.neu_isenburg, f"/applications/{app_id}/versions/2").json()["content"]["attachment_ids"] == [
        plan["id"], poa["id"], section["id"]]


# --- plans in every planner's format ---------------------------------------------------------------------------------

EXAMPLE = PROJECT_ROOT / "data" / "examples" / "route-neu-isenburg.geojson"
# A DWG's header as far as it is checked: the version magic of AutoCAD 2018 and the binary bytes that follow it
DWG = b"AC1032" + bytes(5) + b"\x00\x01" + bytes(range(256)) * 2


def example_geoms(epsg: int) -> list:
    doc = json.loads(EXAMPLE.read_text())
    geoms = [shapely.geometry.shape(f["geometry"]) for f in doc["features"]]
    if epsg == 4326:
        return geoms
    t = transformer(4326, epsg)
    return [shapely.transform(g, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1]))) for g in geoms]


def gdal_file(path, driver: str, epsg: int = 25832) -> bytes:
    """The example route written by GDAL in ``driver``'s format; the bytes of the (main) file."""
    geoms = example_geoms(epsg)
    names = np.array([f"Abschnitt {i}" for i in range(len(geoms))], dtype=object)
    fields = ([], []) if driver == "DXF" else ([names], ["name"])        # DXF has a fixed set of fields
    pyogrio.raw.write(str(path), shapely.to_wkb(np.array(geoms, dtype=object)), *fields, driver=driver,
                      geometry_type="LineString", crs=f"EPSG:{epsg}")
    return path.read_bytes()


def shapefile_zip(tmp_path, drop: str | None = None, extra: dict[str, bytes] | None = None) -> bytes:
    folder = tmp_path / "shape"
    folder.mkdir(exist_ok=True)
    gdal_file(folder / "trasse.shp", "ESRI Shapefile")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(folder.iterdir()):
            if part.suffix != drop:
                zf.write(part, f"trasse/{part.name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out.getvalue()


def zipped(members: dict[str, bytes], **options) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, **options) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


# Binary DXF: the same groups as the ASCII file, the code as int16, the value by the code's type
def _dxf_value(code: int, text: str) -> bytes:
    if 10 <= code <= 59 or 110 <= code <= 149 or 210 <= code <= 239 or 1010 <= code <= 1059:
        return struct.pack("<d", float(text))
    if 60 <= code <= 79 or 170 <= code <= 179 or 270 <= code <= 289 or 370 <= code <= 389 or 400 <= code <= 409 \
            or 1060 <= code <= 1070:
        return struct.pack("<h", int(text))
    if 90 <= code <= 99 or 420 <= code <= 429 or 440 <= code <= 449 or code == 1071:
        return struct.pack("<i", int(text))
    if 160 <= code <= 169:
        return struct.pack("<q", int(text))
    if 290 <= code <= 299:
        return struct.pack("<B", int(text))
    if 310 <= code <= 319 or code == 1004:
        data = bytes.fromhex(text)
        return struct.pack("<B", len(data)) + data
    return text.encode("cp1252") + b"\x00"


def binary_dxf(ascii_dxf: bytes) -> bytes:
    lines = ascii_dxf.decode("cp1252").splitlines()
    out = [b"AutoCAD Binary DXF\r\n\x1a\x00"]
    for i in range(0, len(lines) - 1, 2):
        code = int(lines[i])
        out.append(struct.pack("<h", code) + _dxf_value(code, lines[i + 1].strip() if code != 1 else lines[i + 1]))
    return b"".join(out)


def zipcrypto_zip(name: str, data: bytes, password: bytes) -> bytes:
    """A zip with one member under PKWARE's traditional encryption (stored, not compressed)."""
    def crc_byte(value: int, byte: int) -> int:
        return zlib.crc32(bytes([byte]), value ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = crc_byte(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc_byte(keys[2], keys[1] >> 24)

    def encrypt(plain: bytes) -> bytes:
        out = bytearray()
        for p in plain:
            t = (keys[2] | 2) & 0xFFFF
            out.append(p ^ (((t * (t ^ 1)) >> 8) & 0xFF))
            update(p)
        return bytes(out)

    for p in password:
        update(p)
    crc = zlib.crc32(data)
    body = encrypt(bytes(range(11)) + bytes([crc >> 24])) + encrypt(data)
    raw = name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 1, 0, 0, 0, crc, len(body), len(data), len(raw), 0)
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 1, 0, 0, 0, crc, len(body), len(data),
                          len(raw), 0, 0, 0, 0, 0, 0)
    directory = central + raw
    offset = len(local) + len(raw) + len(body)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(directory), offset, 0)
    return local + raw + body + directory + end


def stored_blobs(settings) -> set[str]:
    root = settings.data_dir / "attachments"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_plans_in_every_planners_format_are_stored_with_their_sniffed_type(api, he, lines, clock, settings, tmp_path):
    app = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg"])))).json()
    dxf = gdal_file(tmp_path / "trasse.dxf", "DXF")
    bin_dxf = binary_dxf(dxf)
    (tmp_path / "binary.dxf").write_bytes(bin_dxf)
    # GDAL reads the binary DXF to the same geometries as the ASCII one
    assert list(pyogrio.raw.read(tmp_path / "binary.dxf")[2]) == list(pyogrio.raw.read(tmp_path / "trasse.dxf")[2])
    gpkg = gdal_file(tmp_path / "trasse.gpkg", "GPKG")
    assert gpkg[68:72] == b"GPKG"
    old_gpkg = gpkg[:68] + bytes(4) + gpkg[72:]          # a GeoPackage 1.0 without the application_id
    kml = gdal_file(tmp_path / "trasse.kml", "KML", 4326)
    cases = [  # (name, bytes, declared type, stored type, stored name)
        ("Trasse BA3.dxf", dxf, "image/vnd.dxf", "image/vnd.dxf", "Trasse BA3.dxf"),
        ("Trasse binär.DXF", bin_dxf, "application/octet-stream", "image/vnd.dxf", "Trasse binär.dxf"),
        ("Lageplan.dwg", DWG, "image/vnd.dwg", "image/vnd.dwg", "Lageplan.dwg"),
        ("Lageplan", DWG, "application/octet-stream", "image/vnd.dwg", "Lageplan.dwg"),
        ("trasse.gpkg", gpkg, "application/geopackage+sqlite3", "application/geopackage+sqlite3", "trasse.gpkg"),
        ("alt.gpkg", old_gpkg, "application/octet-stream", "application/geopackage+sqlite3", "alt.gpkg"),
        ("trasse.zip", shapefile_zip(tmp_path), "application/zip", "application/zip", "trasse.zip"),
        ("trasse.kml", kml, "application/vnd.google-earth.kml+xml", "application/vnd.google-earth.kml+xml",
         "trasse.kml"),
        ("trasse.kmz", zipped({"doc.kml": kml, "files/logo.png": PNG}), "application/vnd.google-earth.kmz",
         "application/vnd.google-earth.kmz", "trasse.kmz"),
        ("route.geojson", EXAMPLE.read_bytes(), "application/geo+json", "application/geo+json", "route.geojson"),
        ("route.json", EXAMPLE.read_bytes(), "application/json", "application/geo+json", "route.json"),
    ]
    for name, data, declared, content_type, stored_name in cases:
        r = upload(api, he.operator, app["id"], name, data, content_type=declared)
        assert r.status_code == 201, (name, r.text)
        att = r.json()
        assert (att["content_type"], att["file_name"], att["size_bytes"]) == (content_type, stored_name, len(data))
        assert blob_path(settings.data_dir, att["sha256"]).read_bytes() == data
        download = api.get(he.operator, att["url"][len("/api/v1"):])
        assert (download.status_code, download.content) == (200, data)
        assert download.headers["content-type"] == content_type
        assert download.headers["content-disposition"].startswith("attachment;")
        assert download.headers["x-content-type-options"] == "nosniff"


def test_files_that_are_not_what_they_claim_are_refused_naming_both(api, he, clock, settings, tmp_path):
    app = api.create(he.operator, draft_body(None)).json()
    dxf = gdal_file(tmp_path / "trasse.dxf", "DXF")
    before = stored_blobs(settings)
    db = tmp_path / "plain.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    cases = [  # (name, bytes, declared type) → (status, type, what the detail names)
        (("plan.dxf", PDF, "application/octet-stream"), (422, "attachment-type-mismatch", ".dxf", "PDF")),
        (("plan.pdf", dxf, "application/octet-stream"), (422, "attachment-type-mismatch", ".pdf", "DXF")),
        (("plan", dxf, "application/pdf"), (422, "attachment-type-mismatch", "application/pdf", "DXF")),
        (("foto.pdf", PNG, "application/pdf"), (422, "attachment-type-mismatch", ".pdf", "PNG")),
        (("trasse.kmz", shapefile_zip(tmp_path), "application/zip"),
         (422, "attachment-type-mismatch", ".kmz", "Shapefile (zip)")),
        (("plan.pdf", shapefile_zip(tmp_path), "application/octet-stream"),
         (422, "attachment-type-mismatch", ".pdf", "zip")),
        (("shapefile.zip", zipped({"trasse/readme.txt": b"no shapes here", "trasse/plan.pdf": PDF}),
          "application/zip"), (415, "unsupported-media-type", "shapefile.zip", "trasse/readme.txt")),
        (("trasse.zip", shapefile_zip(tmp_path, drop=".shx"), "application/zip"),
         (422, "zip-content-mismatch", "trasse/trasse.shp", "trasse/trasse.shx")),
        (("trasse.zip", zipped({"a.shp": PDF, "a.shx": PDF, "a.dbf": PDF}), "application/zip"),
         (422, "zip-content-mismatch", "'a.shp'", "not a Shapefile .shp")),
        (("trasse.zip", shapefile_zip(tmp_path, extra={"setup.exe": b"MZ\x90\x00"}), "application/zip"),
         (422, "zip-content-mismatch", "setup.exe", "Shapefile (zip)")),
        (("route.kmz", zipped({"doc.kml": PDF}), "application/vnd.google-earth.kmz"),
         (422, "zip-content-mismatch", "doc.kml", "not KML")),
        (("daten.gpkg", db.read_bytes(), "application/geopackage+sqlite3"),
         (415, "unsupported-media-type", "daten.gpkg", "not a GeoPackage")),
        (("route.geojson", b'{"type": "FeatureCollection", "features": [', "application/geo+json"),
         (422, "invalid-geojson", "route.geojson", "cut off")),
        (("route.geojson", b'{"type": "Feature", "properties": {"name": "Stra\xdfe"}}', "application/geo+json"),
         (422, "invalid-geojson", "route.geojson", "not UTF-8 text (byte 48)")),
        (("notes.json", b'{"title": "not a map"}', "application/json"),
         (415, "unsupported-media-type", "notes.json", "not GeoJSON")),
        (("plan.txt", b"AC1032 is what the DWG of this plan says", "text/plain"),
         (415, "unsupported-media-type", "plan.txt", "judged by its content")),
    ]
    for (name, data, declared), (status, type_, *named) in cases:
        r = upload(api, he.operator, app["id"], name, data, content_type=declared)
        p = r.json()
        assert (r.status_code, r.headers["content-type"], p["type"]) == (status, PROBLEM, TYPE + type_), (name, p)
        assert (p["field"], p["file_name"]) == ("file", name)
        assert all(n in p["detail"] for n in named), (name, p["detail"])
    assert api.get(he.operator, f"/applications/{app['id']}").json()["attachments"] == []
    assert stored_blobs(settings) == before


def test_zip_bombs_path_tricks_and_encrypted_members_are_refused_before_anything_is_stored(
        api, he, clock, settings, tmp_path, monkeypatch):
    app = api.create(he.operator, draft_body(None)).json()
    good = shapefile_zip(tmp_path)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        parts = {i.filename: zf.read(i) for i in zf.infolist()}
    symlink = io.BytesIO()
    with zipfile.ZipFile(symlink, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("trasse/passwd.txt")
        link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    encrypted = zipcrypto_zip("trasse.kml", gdal_file(tmp_path / "e.kml", "KML", 4326), b"geheim")
    assert zipfile.ZipFile(io.BytesIO(encrypted)).read("trasse.kml", pwd=b"geheim").startswith(b"<?xml")
    dup = io.BytesIO()
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(dup, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
        zf.writestr("trasse/trasse.dbf", parts["trasse/trasse.dbf"])
    bomb = zipped({**parts, "trasse/trasse.dbf": bytes(20 << 20)}, compresslevel=9)   # 20 MiB of zeros, ~20 kB
    many = zipped({**parts, **{f"trasse/notiz{i}.txt": b"x" for i in range(201)}})
    small_bombs = zipped({**parts, **{f"trasse/teil{i}.txt": bytes(1 << 20) for i in range(8)}})  # 1 MiB each
    nested = zipped({**parts, "trasse/mehr.zip": zipped(parts)})
    disguised = zipped({**parts, "trasse/trasse.txt": zipped(parts)})
    before = stored_blobs(settings)
    cases = [  # (name, bytes) → (type, reason, member)
        (("bombe.zip", bomb), ("zip-too-large", "ratio", "trasse/trasse.dbf")),
        (("viele.zip", many), ("zip-too-large", "members", None)),
        (("klein.zip", small_bombs), ("zip-too-large", "ratio", None)),
        (("nested.zip", nested), ("invalid-zip", "nested-archive", "trasse/mehr.zip")),
        (("disguised.zip", disguised), ("invalid-zip", "nested-archive", "trasse/trasse.txt")),
        (("up.zip", zipped({**parts, "../trasse.prj": b"x"})), ("invalid-zip", "unsafe-path", "../trasse.prj")),
        (("abs.zip", zipped({**parts, "/etc/trasse.prj": b"x"})),
         ("invalid-zip", "unsafe-path", "/etc/trasse.prj")),
        (("drive.zip", zipped({**parts, "C:/trasse.prj": b"x"})),
         ("invalid-zip", "unsafe-path", "C:/trasse.prj")),
        (("win.zip", zipped({**parts, "trasse\\..\\..\\x.prj": b"x"})),
         ("invalid-zip", "unsafe-path", "trasse\\..\\..\\x.prj")),
        (("link.zip", symlink.getvalue()), ("invalid-zip", "symlink", "trasse/passwd.txt")),
        (("dup.zip", dup.getvalue()), ("invalid-zip", "duplicate-name", "trasse/trasse.dbf")),
        (("case.zip", zipped({**parts, "trasse/TRASSE.dbf": parts["trasse/trasse.dbf"]})),
         ("invalid-zip", "duplicate-name", "trasse/TRASSE.dbf")),
        (("secret.kmz", encrypted), ("invalid-zip", "encrypted", "trasse.kml")),
        (("broken.zip", good[: len(good) // 2]), ("invalid-zip", "damaged", None)),
    ]
    for (name, data), (type_, reason, member) in cases:
        r = upload(api, he.operator, app["id"], name, data, content_type="application/zip")
        p = r.json()
        assert (r.status_code, r.headers["content-type"], p["type"], p["reason"]) == (
            422, PROBLEM, TYPE + type_, reason), (name, p)
        assert (p["file_name"], p.get("member")) == (name, member), (name, p)
        assert repr(name) in p["detail"] and (member is None or repr(member) in p["detail"]), p["detail"]
    monkeypatch.setattr(settings, "zip_max_unzipped_mb", 0.001)           # 1 kB: the shapefile is larger
    r = upload(api, he.operator, app["id"], "trasse.zip", good)
    assert (r.status_code, r.json()["type"], r.json()["reason"]) == (422, TYPE + "zip-too-large", "size")
    assert api.get(he.operator, f"/applications/{app['id']}").json()["attachments"] == []
    assert stored_blobs(settings) == before
    monkeypatch.undo()
    # the quota was not touched: the one allowed file still goes in, the next is over the count
    monkeypatch.setattr(settings, "max_attachments_per_application", 1)
    assert upload(api, he.operator, app["id"], "trasse.zip", good).status_code == 201
    r = upload(api, he.operator, app["id"], "plan.pdf", PDF)
    assert (r.status_code, r.json()["type"]) == (422, TYPE + "attachment-quota-exceeded")
