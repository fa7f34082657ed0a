"""Vector tiles (Mapbox Vector Tile 2.1) straight from PostGIS, their TileJSON, and the MapLibre style we serve.

One SQL statement per tile, built with SQLAlchemy Core and GeoAlchemy2 (after geopython/pygeoapi's
``mvt_postgresql`` provider):

1. the tile's envelope ``ST_TileEnvelope(z, x, y)`` (EPSG:3857) is transformed into the tenant's metric CRS for
   the index lookup (``geom && ST_Transform(envelope, tenants.srid)``, the GiST index on ``geom``) and the rows are
   filtered to the tenant and to the classes shown at that zoom (``Band``);
2. at most ``feature_limit`` rows are kept: one more row is read to tell whether the tile must be cut; only then
   a second statement keeps the most important ones (``rank``: Autobahn before Gemeindestraße, Land before
   Gemeinde), so that the common case needs no sort;
3. polygons are clipped to the tile plus its buffer in the metric CRS; the geometries are simplified there with a
   tolerance of ``SIMPLIFY_UNITS`` tile units (from the zoom and the latitude); then they are transformed to
   EPSG:3857, quantised by ``ST_AsMVTGeom`` (extent 4096, buffer 64) and aggregated by ``ST_AsMVT`` (the style
   orders the drawing with ``line-sort-key``, not the tile).

The same statement also returns the tenant's SRID (NULL: no such tenant) and the ``imported_at`` of the layer's
last import, from which the ETag is derived, so a tile costs one round trip.

Layers are kept in a registry (``register_layer``, ``LAYERS``, in the order of registration). geo registers its
public layers itself: a ``TableLayer`` is a table with ``tenant_key`` and ``geom`` in the tenant's CRS, the
properties to publish, and its zoom bands. A layer whose tiles depend on the caller (``CallerLayer``) belongs to the
package that knows what a caller may see: ``applications`` is permits' (``permits/gis/tiles.py``, registered by the
app factory), built with the helpers here (``envelope_3857``, ``mvt_and_count``, ``etag_of``), so geo knows nothing
of permits.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from geoalchemy2 import functions as gf
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    not_,
    select,
    text,
    true,
)
from sqlalchemy.orm import Session

from breitband.errors import NotFound, UnprocessableEntity
from breitband.identity import Principal
from breitband.models import Tenant
from geo.models import ROAD_CLASSES, AdminArea, BasemapArea, BasemapLine, BasemapPoint, LayerImport, RoadSegment

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
EXTENT = 4096                # tile coordinate units per tile side
BUFFER = 64                  # units around the tile kept by ST_AsMVTGeom (lines and outlines do not end at seams)
SIMPLIFY_UNITS = 1.0         # simplification tolerance in tile units (1/4096 of the tile; ~1/8 of a screen pixel)
MAX_ZOOM = 22
WEB_MERCATOR_SIDE = 2 * 20037508.342789244
# Bumped whenever the content of a tile changes for the same data (bands, properties, simplification), so that
# ETags of older tiles stop matching.
TILES_VERSION = "2"
ATTRIBUTION = "© OpenStreetMap contributors (ODbL) · © GeoBasis-DE / BKG (dl-de/by-2-0)"
CLASSIFIED = ("autobahn", "bund", "land", "kreis")


class TileSettings(BaseSettings):
    """Tile settings (env prefix ``BREITBAND_TILE_``)."""

    model_config = SettingsConfigDict(env_prefix="BREITBAND_TILE_", env_file=None, extra="ignore")

    # Most features per layer and tile; more are dropped, least important first, and the response says so
    # (X-Tile-Truncated: true).
    feature_limit: int = 20_000
    # Cache-Control max-age of the public layers (roads, boundaries); the ETag makes revalidation cheap.
    public_max_age_s: int = 3600
    # Cache-Control max-age of TileJSON and the style.
    metadata_max_age_s: int = 300


_settings: TileSettings | None = None


def tile_settings() -> TileSettings:
    global _settings
    if _settings is None:
        _settings = TileSettings()
    return _settings


# --- tile coordinates ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TileKey:
    z: int
    x: int
    y: int

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"

    @property
    def width_3857(self) -> float:
        return WEB_MERCATOR_SIDE / (1 << self.z)

    @property
    def center_lat(self) -> float:
        n = (1 << self.z)
        merc_y = math.pi * (1 - 2 * (self.y + 0.5) / n)
        return math.degrees(math.atan(math.sinh(merc_y)))

    def native_units_per_tile_unit(self) -> float:
        """Metres (in a conformal metric CRS, scale ~1) per MVT unit at the tile's centre: Web Mercator stretches
        by 1/cos(latitude)."""
        return self.width_3857 / EXTENT * math.cos(math.radians(self.center_lat))


def validate_tile(z: int, x: int, y: int) -> TileKey:
    if not 0 <= z <= MAX_ZOOM:
        raise UnprocessableEntity(f"Zoom {z} is out of range: 0 ≤ z ≤ {MAX_ZOOM}", type="invalid-tile",
                                  z=z, x=x, y=y)
    n = 1 << z
    for name, v in (("x", x), ("y", y)):
        if not 0 <= v < n:
            raise UnprocessableEntity(f"Tile {name}={v} is out of range at zoom {z}: 0 ≤ {name} < {n}",
                                      type="invalid-tile", z=z, x=x, y=y)
    return TileKey(z, x, y)


# --- layers ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Band:
    """What a layer shows from ``minzoom`` on (until the next band)."""

    minzoom: int
    where: Callable[[Table], ColumnElement[bool]]
    label: str


@dataclass(frozen=True)
class Prop:
    name: str
    expr: Callable[[Table], ColumnElement[Any]]
    tilejson_type: str       # String | Number | Boolean (TileJSON vector_layers.fields)
    description: str


@dataclass(frozen=True)
class TableLayer:
    """A public layer: one tenant-scoped table with ``tenant_key`` and ``geom`` in the tenant's metric CRS."""

    name: str
    description: str
    table: Table
    geometry: str                                    # line | polygon | point
    props: tuple[Prop, ...]
    bands: tuple[Band, ...]
    rank: Callable[[Table], ColumnElement[int]]      # lower = kept first when the feature limit cuts
    stamp_layer: str                                 # LayerImport.layer whose imported_at versions the data
    minzoom: int = 0
    maxzoom: int = 16                                # TileJSON maxzoom: clients over-zoom beyond it
    public: bool = True
    # polygons: ST_SimplifyPreserveTopology (GEOS; outlines such as the boundaries stay closed and simple) or
    # "fast": ST_Simplify keeping collapsed rings (PostGIS' own, ~20× cheaper on thousands of small buildings;
    # ST_AsMVTGeom repairs what it may make invalid)
    polygon_simplify: str = "preserve_topology"

    def band(self, z: int) -> int:
        chosen = 0
        for i, b in enumerate(self.bands):
            if z >= b.minzoom:
                chosen = i
        return chosen


