"""The query parameters of the OGC API - Features endpoints (``permits/gis/endpoints.py``): their parsing into
values the queries take, their 400 problem (``invalid-parameter``, naming the parameter; OGC API - Features
/req/core/query-param-invalid and /query-param-unknown, Part 3 filters) and their OpenAPI documentation, in one
place (after tipg's ``dependencies.py``). ``endpoints.py`` and the filter module ``cql.py`` raise the same 400
without importing each other.

CRS (OGC API - Features Part 2, "CRS by reference"): a client names a CRS by its URI
(``http://www.opengis.net/def/crs/EPSG/0/25832``, ``…/OGC/1.3/CRS84``); ``EPSG:25832``, ``[EPSG:25832]`` and
``CRS84`` are taken as well. Every CRS has its axis order as EPSG defines it, which the standard requires: CRS84 is
longitude/latitude, EPSG:4326 latitude/longitude (``bbox`` with ``bbox-crs=…/EPSG/0/4326`` is
minLat,minLon,maxLat,maxLon and the coordinates come back latitude first), the projected ones easting/northing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from breitband.errors import ProblemError
from permits import deadlines

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/"
# Always offered, besides the tenant's metric CRS (its storageCrs): WGS 84 both ways, ETRS89 / UTM 32N and 33N
# (German authorities' CRS), Web Mercator (web maps).
OFFERED_EPSG = (4326, 25832, 25833, 3857)


class BadParameter(ProblemError):
    """400 ``invalid-parameter``; raise it with ``parameter=`` (the query parameter's name) and, where it helps, the
    ``property`` of a filter or sort key and the ``position`` (1-based character) of a syntax error."""

    status, type, title = 400, "invalid-parameter", "Invalid query parameter"


@dataclass(frozen=True)
class Crs:
    """A CRS offered by the service: its URI, the EPSG code PostGIS transforms into, whether the axes are swapped
    against PostGIS' x/y (EPSG:4326: latitude first) and how many decimals a coordinate gets (7 for degrees, about
    1 cm; 3 for metres)."""

    uri: str
    srid: int
    lat_first: bool
    digits: int

    @property
    def geographic(self) -> bool:
        return self.srid == 4326


def offered_crs(storage_srid: int) -> list[Crs]:
    """CRS84 first (the default), then the EPSG CRS: 4326, 25832, 25833, 3857 and the tenant's metric CRS."""
    srids = list(OFFERED_EPSG) + ([storage_srid] if storage_srid not in OFFERED_EPSG else [])
    return [Crs(CRS84, 4326, False, 7)] + [Crs(EPSG_URI + str(s), s, s == 4326, 7 if s == 4326 else 3)
                                           for s in srids]


def parse_crs(raw: str | None, name: str, storage_srid: int) -> Crs:
    """A CRS the service offers, by URI (or EPSG:n, [EPSG:n], CRS84); CRS84 when not given."""
    offered = offered_crs(storage_srid)
    if raw is None:
        return offered[0]
    text = raw.strip().strip("[]").strip()
    upper = text.upper()
    if upper in ("CRS84", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "URN:OGC:DEF:CRS:OGC::CRS84") \
            or text in (CRS84, CRS84.replace("http://", "https://")):
        return offered[0]
    code = None
    for prefix in (EPSG_URI, EPSG_URI.replace("http://", "https://"), "EPSG:", "urn:ogc:def:crs:EPSG::",
                   "urn:ogc:def:crs:EPSG:0:"):
        if text.upper().startswith(prefix.upper()):
            code = text[len(prefix):]
            break
    for crs in offered[1:]:
        if code is not None and code == str(crs.srid):
            return crs
    raise BadParameter(f"{name}={raw[:120]!r} is not offered; supported: {', '.join(c.uri for c in offered)}",
                       parameter=name, supported=[c.uri for c in offered])


def parse_bbox(raw: str | None, crs: Crs | None = None) -> tuple[float, float, float, float] | None:
    """``bbox`` → (minx, miny, maxx, maxy) in PostGIS' x/y order of ``crs`` (CRS84 when None): four numbers (or the
    6 of a 3D box, whose heights are ignored) in the axis order of the CRS (EPSG:4326: minLat,minLon,maxLat,maxLon)."""
    if raw is None:
        return None
    crs = crs or Crs(CRS84, 4326, False, 7)
    order = "minLat,minLon,maxLat,maxLon" if crs.lat_first else \
        "minLon,minLat,maxLon,maxLat" if crs.geographic else "minEasting,minNorthing,maxEasting,maxNorthing"
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError:
        raise BadParameter(f"bbox={raw!r}: four comma-separated numbers expected ({order})",
                           parameter="bbox") from None
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or not all(map(_finite, values)):
        raise BadParameter(f"bbox={raw!r}: four numbers expected ({order})", parameter="bbox")
    if crs.lat_first:
        values = [values[1], values[0], values[3], values[2]]
    x0, y0, x1, y1 = values
    if crs.geographic and not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise BadParameter(f"bbox={raw!r}: longitudes within ±180, latitudes within ±90 ({order})",
                           parameter="bbox")
    if y0 > y1 or x0 > x1:
        raise BadParameter(f"bbox={raw!r}: the minimum comes first, {order} (a box across the antimeridian is not "
                           "supported)", parameter="bbox")
    return x0, y0, x1, y1


