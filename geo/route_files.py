"""One reader for route files in every common GIS format (issue 14, item 1).

Planners send what their tools write: GeoJSON, a zipped Shapefile, GeoPackage, KML/KMZ, GML, GPX, FlatGeobuf,
DXF, CSV with a WKT column. ``read_route_file`` recognises the format by content (magic bytes, the XML root, the
first JSON character), never by a file name, and turns it into what the route code already works with: GeoJSON
data plus the CRS it is in (``geo.validation.parse_route``). GeoJSON passes through untouched, so its legacy
``crs`` member, the ``crs`` parameter and the EPSG:4326 default behave exactly as before; every other format is
read with GDAL (pyogrio) from a private temporary directory, with the CRS the file declares.

Every problem is 415 (content not recognised: the accepted formats named) or 422 (what is wrong: no CRS, no
usable geometry, a layer to choose, with the layers listed) — never the message of a Python decoder.
"""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS
from pyproj.exceptions import CRSError

from breitband import zips
from breitband.errors import ProblemError, UnprocessableEntity
from geo.crs import parse_crs

ACCEPTED = ("GeoJSON", "Shapefile (zip with .shp, .shx, .dbf, .prj)", "GeoPackage", "KML", "KMZ", "GML", "GPX",
            "FlatGeobuf", "DXF", "CSV with a WKT column")
MEDIA_TYPES = {
    "application/geo+json": "GeoJSON", "application/json": "GeoJSON", "application/zip": "Shapefile zip or KMZ",
    "application/geopackage+sqlite3": "GeoPackage", "application/vnd.google-earth.kml+xml": "KML",
    "application/vnd.google-earth.kmz": "KMZ", "application/gml+xml": "GML", "application/gpx+xml": "GPX",
    "application/flatgeobuf": "FlatGeobuf", "image/vnd.dxf": "DXF", "text/csv": "CSV with WKT",
}
# GPX exposes the vertices of routes and tracks as layers of their own: the lines are the route
_VERTEX_LAYERS = {"route_points", "track_points"}
_WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom", "wkt_geom", "shape")
# Zipped route files: breitband.zips' default limits (200 members, 256 MiB unpacked, 100 : 1)
ZIP_LIMITS = zips.ZipLimits()
# The parts of a Shapefile sent as separate files (multipart, ``file`` repeated): required, and optional ones
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf")
SHAPEFILE_EXTRAS = (".prj", ".cpg")
_SHAPE_MAGIC = b"\x00\x00\x27\x0a"        # file code 9994 (big-endian) that opens .shp and .shx


class UnsupportedFormat(ProblemError):
    status, type, title = 415, "unsupported-format", "Unsupported route format"


def _problem(type_: str, detail: str, **extra: Any) -> UnprocessableEntity:
    return UnprocessableEntity(detail, type=type_, **{k: v for k, v in extra.items() if v is not None})


@dataclass
class RouteInput:
    """A route ready for ``geo.validation.parse_route``: GeoJSON (bytes as sent, or a FeatureCollection built
    from the file) and the CRS to read it in (None: the GeoJSON rules decide)."""

    data: dict | bytes
    crs: str | None
    format: str = "GeoJSON"
    layer: str | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def source(self) -> dict[str, Any]:
        """What was read, for the answer (the format, the layer and the CRS taken from the file)."""
        return {k: v for k, v in (("format", self.format), ("layer", self.layer), ("crs", self.crs)) if v}


# --- detection -----------------------------------------------------------------------------------------------------

_XML_ROOT = re.compile(rb"<\s*(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*)")