class CallerLayer(Protocol):
    """A layer whose tiles depend on the caller: served only with a Bearer token, always of the caller's own tenant,
    cached privately. The package that knows what a caller may see builds the tiles (with ``envelope_3857``,
    ``mvt_and_count``, ``etag_of``) and registers the layer (permits' ``applications``: permits/gis/tiles.py)."""

    name: str
    description: str
    minzoom: int
    maxzoom: int                                     # TileJSON maxzoom: clients over-zoom beyond it
    public: bool                                     # False
    props: tuple[tuple[str, str, str], ...]          # (name, TileJSON type, description)
    zoom_notes: str                                  # what the layer shows at which zoom (TileJSON)

    def tile(self, session: Session, principal: Principal, tile: TileKey) -> Tile:
        """The tile as ``principal`` may see it; its ETag depends on the caller."""
        ...

    def style_layers(self) -> list[dict[str, Any]]:
        """The MapLibre style layers that draw it (source and source-layer: the layer's name)."""
        ...


def _rank_of(column, order: Sequence[str]) -> ColumnElement[int]:
    return case({v: i for i, v in enumerate(order)}, value=column, else_=len(order))


def _roads_rank(t: Table) -> ColumnElement[int]:
    return _rank_of(t.c.road_class, ROAD_CLASSES) * 2 + cast(t.c.is_path, Integer)


