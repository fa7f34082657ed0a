"""GIS files out: GeoPackage, Shapefile (zip), CSV and GeoJSON written with GDAL (pyogrio), in a chosen CRS.

What the caller hands in are records: a geometry in EPSG:4326 (a collection of lines, points and areas, or None)
and attributes by column (``Column``: name, Shapefile name, kind); this module knows nothing of permits. It picks
the format (``format=`` or the ``Accept`` header), checks the CRS, splits each geometry into its lines, points and
areas (``layers_of``: a layer per geometry kind, named by the caller), writes the file into a private temporary
directory and returns its path; the caller streams it and removes the directory afterwards (``ExportFile.cleanup``).

Per format:

* **GeoPackage** — one file, one table per layer (each with one geometry type).
* **Shapefile** — a zip with one Shapefile per layer at its top level (``<layer>.shp/.shx/.dbf/.prj/.cpg``;
  ``.cpg`` says UTF-8), which GDAL opens as one source (``/vsizip/file.zip``) and QGIS by dropping the zip.
  Field names are the ``short`` names (at most the ten characters dBase allows) each column declares; the zip
  carries the mapping as ``fields.txt``. Texts over 254 characters are cut by the format.
* **CSV** — one row per record (UTF-8 with byte order mark, so that spreadsheet programs read umlauts), its whole
  geometry as WKT in the column ``WKT``; dates ``YYYY-MM-DD``, yes/no as ``true``/``false``.
* **GeoJSON** — one FeatureCollection, every layer's features after each other with the layer in the property
  ``layer``. In CRS84 by default (RFC 7946, longitude first); any other CRS is named in the legacy ``crs`` member.

Geometries are transformed with pyproj (``always_xy``): x is longitude or easting in every format.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyogrio.raw import write as ogr_write

from breitband.errors import ProblemError
from geo.crs import crs_of, transform_geometry


class UnknownExportFormat(ProblemError):
    status, type, title = 400, "unknown-export-format", "Unknown export format"


class NotAcceptable(ProblemError):
    status, type, title = 406, "not-acceptable", "None of the accepted media types can be served"


class UnsupportedExportCrs(ProblemError):
    status, type, title = 400, "unsupported-export-crs", "Unsupported CRS for exports"


@dataclass(frozen=True)
class Format:
    key: str
    media_type: str
    extension: str
    driver: str
    title: str


FORMATS: dict[str, Format] = {f.key: f for f in (
    Format("gpkg", "application/geopackage+sqlite3", "gpkg", "GPKG", "GeoPackage"),
    Format("shp", "application/zip", "zip", "ESRI Shapefile", "Shapefile (zip)"),
    Format("csv", "text/csv", "csv", "CSV", "CSV"),
    Format("geojson", "application/geo+json", "geojson", "GeoJSON", "GeoJSON"),
)}
# other names people type for the same formats
ALIASES = {"geopackage": "gpkg", "shape": "shp", "shapefile": "shp", "zip": "shp", "json": "geojson"}
# media types of the Accept header → format (Shapefile also under the names GIS tools use for a zipped one)
ACCEPT = {"application/geopackage+sqlite3": "gpkg", "application/x-sqlite3": "gpkg", "application/zip": "shp",
          "application/x-shapefile": "shp", "application/x-zipped-shp": "shp", "text/csv": "csv",
          "application/geo+json": "geojson"}
DEFAULT_FORMAT = "gpkg"

# The CRSs an export can be written in (EPSG code → what the CRS is); "CRS84" is EPSG:4326 with longitude first,
# which is how every one of these formats stores EPSG:4326 anyway.
CRSS = {4326: "WGS 84 (longitude, latitude; CRS84)", 4258: "ETRS89 (longitude, latitude)",
        25832: "ETRS89 / UTM zone 32N", 25833: "ETRS89 / UTM zone 33N", 3857: "WGS 84 / Pseudo-Mercator"}
_CRS_NAMES = {"CRS84": 4326, "OGC:CRS84": 4326, "URN:OGC:DEF:CRS:OGC:1.3:CRS84": 4326,
              "HTTP://WWW.OPENGIS.NET/DEF/CRS/OGC/1.3/CRS84": 4326}


@dataclass(frozen=True)
class Column:
    """One attribute: its name in GeoPackage, CSV and GeoJSON, its Shapefile name (≤ 10 characters), its kind
    (``str``, ``int``, ``float``, ``bool``, ``date``) and what it holds (for the documentation)."""

    name: str
    short: str
    kind: str
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.short) > 10 or self.kind not in ("str", "int", "float", "bool", "date"):
            raise ValueError(f"column {self.name}: a Shapefile name of at most 10 characters and a known kind")


@dataclass
class Layer:
    """Features of one geometry type (``MultiLineString``, ``MultiPoint``, ``MultiPolygon`` or ``Unknown``):
    geometries in EPSG:4326 (None for a feature without one) and one dict of values per feature (None is null)."""

    name: str
    geometry_type: str
    geometries: list[Any] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class LayerNames:
    """What the layers of lines, points and areas are called in a file (e.g. trenches, points, areas)."""

    lines: str
    points: str
    areas: str


@dataclass
class ExportFile:
    path: Path
    media_type: str
    filename: str

    def cleanup(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


# --- choosing the format and the CRS ------------------------------------------------------------------------------

def _accepted(header: str) -> list[tuple[str, float]]:
    """The media ranges of an Accept header with their q-values, best first (RFC 9110 § 12.5.1)."""
    ranges = []
    for i, part in enumerate(header.split(",")):
        bits = [b.strip() for b in part.split(";")]
        if not bits[0]:
            continue
        q = 1.0
        for b in bits[1:]:
            if b.lower().startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        ranges.append((bits[0].lower(), q, i))
    return [(m, q) for m, q, _ in sorted(ranges, key=lambda r: (-r[1], r[2])) if q > 0]


def accepts_json(accept: str | None) -> bool:
    """Whether an Accept header lets a JSON answer through (no header, ``*/*``, ``application/*``, a JSON type)."""
    if not accept or not accept.strip():
        return True
    return any(m in ("*/*", "application/*", "application/json", "application/problem+json")
               or m.endswith("+json") and m != "application/geo+json" for m, _ in _accepted(accept))


def choose_format(format_param: str | None, accept: str | None) -> Format:
    """``format=`` wins; otherwise the Accept header's best supported media type; without either (or with
    ``*/*``) GeoPackage. An unknown ``format`` is 400, an Accept that names nothing we write 406."""
    names = ", ".join(FORMATS)
    if format_param is not None:
        key = ALIASES.get(format_param.strip().lower(), format_param.strip().lower())
        if key not in FORMATS:
            raise UnknownExportFormat(f"format={format_param!r} is not offered; one of {names}",
                                      parameter="format", supported=list(FORMATS))
        return FORMATS[key]
    if not accept or not accept.strip():
        return FORMATS[DEFAULT_FORMAT]
    for media, _ in _accepted(accept):
        if media in ACCEPT:
            return FORMATS[ACCEPT[media]]
        if media in ("*/*", "application/*"):
            return FORMATS[DEFAULT_FORMAT]
        if media == "text/*":
            return FORMATS["csv"]
    raise NotAcceptable(f"Accept: {accept[:200]!r} names no format offered here; accepted are "
                        + ", ".join(f"{m} ({FORMATS[k].title})" for m, k in ACCEPT.items())
                        + f", or format= one of {names}",
                        supported=sorted(ACCEPT))


def choose_crs(value: str | None, default: int) -> int:
    """``EPSG:25832``, ``25832``, ``CRS84`` or the OGC URN/URL forms → the EPSG code, among ``CRSS`` (400 else)."""
    if value is None or not value.strip():
        return default
    text = value.strip().upper()
    epsg = _CRS_NAMES.get(text)
    if epsg is None:
        for prefix in ("EPSG:", "URN:OGC:DEF:CRS:EPSG::", "HTTP://WWW.OPENGIS.NET/DEF/CRS/EPSG/0/"):
            if text.startswith(prefix):
                text = text[len(prefix):]
        epsg = int(text) if text.isdigit() and len(text) <= 6 else None
    if epsg not in CRSS:
        raise UnsupportedExportCrs(
            f"crs={value[:60]!r} is not offered for exports; one of CRS84, "
            + ", ".join(f"EPSG:{c}" for c in CRSS), parameter="crs", supported=[f"EPSG:{c}" for c in CRSS])
    return epsg


# --- writing ------------------------------------------------------------------------------------------------------

def split(geom: Any) -> dict[str, Any]:
    """A geometry or collection (EPSG:4326) → its lines, points and areas, each as one multi-geometry ("lines",
    "points", "areas"; kinds it does not have are left out)."""
    if geom is None or geom.is_empty:
        return {}
    parts = shapely.get_parts(geom)
    while any(p.geom_type.startswith("Multi") or p.geom_type == "GeometryCollection" for p in parts):
        parts = shapely.get_parts(parts)
    kinds: dict[str, list[Any]] = {"lines": [], "points": [], "areas": []}
    for p in parts:
        if not p.is_empty:
            kinds[{"LineString": "lines", "LinearRing": "lines", "Point": "points"}.get(p.geom_type, "areas")
                  ].append(p)
    out: dict[str, Any] = {}
    if kinds["lines"]:
        out["lines"] = shapely.MultiLineString([shapely.LineString(p.coords) for p in kinds["lines"]])
    if kinds["points"]:
        out["points"] = shapely.MultiPoint(kinds["points"])
    if kinds["areas"]:
        out["areas"] = shapely.MultiPolygon(kinds["areas"])
    return out


def layers_of(records: Sequence[tuple[Any, dict[str, Any]]], names: LayerNames) -> list[Layer]:
    """Records (geometry in EPSG:4326 or None, attributes) → a layer per geometry kind. Every record is in the
    layer of lines (without a geometry if it has no lines), so that layer counts the whole export; the layers of
    points and areas hold the records that have such parts."""
    lines = Layer(names.lines, "MultiLineString")
    others = {"points": Layer(names.points, "MultiPoint"), "areas": Layer(names.areas, "MultiPolygon")}
    for geom, attrs in records:
        parts = split(geom)
        lines.geometries.append(parts.get("lines"))
        lines.rows.append(attrs)
        for kind, layer in others.items():
            if kind in parts:
                layer.geometries.append(parts[kind])
                layer.rows.append(attrs)
    return [lines, *others.values()]


def _column_data(column: Column, values: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """→ (values as a typed array, mask of nulls or None)."""
    nulls = np.array([v is None for v in values], dtype=bool)
    if column.kind == "str":
        return np.array([None if v is None else str(v) for v in values], dtype=object), None
    if column.kind == "date":
        return np.array([v.isoformat() if isinstance(v, date) else "NaT" for v in values], dtype="datetime64[D]"), None
    if column.kind == "float":
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64), None
    if column.kind == "int":
        return np.array([0 if v is None else int(v) for v in values], dtype=np.int64), nulls if nulls.any() else None
    return np.array([bool(v) for v in values], dtype=bool), nulls if nulls.any() else None


def _wkb(geometries: Sequence[Any], epsg: int) -> np.ndarray:
    geoms = np.empty(len(geometries), dtype=object)
    geoms[:] = list(geometries)
    present = np.array([g is not None for g in geoms], dtype=bool)
    out = np.full(len(geoms), None, dtype=object)
    if present.any():
        out[present] = shapely.to_wkb(transform_geometry(geoms[present], 4326, epsg))
    return out


def _write_layer(path: Path, layer: Layer, columns: Sequence[Column], epsg: int, driver: str, *,
                 names: str = "name", layer_options: dict[str, str] | None = None, append: bool = False) -> None:
    data, masks = [], []
    for c in columns:
        values, mask = _column_data(c, [row.get(c.name) for row in layer.rows])
        data.append(values)
        masks.append(mask)
    ogr_write(str(path), _wkb(layer.geometries, epsg), data, [getattr(c, names) for c in columns],
              field_mask=masks, layer=layer.name, driver=driver, geometry_type=layer.geometry_type,
              crs=crs_of(epsg).to_wkt(), promote_to_multi=layer.geometry_type.startswith("Multi"),
              layer_options=layer_options or None, append=append)


def _csv_text(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.kind == "date":
        return value.isoformat()
    if column.kind == "bool":
        return "true" if value else "false"
    return value


def write(records: Sequence[tuple[Any, dict[str, Any]]], columns: Sequence[Column], names: LayerNames,
          fmt: Format, epsg: int, name: str) -> ExportFile:
    """Write the records (geometry in EPSG:4326 or None, attributes by column name) as ``fmt`` in EPSG:``epsg``
    into a new private temporary directory; → the file (``ExportFile.cleanup`` removes the directory).

    GeoPackage and Shapefile get a layer per geometry kind (``layers_of``; the layers of points and areas only when
    some record has such parts), GeoJSON the same features in one collection with their layer in ``layer``, CSV one
    row per record with its whole geometry as WKT."""
    tmp = Path(tempfile.mkdtemp(prefix="breitband-export-"))
    try:
        out = tmp / f"{name}.{fmt.extension}"
        layers = layers_of(records, names)
        kept = [layers[0], *(layer for layer in layers[1:] if layer.rows)]
        if fmt.key == "gpkg":
            for i, layer in enumerate(kept):
                _write_layer(out, layer, columns, epsg, fmt.driver, append=i > 0)
        elif fmt.key == "shp":
            parts = tmp / name
            parts.mkdir()
            for layer in kept:
                _write_layer(parts / f"{layer.name}.shp", layer, columns, epsg, fmt.driver, names="short",
                             layer_options={"ENCODING": "UTF-8"})
            (parts / "fields.txt").write_text(field_mapping(columns), encoding="utf-8")
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
                for member in sorted(parts.iterdir()):
                    zf.write(member, member.name)
        elif fmt.key == "csv":
            # dates and yes/no as text: GDAL would write dates as YYYY/MM/DD and booleans as 1/0
            text = [Column(c.name, c.short, "str" if c.kind in ("date", "bool") else c.kind) for c in columns]
            table = Layer(name, "Unknown", [g for g, _ in records],
                          [{c.name: _csv_text(c, attrs.get(c.name)) for c in columns} for _, attrs in records])
            _write_layer(out, table, text, epsg, fmt.driver,
                         layer_options={"GEOMETRY": "AS_WKT", "WRITE_BOM": "YES", "CREATE_CSVT": "NO"})
        else:
            merged = Layer(name, "Unknown", [g for layer in kept for g in layer.geometries],
                           [{**row, "layer": layer.name} for layer in kept for row in layer.rows])
            _write_layer(out, merged, [Column("layer", "layer", "str"), *columns], epsg, fmt.driver,
                         layer_options={"RFC7946": "YES"} if epsg == 4326 else None)
        return ExportFile(out, fmt.media_type, out.name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def field_mapping(columns: Sequence[Column]) -> str:
    """The Shapefile field names and what they stand for, one line each (``fields.txt`` in the zip)."""
    lines = ["Shapefile field\tname in GeoPackage/CSV/GeoJSON\tcontent"]
    lines += [f"{c.short}\t{c.name}\t{c.description}" for c in columns]
    return "\n".join(lines) + "\n"