def _finite(v: float) -> bool:
    return v == v and abs(v) != float("inf")


def parse_datetime(raw: str | None) -> tuple[date | None, date | None] | None:
    """An instant or an interval (``a/b``, ``../b``, ``a/..``) of RFC 3339 dates or date-times → (first, last) day,
    dates in Europe/Berlin."""
    if raw is None:
        return None
    parts = raw.split("/")
    if len(parts) > 2 or not all(parts):
        raise BadParameter(f"datetime={raw!r}: an RFC 3339 date or date-time, or an interval a/b with '..' for an "
                           "open end", parameter="datetime")
    days = [None if p == ".." else _day(p, raw) for p in parts]
    if len(days) == 1:
        if days[0] is None:
            raise BadParameter(f"datetime={raw!r}: '..' only as one end of an interval", parameter="datetime")
        return days[0], days[0]
    if len(days) == 2 and days == [None, None]:
        return None                                   # open at both ends: no filter
    if days[0] and days[1] and days[0] > days[1]:
        raise BadParameter(f"datetime={raw!r}: the interval ends before it starts", parameter="datetime")
    return days[0], days[1]


def _day(value: str, raw: str) -> date:
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise BadParameter(f"datetime={raw!r}: {value!r} is not an RFC 3339 date or date-time",
                           parameter="datetime") from None
    if moment.tzinfo is None:
        raise BadParameter(f"datetime={raw!r}: {value!r} needs a time zone (Z or +01:00)", parameter="datetime")
    return deadlines.local_date(moment)


def parse_int(raw: str | None, name: str, default: int, low: int, high: int = 1_000_000) -> int:
    if raw is None:
        return default
    try:
        value = int(raw) if len(raw) <= 12 else None
    except ValueError:
        value = None
    if value is None:
        raise BadParameter(f"{name}={raw[:20]!r}: a whole number from {low} to {high} expected",
                           parameter=name) from None
    if not low <= value <= high:
        raise BadParameter(f"{name}={raw!r}: from {low} to {high}", parameter=name)
    return value


# --- OpenAPI -------------------------------------------------------------------------------------------------

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
CRS_DOC = ("CRS84 (longitude, latitude; the default), EPSG:4326 (latitude, longitude), EPSG:25832, EPSG:25833, "
           "EPSG:3857 and the tenant's metric CRS (storageCrs), as URIs http://www.opengis.net/def/crs/EPSG/0/{code} "
           "or http://www.opengis.net/def/crs/OGC/1.3/CRS84")


def query(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description, **extra}


F = query("f", {"type": "string", "enum": ["json", "geojson"]}, "Output format; JSON only")
BBOX = query("bbox", {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
             "minx,miny,maxx,maxy in the axis order of bbox-crs (CRS84: minLon,minLat,maxLon,maxLat; 6 numbers of a "
             "3D box allowed, heights ignored)", style="form", explode=False)
BBOX_CRS = query("bbox-crs", {"type": "string", "format": "uri"}, f"The CRS of bbox: {CRS_DOC}")
CRS_PARAM = query("crs", {"type": "string", "format": "uri"}, f"The CRS of the geometries returned: {CRS_DOC}")
DATETIME = query("datetime", {"type": "string"}, "RFC 3339 date or date-time, or an interval a/b with '..' for an "
                 "open end; matched against the planned works period (days in Europe/Berlin)")
LIMIT = query("limit", {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": DEFAULT_LIMIT},
              f"Features per page; above {MAX_LIMIT:,} served as {MAX_LIMIT:,}")
OFFSET = query("offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0},
               "Features to skip (the next and prev links carry it)")
FILTER = query("filter", {"type": "string"}, "A CQL2 filter over the queryables (GET …/queryables), e.g. "
               "case_status IN ('received','incomplete','in_review') AND decision_due < DATE('2027-03-01')")
FILTER_LANG = query("filter-lang", {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"},
                    "The language of filter")
FILTER_CRS = query("filter-crs", {"type": "string", "format": "uri"},
                   f"The CRS of the geometries in filter (default CRS84): {CRS_DOC}")
SORTBY = query("sortby", {"type": "array", "items": {"type": "string", "pattern": r"^[+-]?[A-Za-z_][A-Za-z0-9_]*$"}},
               "Sort keys, comma-separated sortables (GET …/sortables), each ascending or with - descending, e.g. "
               "-days_left,reference", style="form", explode=False)