ROADS = TableLayer(
    name="roads",
    description="Road network (OSM) with the class that decides the responsible road authority",
    table=RoadSegment.__table__,
    geometry="line",
    props=(
        Prop("road_class", lambda t: t.c.road_class, "String",
             "autobahn | bund | land | kreis | gemeinde: the kind of authority responsible (outside "
             "Ortsdurchfahrten)"),
        Prop("ref", lambda t: t.c.ref, "String", "road number, e.g. A 5, B 44, L 3117, K 168"),
        Prop("name", lambda t: t.c.name, "String", "street name"),
        Prop("highway", lambda t: t.c.highway, "String", "OSM highway tag"),
        Prop("is_private", lambda t: t.c.is_private, "Boolean", "access=private/no: no public road"),
    ),
    bands=(
        Band(0, lambda t: t.c.road_class.in_(("autobahn", "bund")), "Autobahnen and Bundesstraßen"),
        Band(8, lambda t: t.c.road_class.in_(CLASSIFIED), "classified roads (autobahn, bund, land, kreis)"),
        Band(12, lambda t: not_(t.c.is_path), "all roads except separately mapped footways and cycleways"),
        Band(14, lambda t: true(), "everything"),
    ),
    rank=_roads_rank,
    stamp_layer="roads",
    minzoom=5,
)

BOUNDARIES = TableLayer(
    name="boundaries",
    description="Administrative boundaries (BKG VG250): Land, Kreise, Gemeinden",
    table=AdminArea.__table__,
    geometry="polygon",
    props=(
        Prop("level", lambda t: t.c.level, "String", "land | kreis | gemeinde"),
        Prop("ags", lambda t: t.c.ags, "String", "Amtlicher Gemeindeschlüssel (2, 5 or 8 digits)"),
        Prop("name", lambda t: t.c.name, "String", "name"),
        Prop("bez", lambda t: t.c.bez, "String", "Stadt, Gemeinde, Landkreis, Kreisfreie Stadt, ..."),
        Prop("population", lambda t: t.c.population, "Number", "population (destatis)"),
    ),
    bands=(
        Band(0, lambda t: t.c.level == "land", "Land"),
        Band(6, lambda t: t.c.level.in_(("land", "kreis")), "Land and Kreise"),
        Band(8, lambda t: true(), "Land, Kreise and Gemeinden"),
    ),
    rank=lambda t: _rank_of(t.c.level, ("land", "kreis", "gemeinde")),
    stamp_layer="boundaries",
)


# The base map (issue 16; geo/importers/basemap.py). Each zoom band keeps what can be seen at that zoom: areas by
# their size (a 1 km² wood is 5 pixels wide at z8), lines by their kind, places by their rank; buildings from z14,
# house numbers in the z16 tiles (drawn from z17 by over-zooming them).

def _area_band(min_m2: float) -> Callable[[Table], ColumnElement[bool]]:
    return lambda t: (t.c.kind != "building") & (t.c.area_m2 >= min_m2)


BASEMAP_AREAS = TableLayer(
    name="basemap_areas",
    description="Base map areas (OSM): land use and land cover, water, buildings",
    table=BasemapArea.__table__,
    geometry="polygon",
    props=(
        Prop("kind", lambda t: t.c.kind, "String", "landuse | water | building"),
        Prop("class", lambda t: t.c["class"], "String", "OSM value: forest, residential, farmland, industrial, "
                                                        "park, ...; for water its type; for buildings the building "
                                                        "value"),
        Prop("name", lambda t: t.c.name, "String", "name (lakes, parks, ...)"),
    ),
    bands=(
        Band(0, _area_band(1e6), "areas of at least 1 km² (no buildings)"),
        Band(9, _area_band(1e5), "areas of at least 10 ha (no buildings)"),
        Band(11, _area_band(1e4), "areas of at least 1 ha (no buildings)"),
        Band(13, lambda t: t.c.kind != "building", "all areas except buildings"),
        Band(14, lambda t: true(), "everything, buildings too"),
    ),
    rank=lambda t: _rank_of(t.c.kind, ("water", "landuse", "building")),
    stamp_layer="basemap",
    minzoom=6,
    polygon_simplify="fast",
)