def _xml_format(head: bytes) -> str | None:
    """KML, GPX or GML by the root element (after the declaration, comments and doctype)."""
    text = re.sub(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", b"", head, flags=re.S).lstrip()
    m = _XML_ROOT.match(text)
    if m is None:
        return None
    root = m.group(2).decode("ascii", "replace").lower()
    if root == "kml":
        return "KML"
    if root == "gpx":
        return "GPX"
    if b"opengis.net/gml" in head or (m.group(1) or b"").lower() == b"gml" or root == "featurecollection":
        return "GML"
    return None


def _csv_format(head: bytes) -> str | None:
    """CSV when the header line names a WKT column (separated by comma, semicolon or tab)."""
    try:
        first = head.decode("utf-8-sig", errors="strict").splitlines()[0]
    except (UnicodeDecodeError, IndexError):
        try:
            first = head.decode("latin-1").splitlines()[0]
        except IndexError:
            return None
    names = [n.strip().strip('"').lower() for n in re.split(r"[,;\t]", first)]
    return "CSV" if any(n in _WKT_COLUMNS for n in names) else None


def detect_format(body: bytes) -> str:
    """The format of a route file from its content → GeoJSON | ZIP | GPKG | FlatGeobuf | KML | GPX | GML | DXF |
    CSV; anything else → 415 naming the accepted formats."""
    head = body[:4096]
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        return "GeoJSON"
    if head.startswith(b"PK\x03\x04"):
        return "ZIP"
    if head.startswith(b"SQLite format 3\x00"):
        return "GPKG"
    if head.startswith(b"fgb\x03"):
        return "FlatGeobuf"
    if stripped[:1] == b"<":
        found = _xml_format(stripped)
        if found:
            return found
    if re.match(rb"0\s*\r?\n\s*SECTION", stripped):
        return "DXF"
    if b"\x00" not in head and _csv_format(stripped):
        return "CSV"
    raise UnsupportedFormat("The route is in no format this service reads. Accepted: " + ", ".join(ACCEPTED)
                            + " (recognised by content, not by name).", accepted=list(ACCEPTED))


# --- reading with GDAL ---------------------------------------------------------------------------------------------

def _zip_entry(body: bytes) -> tuple[str, str]:
    """(format, member) of a zip: the Shapefile in it, or the KML of a KMZ. Checked for bombs and path tricks
    (``breitband.zips``) before GDAL sees it."""
    names = [m.name for m in zips.check_zip(body, ZIP_LIMITS)]
    shps = [n for n in names if n.lower().endswith(".shp") and not PurePosixPath(n).name.startswith("._")]
    if len(shps) == 1:
        stem = shps[0][:-4].lower()
        missing = [ext for ext in SHAPEFILE_PARTS[1:] if stem + ext not in {n.lower() for n in names}]
        if missing:
            raise _problem("shapefile-incomplete", f"The Shapefile {shps[0]!r} in the zip is incomplete: "
                           + ", ".join(missing) + " missing (a Shapefile needs its .shp, .shx and .dbf)",
                           missing=missing, files=names[:20])
        return "Shapefile", shps[0]
    if len(shps) > 1:
        raise _problem("layer-required", f"The zip holds {len(shps)} Shapefiles; send one route per request",
                       layers=shps)
    kmls = [n for n in names if n.lower().endswith(".kml")]
    if kmls:
        return "KMZ", kmls[0]
    raise _problem("no-shapefile-in-zip", "The zip archive holds neither a Shapefile (.shp with its .shx, .dbf "
                   "and .prj) nor a KML (KMZ); it holds: " + ", ".join(names[:20]), files=names[:20])


_SUFFIX = {"GPKG": ".gpkg", "FlatGeobuf": ".fgb", "KML": ".kml", "GPX": ".gpx", "GML": ".gml", "DXF": ".dxf",
           "CSV": ".csv", "ZIP": ".zip"}


def _dataset_path(tmp: Path, fmt: str, body: bytes) -> tuple[str, str]:
    """Write the body where GDAL can read it; → (path for GDAL, format name for people)."""
    path = tmp / f"route{_SUFFIX[fmt]}"
    path.write_bytes(body)
    if fmt != "ZIP":
        return str(path), fmt
    kind, member = _zip_entry(body)
    return f"/vsizip/{path}/{member}", kind


def _layers_with_features(path: str) -> list[str]:
    out = []
    for name, gtype in pyogrio.list_layers(path).tolist():
        if gtype is None or name in _VERTEX_LAYERS:
            continue
        if pyogrio.read_info(path, layer=name, force_feature_count=True).get("features", 0) != 0:
            out.append(name)
    return out


def _choose_layer(path: str, layer: str | None, fmt: str) -> str:
    """The layer named, or the only layer with geometries; several → 422 listing them."""
    layers = _layers_with_features(path)
    if layer:
        all_names = [n for n, _ in pyogrio.list_layers(path).tolist()]
        if layer not in all_names:
            raise _problem("unknown-layer", f"The {fmt} has no layer {layer!r}; its layers with geometries: "
                           + (", ".join(layers) or "none"), field="layer", layers=layers)
        return layer
    if not layers:
        raise _problem("no-geometry", f"The {fmt} holds no features with a geometry")
    if len(layers) > 1:
        raise _problem("layer-required", f"The {fmt} has {len(layers)} layers with geometries: "
                       + ", ".join(layers) + ". Name the route's layer (parameter layer).",
                       field="layer", layers=layers)
    return layers[0]


def _epsg_of(file_crs: str | None) -> str | None:
    if not file_crs:
        return None
    try:
        epsg = CRS.from_user_input(file_crs).to_epsg(min_confidence=70)
    except CRSError:
        epsg = None
    if epsg is None:
        raise _problem("unknown-crs", "The file's CRS has no EPSG code this service can identify; give the CRS "
                       "(parameter crs, e.g. EPSG:25832)", field="crs", file_crs=file_crs[:300])
    return f"EPSG:{epsg}"


def _settle_crs(file_crs: str | None, given: str | None, fmt: str) -> str:
    """The file's own CRS, else the one given; both and different → 422 (which one is right cannot be known)."""
    own = _epsg_of(file_crs)
    if own and given and parse_crs(given) != parse_crs(own):
        raise _problem("crs-conflict", f"The {fmt} declares {own} but the request says {given}; drop the crs "
                       "parameter or correct the file", field="crs", file_crs=own)
    if own:
        return own
    if given:
        return f"EPSG:{parse_crs(given)}"
    what = "has no .prj file, so it does not say" if fmt == "Shapefile" else "does not say"
    raise _problem("crs-required", f"The {fmt} {what} which CRS its coordinates are in; give it "
                   "(parameter crs, e.g. EPSG:25832)", field="crs")


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return None
    return str(value)


def _feature_collection(geoms: np.ndarray, fields: list[str], values: list[Any]) -> dict[str, Any]:
    """GeoJSON features of the usable geometries (GeometryCollections split into their parts; empty and
    missing geometries skipped)."""
    features = []
    for k, geom in enumerate(geoms.tolist()):
        if geom is None or geom.is_empty:
            continue
        props = {name: _plain(col[k]) for name, col in zip(fields, values)}
        parts = geom.geoms if geom.geom_type == "GeometryCollection" else [geom]
        for part in parts:
            if not part.is_empty:
                features.append({"type": "Feature", "geometry": shapely.geometry.mapping(part),
                                 "properties": props})
    return {"type": "FeatureCollection", "features": features}


def _read_ogr(body: bytes, fmt: str, crs: str | None, layer: str | None) -> RouteInput:
    with tempfile.TemporaryDirectory(prefix="breitband-route-") as tmp:
        path, fmt = _dataset_path(Path(tmp), fmt, body)
        options = {"GEOM_POSSIBLE_NAMES": ",".join(_WKT_COLUMNS), "KEEP_GEOM_COLUMNS": "NO"} if fmt == "CSV" else {}
        try:
            name = _choose_layer(path, layer, fmt)
            meta, _, wkb, values = pyogrio.raw.read(path, layer=name, force_2d=True, **options)
        except (DataSourceError, DataLayerError) as exc:
            raise _problem("unreadable-file", f"The {fmt} cannot be read: {_gdal_reason(exc)}") from None
        curved = _has_curves(fmt, path, name, body)
    if wkb is None:
        raise _problem("no-geometry", f"Layer {name!r} of the {fmt} has no geometry column", layer=name)
    geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    data = _feature_collection(geoms, list(meta["fields"]), list(values))
    if not data["features"]:
        raise _problem("no-geometry", f"Layer {name!r} of the {fmt} holds no usable geometry", layer=name)
    warnings = []
    gtype = str(meta.get("geometry_type") or "")
    if " Z" in gtype or " M" in gtype or gtype.startswith("3D"):
        warnings.append({"type": "z-m-dropped", "message": f"The {fmt} has {gtype} geometries; heights (Z) and "
                         "measures (M) were dropped, the route is judged in plan view."})
    if curved:
        warnings.append({"type": "curves-linearised", "message": f"The {fmt} has curves (arcs); they were "
                         "replaced by straight segments a few centimetres from the arc."})
    return RouteInput(data=data, crs=_settle_crs(meta.get("crs"), crs, fmt), format=fmt, layer=name,
                      warnings=warnings)


_CURVE_WORDS = re.compile(rb"CIRCULARSTRING|COMPOUNDCURVE|CURVEPOLYGON|MULTICURVE|MULTISURFACE", re.I)
_GML_ARCS = re.compile(rb"<(?:\w+:)?(?:Arc|ArcString|ArcByCenterPoint|Circle|CircleByCenterPoint|CubicSpline|"
                       rb"ArcByBulge|ArcStringByBulge)\b")
_DXF_CURVES = re.compile(rb"\n\s*0\s*\r?\n(?:ARC|CIRCLE|ELLIPSE|SPLINE)\s*\r?\n|\n\s*42\s*\r?\n\s*-?0*[1-9]")


def _has_curves(fmt: str, path: str, layer: str, body: bytes) -> bool:
    """Whether the file holds curves, which GDAL (as pyogrio reads) hands over linearised without saying so:
    the declared geometry type of a GeoPackage layer, arcs in GML, curve entities or bulges in DXF, curve WKT in
    CSV. (Shapefile, KML, GPX cannot hold curves; FlatGeobuf curves are not looked for.)"""
    if fmt == "GPKG":
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            try:
                row = db.execute("SELECT geometry_type_name FROM gpkg_geometry_columns WHERE table_name = ?",
                                 (layer,)).fetchone()
            except sqlite3.Error:
                return False
        declared = str(row[0]).upper() if row else ""
        return declared in ("CURVE", "SURFACE") or _CURVE_WORDS.fullmatch(declared.encode()) is not None
    if fmt == "GML":
        return _GML_ARCS.search(body) is not None
    if fmt == "DXF":
        return _DXF_CURVES.search(body) is not None
    if fmt == "CSV":
        return _CURVE_WORDS.search(body) is not None
    return False


def _gdal_reason(exc: Exception) -> str:
    """GDAL's message without the temporary path it names."""
    return re.sub(r"(/vsizip/)?/\S*breitband-route-\S*", "the file", str(exc))[:200]


def combine_parts(parts: list[tuple[str | None, bytes]]) -> bytes:
    """The route file of a multipart request from its ``file`` parts: one part is the file itself (its name is
    not looked at); several parts must be the files of one Shapefile (.shp, .shx, .dbf, optional .prj and .cpg,
    in any order), paired by their extensions only and packed into a zip for the reader — the content decides the
    rest (the .shp and .shx are checked to be Shapefile parts). → 422 naming what is missing or left over."""
    if len(parts) == 1:
        return parts[0][1]
    by_ext: dict[str, tuple[str, bytes]] = {}
    names = [name or "(no name)" for name, _ in parts]
    for name, data in parts:
        ext = PurePosixPath((name or "").replace("\\", "/")).suffix.lower()
        if ext not in SHAPEFILE_PARTS + SHAPEFILE_EXTRAS:
            raise _problem("unexpected-file", f"Several files were sent, so they must be the parts of one Shapefile "
                           f"(.shp, .shx, .dbf, .prj, .cpg); {name or 'a part without a file name'!r} is none of "
                           "them. Send any other format as one file.", field="file", files=names)
        if ext in by_ext:
            raise _problem("unexpected-file", f"Two {ext} files were sent ({by_ext[ext][0]!r} and {name!r}); send "
                           "the parts of one Shapefile", field="file", files=names)
        by_ext[ext] = (name or "", data)
    missing = [ext for ext in SHAPEFILE_PARTS if ext not in by_ext]
    if missing:
        raise _problem("shapefile-incomplete", "The Shapefile is incomplete: " + ", ".join(missing) + " missing "
                       "(a Shapefile needs its .shp, .shx and .dbf, and its .prj or the parameter crs); received "
                       + ", ".join(names), field="file", missing=missing, files=names)
    for ext in (".shp", ".shx"):
        if not by_ext[ext][1].startswith(_SHAPE_MAGIC):
            raise _problem("unexpected-file", f"{by_ext[ext][0]!r} is not a Shapefile {ext} (its content does "
                           "not start like one)", field="file", files=names)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for ext, (_, data) in by_ext.items():
            zf.writestr(f"route{ext}", data)
    return out.getvalue()


def read_route_file(body: bytes, crs: str | None = None, layer: str | None = None) -> RouteInput:
    """Any accepted route file → RouteInput. GeoJSON passes through as sent (the ``crs`` parameter, else its
    legacy ``crs`` member, else EPSG:4326, decided by ``parse_route``); the other formats are read with the CRS
    they declare (``crs`` when they declare none; both and different → 422)."""
    if not body or not body.strip():
        raise _problem("empty-body", "The request has no route: send a file in one of the formats "
                       + ", ".join(ACCEPTED))
    fmt = detect_format(body)
    if fmt == "GeoJSON":
        return RouteInput(data=body, crs=crs or None)
    return _read_ogr(body, fmt, crs or None, layer or None)