_MAJOR_RAIL = ("rail", "light_rail", "subway", "narrow_gauge")

BASEMAP_LINES = TableLayer(
    name="basemap_lines",
    description="Base map lines (OSM): rivers and streams, railways, and the road labels (named or numbered roads "
                "merged into long lines)",
    table=BasemapLine.__table__,
    geometry="line",
    props=(
        Prop("kind", lambda t: t.c.kind, "String", "water | railway | road_label"),
        Prop("class", lambda t: t.c["class"], "String", "river, stream, canal, ...; rail, tram, ...; for road "
                                                        "labels the road class"),
        Prop("name", lambda t: t.c.name, "String", "name (street name for road labels)"),
        Prop("ref", lambda t: t.c.ref, "String", "road number (road labels), e.g. L 3262"),
    ),
    bands=(
        Band(0, lambda t: ((t.c.kind == "water") & t.c["class"].in_(("river", "canal")))
             | ((t.c.kind == "railway") & (t.c["class"] == "rail"))
             | ((t.c.kind == "road_label") & t.c["class"].in_(("autobahn", "bund"))),
             "rivers, canals, main railways, labels of Autobahnen and Bundesstraßen"),
        Band(10, lambda t: ((t.c.kind == "water") & t.c["class"].in_(("river", "canal", "stream")))
             | ((t.c.kind == "railway") & t.c["class"].in_(_MAJOR_RAIL))
             | ((t.c.kind == "road_label") & t.c["class"].in_(CLASSIFIED)),
             "and streams, other railways, labels of Landes- and Kreisstraßen"),
        Band(12, lambda t: t.c.length_m >= 0, "everything"),
    ),
    rank=lambda t: _rank_of(t.c.kind, ("road_label", "railway", "water")),
    stamp_layer="basemap",
    minzoom=6,
)

BASEMAP_POINTS = TableLayer(
    name="basemap_points",
    description="Base map points (OSM): place names and house numbers",
    table=BasemapPoint.__table__,
    geometry="point",
    props=(
        Prop("kind", lambda t: t.c.kind, "String", "place | housenumber"),
        Prop("class", lambda t: t.c["class"], "String", "city, town, village, suburb, quarter, hamlet, ..."),
        Prop("name", lambda t: t.c.name, "String", "place name"),
        Prop("housenumber", lambda t: t.c.housenumber, "String", "house number (drawn from z17)"),
        Prop("population", lambda t: t.c.population, "Number", "population, where OSM has it"),
    ),
    bands=(
        Band(0, lambda t: (t.c.kind == "place") & (t.c["class"] == "city"), "cities"),
        Band(8, lambda t: (t.c.kind == "place") & t.c["class"].in_(("city", "town")), "cities and towns"),
        Band(10, lambda t: (t.c.kind == "place") & t.c["class"].in_(("city", "town", "village", "suburb",
                                                                       "borough")),
             "and villages, suburbs"),
        Band(12, lambda t: t.c.kind == "place", "all places"),
        Band(16, lambda t: true(), "places and house numbers"),
    ),
    rank=lambda t: _rank_of(t.c["class"], ("city", "town", "suburb", "village", "borough", "quarter", "hamlet")),
    stamp_layer="basemap",
    minzoom=6,
)

_admin = AdminArea.__table__
# The administrative areas' label points (the generated column admin_areas.label_point) as a layer of their own.
ADMIN_LABELS = TableLayer(
    name="admin_labels",
    description="Names of the Land, Kreise and Gemeinden (BKG VG250) at a point inside each",
    table=select(_admin.c.id, _admin.c.tenant_key, _admin.c.level, _admin.c.name, _admin.c.bez,
                 _admin.c.population, _admin.c.label_point.label("geom")).subquery("admin_labels"),
    geometry="point",
    props=(
        Prop("level", lambda t: t.c.level, "String", "land | kreis | gemeinde"),
        Prop("name", lambda t: t.c.name, "String", "name"),
        Prop("bez", lambda t: t.c.bez, "String", "Stadt, Gemeinde, Landkreis, Kreisfreie Stadt, ..."),
        Prop("population", lambda t: t.c.population, "Number", "population (destatis)"),
    ),
    bands=(
        Band(0, lambda t: t.c.level == "land", "Land"),
        Band(6, lambda t: t.c.level.in_(("land", "kreis")), "Land and Kreise"),
        Band(9, lambda t: true(), "Land, Kreise and Gemeinden"),
    ),
    rank=lambda t: _rank_of(t.c.level, ("land", "kreis", "gemeinde")),
    stamp_layer="boundaries",
)


# --- the registry ----------------------------------------------------------------------------------------------

LAYERS: dict[str, TableLayer | CallerLayer] = {}
_stmt_cache: dict[tuple, Select] = {}                # (layer name, band, ranked) → statement of a TableLayer
_stmt_lock = threading.Lock()


def register_layer(layer: TableLayer | CallerLayer) -> None:
    """Add a layer, or replace the one of that name (the tile benchmark's copy of the road network). Registering
    the layer that is registered already changes nothing, so an app factory that runs more than once (the tests)
    registers its layers each time. Layers are listed in the order of their first registration."""
    if LAYERS.get(layer.name) is layer:
        return
    LAYERS[layer.name] = layer
    with _stmt_lock:
        for key in [k for k in _stmt_cache if k[0] == layer.name]:
            del _stmt_cache[key]


def get_layer(name: str) -> TableLayer | CallerLayer:
    layer = LAYERS.get(name)
    if layer is None:
        raise NotFound(f"No tile layer {name!r}; layers: {', '.join(sorted(LAYERS))}", type="unknown-layer",
                       layer=name, layers=sorted(LAYERS))
    return layer


def caller_layers() -> list[CallerLayer]:
    """The registered layers whose tiles depend on the caller, in the order of registration."""
    return [layer for layer in LAYERS.values() if not layer.public]


# geo's own layers, the public ones. Protected areas, once they are shown, are one more TableLayer, registered by
# the package that holds their table.
register_layer(ROADS)
register_layer(BOUNDARIES)
register_layer(ADMIN_LABELS)
register_layer(BASEMAP_AREAS)
register_layer(BASEMAP_LINES)
register_layer(BASEMAP_POINTS)


# --- statements ------------------------------------------------------------------------------------------------


def envelope_3857() -> ColumnElement[Any]:
    """The tile's square in EPSG:3857 (``ST_TileEnvelope``) from the bind parameters ``z``, ``x``, ``y``."""
    return gf.ST_TileEnvelope(bindparam("z", type_=Integer), bindparam("x", type_=Integer),
                              bindparam("y", type_=Integer))


def _tenant_srid() -> ColumnElement[int]:
    return select(Tenant.srid).where(Tenant.key == bindparam("tenant", type_=String)).scalar_subquery()


def _stamp(layer_name_param: str = "stamp_layer") -> ColumnElement[datetime]:
    return (select(LayerImport.imported_at)
            .where(LayerImport.tenant_key == bindparam("tenant", type_=String),
                   LayerImport.layer == bindparam(layer_name_param, type_=String))
            .scalar_subquery())


def mvt_and_count(rows, layer_name: str):
    """A one-row subquery (mvt, features): ``ST_AsMVT`` over ``rows`` (properties plus ``geom``, the output of
    ``ST_AsMVTGeom``; NULL where a geometry does not reach into the tile) and the number of features in it.
    ST_AsMVT skips rows whose geometry is NULL, so they are not filtered out first (a filter on the computed
    geometry would make PostgreSQL compute it twice)."""
    return select(func.ST_AsMVT(rows.table_valued(), literal_column(f"'{layer_name}'"),
                                literal_column(str(EXTENT)), literal_column("'geom'")).label("mvt"),
                  func.count(rows.c.geom).label("features")).select_from(rows).subquery("m")


def table_tile_statement(layer: TableLayer, band: int, ranked: bool) -> Select:
    """SELECT srid, stamp, n, features, mvt for one tile of a public layer (cached per layer, band and ranking).

    Unranked: the rows in index order, at most limit + 1 (n tells whether there were more); the common case, no
    sort. Ranked (only when the unranked one found more than the limit): the ``limit`` most important rows."""
    key = (layer.name, band, ranked)
    stmt = _stmt_cache.get(key)
    if stmt is not None:
        return stmt
    t = layer.table
    env_native = gf.ST_Transform(envelope_3857(), _tenant_srid())
    cand = (select(t.c.id, *[p.expr(t).label(p.name) for p in layer.props], t.c.geom)
            .where(t.c.tenant_key == bindparam("tenant", type_=String),
                   t.c.geom.op("&&")(env_native),
                   layer.bands[band].where(t)))
    if ranked:
        cand = cand.add_columns(layer.rank(t).label("_rank")).order_by(literal_column("_rank"), t.c.id)
    cand = cand.limit(bindparam("limit_plus_one", type_=Integer)).cte("cand").prefix_with("MATERIALIZED")
    kept = select(cand.c.geom, *[cand.c[p.name] for p in layer.props])
    if ranked:
        kept = kept.order_by(cand.c._rank, cand.c.id).limit(bindparam("limit", type_=Integer))
    kept = kept.subquery("kept")
    tol = bindparam("tol")
    geom = kept.c.geom
    # Simplifying before the transformation pays even at z14+ (fewer vertices to transform; measured).
    if layer.geometry == "polygon":
        clipped = gf.ST_ClipByBox2D(geom, func.Box2D(gf.ST_Expand(env_native, bindparam("pad"))))
        geom = (func.ST_Simplify(clipped, tol, True) if layer.polygon_simplify == "fast"
                else gf.ST_SimplifyPreserveTopology(clipped, tol))
    elif layer.geometry == "line":
        geom = func.ST_Simplify(geom, tol, True)
    mvt_geom = gf.ST_AsMVTGeom(gf.ST_Transform(geom, 3857), envelope_3857(), literal_column(str(EXTENT)),
                               literal_column(str(BUFFER)), true())
    # MATERIALIZED: ST_AsMVT(rows) and count(rows.geom) would otherwise each compute ST_AsMVTGeom
    rows = (select(*[kept.c[p.name] for p in layer.props], mvt_geom.label("geom"))
            .cte("rows").prefix_with("MATERIALIZED"))
    m = mvt_and_count(rows, layer.name)
    n = select(func.count()).select_from(cand).scalar_subquery()
    stmt = select(_tenant_srid().label("srid"), _stamp().label("stamp"), n.label("n"), m.c.features,
                  m.c.mvt).select_from(m)
    with _stmt_lock:
        _stmt_cache[key] = stmt
    return stmt


_META = select(_tenant_srid().label("srid"), _stamp().label("stamp"))


@dataclass
class Tile:
    data: bytes
    features: int
    truncated: bool
    etag: str
    limit: int


def etag_of(*parts: Any) -> str:
    """A strong ETag over the parts (SHA-256 of their text, 128 bits)."""
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f'"{h}"'


def public_etag(layer: TableLayer, tenant_key: str, tile: TileKey, stamp: datetime | None, limit: int) -> str:
    return etag_of("tile", TILES_VERSION, layer.name, tenant_key, tile, stamp.isoformat() if stamp else "-", limit)


def public_tile_etag(session: Session, layer: TableLayer, tenant_key: str, tile: TileKey) -> str:
    """The ETag of a public tile without building it (for If-None-Match)."""
    row = session.execute(_META, {"tenant": tenant_key, "stamp_layer": layer.stamp_layer}).one()
    if row.srid is None:
        raise _no_tenant(tenant_key)
    return public_etag(layer, tenant_key, tile, row.stamp, tile_settings().feature_limit)


def _no_tenant(tenant_key: str) -> NotFound:
    return NotFound(f"No tenant {tenant_key!r}", type="tenant-not-found", tenant=tenant_key)


def public_tile(session: Session, layer: TableLayer, tenant_key: str, tile: TileKey) -> Tile:
    limit = tile_settings().feature_limit
    unit = tile.native_units_per_tile_unit()
    params = {"z": tile.z, "x": tile.x, "y": tile.y, "tenant": tenant_key, "stamp_layer": layer.stamp_layer,
              "limit": limit, "limit_plus_one": limit + 1, "tol": SIMPLIFY_UNITS * unit, "pad": BUFFER * unit}
    row = session.execute(table_tile_statement(layer, layer.band(tile.z), ranked=False), params).one()
    if row.srid is None:
        raise _no_tenant(tenant_key)
    if int(row.n) > limit:
        row = session.execute(table_tile_statement(layer, layer.band(tile.z), ranked=True), params).one()
    return Tile(data=bytes(row.mvt or b""), features=int(row.features), truncated=int(row.n) > limit, limit=limit,
                etag=public_etag(layer, tenant_key, tile, row.stamp, limit))


# --- TileJSON (the style: geo/style.py) ------------------------------------------------------------------------

_BOUNDS_SQL = text("""
SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (
    SELECT COALESCE(
        (SELECT ST_Extent(ST_Transform(geom, 4326))::geometry FROM admin_areas
         WHERE tenant_key = :t AND level = 'land'),
        (SELECT ST_Extent(ST_Transform(geom, 4326))::geometry FROM admin_areas WHERE tenant_key = :t),
        (SELECT ST_Extent(ST_Transform(geom, 4326))::geometry FROM road_segments WHERE tenant_key = :t)) AS b
) x
""")


def tenant_bounds(session: Session, tenant_key: str) -> list[float] | None:
    """The tenant's territory in EPSG:4326 (west, south, east, north), rounded outwards to 1e-5°."""
    if session.get(Tenant, tenant_key) is None:
        raise _no_tenant(tenant_key)
    row = session.execute(_BOUNDS_SQL, {"t": tenant_key}).one()
    if row[0] is None:
        return None
    w, s, e, n = (float(v) for v in row)
    return [math.floor(w * 1e5) / 1e5, math.floor(s * 1e5) / 1e5, math.ceil(e * 1e5) / 1e5, math.ceil(n * 1e5) / 1e5]


def tilejson(session: Session, layer: TableLayer | CallerLayer, tenant_key: str, base_url: str, *,
             tenant_in_url: bool) -> dict[str, Any]:
    bounds = tenant_bounds(session, tenant_key) or [-180.0, -85.051129, 180.0, 85.051129]
    query = f"?tenant={tenant_key}" if tenant_in_url else ""
    if isinstance(layer, TableLayer):
        types = {p.name: p.tilejson_type for p in layer.props}
        descriptions = {p.name: p.description for p in layer.props}
        zoom_notes = "; ".join(f"z{b.minzoom}+: {b.label}" for b in layer.bands)
    else:
        types = {name: typ for name, typ, _ in layer.props}
        descriptions = {name: desc for name, _, desc in layer.props}
        zoom_notes = layer.zoom_notes
    center_zoom = max(layer.minzoom, 8)
    return {
        "tilejson": "3.0.0",
        "name": layer.name,
        "description": layer.description,
        "version": f"{TILES_VERSION}.0.0",          # TileJSON 3.0.0: a semver of the tileset
        "attribution": ATTRIBUTION,
        "scheme": "xyz",
        "tiles": [f"{base_url.rstrip('/')}/tiles/{layer.name}/{{z}}/{{x}}/{{y}}.mvt{query}"],
        "minzoom": layer.minzoom,
        "maxzoom": layer.maxzoom,
        "bounds": bounds,
        "center": [round((bounds[0] + bounds[2]) / 2, 5), round((bounds[1] + bounds[3]) / 2, 5), center_zoom],
        "vector_layers": [{
            "id": layer.name,
            "description": f"{layer.description} ({zoom_notes})",
            "minzoom": layer.minzoom,
            "maxzoom": layer.maxzoom,
            # TileJSON 3.0.0: field name → its description (a string); the type is said in it and below
            "fields": {name: f"{descriptions[name]} ({types[name]})" for name in types},
        }],
        "breitband:field_types": types,
        "breitband:feature_limit": tile_settings().feature_limit,
    }


__all__ = ["LAYERS", "ROADS", "BOUNDARIES", "TableLayer", "CallerLayer", "TileKey", "Tile", "MVT_MEDIA_TYPE",
           "validate_tile", "get_layer", "register_layer", "caller_layers", "public_tile", "public_tile_etag",
           "envelope_3857", "mvt_and_count", "etag_of", "tilejson", "tenant_bounds", "tile_settings"]
