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

Layers are entries of ``LAYERS``: a public ``TableLayer`` is a table with ``tenant_key`` and ``geom`` in the
tenant's CRS, the properties to publish, and its zoom bands. ``applications`` is per caller (see
``ApplicationsLayer``). Protected areas become one more ``TableLayer`` entry once their table exists.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from geoalchemy2 import functions as gf
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import (ColumnElement, Integer, Select, String, Table, and_, bindparam, case, cast, func,
                        literal_column, not_, or_, select, text, true)
from sqlalchemy.orm import Session

from breitband.errors import NotFound, UnprocessableEntity
from breitband.models import Tenant
from geo.models import ROAD_CLASSES, AdminArea, LayerImport, RoadSegment

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
EXTENT = 4096                # tile coordinate units per tile side
BUFFER = 64                  # units around the tile kept by ST_AsMVTGeom (lines and outlines do not end at seams)
SIMPLIFY_UNITS = 1.0         # simplification tolerance in tile units (1/4096 of the tile; ~1/8 of a screen pixel)
MAX_ZOOM = 22
# applications layer: Douglas-Peucker only on pieces of a route (clipped to a tile) of at most this many vertices
# (worst case, a regular zigzag, ~4 ms); larger line and area pieces are first thinned in one linear pass so that
# no two kept vertices are closer than THIN_UNITS tile units.
SIMPLIFY_MAX_VERTICES = 2_000
THIN_UNITS = 8.0             # one screen pixel of a 512-pixel tile
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

    def band(self, z: int) -> int:
        chosen = 0
        for i, b in enumerate(self.bands):
            if z >= b.minzoom:
                chosen = i
        return chosen


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

# Protected areas, once their table exists, are one more entry here:
#   AREAS = TableLayer(name="areas", table=ProtectedArea.__table__, geometry="polygon", props=(...), ...)
LAYERS: dict[str, Any] = {ROADS.name: ROADS, BOUNDARIES.name: BOUNDARIES}


def get_layer(name: str):
    layer = LAYERS.get(name)
    if layer is None:
        raise NotFound(f"No tile layer {name!r}; layers: {', '.join(sorted(LAYERS))}", type="unknown-layer",
                       layer=name, layers=sorted(LAYERS))
    return layer


def register_layer(layer) -> None:
    """Add or replace a layer (protected areas; the tile benchmark's copy of the road network)."""
    LAYERS[layer.name] = layer
    with _stmt_lock:
        for key in [k for k in _stmt_cache if k[0] == layer.name]:
            del _stmt_cache[key]


# --- statements ------------------------------------------------------------------------------------------------

_stmt_cache: dict[tuple, Select] = {}
_stmt_lock = threading.Lock()


def _envelope_3857() -> ColumnElement[Any]:
    return gf.ST_TileEnvelope(bindparam("z", type_=Integer), bindparam("x", type_=Integer),
                              bindparam("y", type_=Integer))


def _tenant_srid() -> ColumnElement[int]:
    return select(Tenant.srid).where(Tenant.key == bindparam("tenant", type_=String)).scalar_subquery()


def _stamp(layer_name_param: str = "stamp_layer") -> ColumnElement[datetime]:
    return (select(LayerImport.imported_at)
            .where(LayerImport.tenant_key == bindparam("tenant", type_=String),
                   LayerImport.layer == bindparam(layer_name_param, type_=String))
            .scalar_subquery())


def _mvt_and_count(rows, layer_name: str):
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
    env_native = gf.ST_Transform(_envelope_3857(), _tenant_srid())
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
        geom = gf.ST_SimplifyPreserveTopology(
            gf.ST_ClipByBox2D(geom, func.Box2D(gf.ST_Expand(env_native, bindparam("pad")))), tol)
    elif layer.geometry == "line":
        geom = func.ST_Simplify(geom, tol, True)
    mvt_geom = gf.ST_AsMVTGeom(gf.ST_Transform(geom, 3857), _envelope_3857(), literal_column(str(EXTENT)),
                               literal_column(str(BUFFER)), true())
    # MATERIALIZED: ST_AsMVT(rows) and count(rows.geom) would otherwise each compute ST_AsMVTGeom
    rows = (select(*[kept.c[p.name] for p in layer.props], mvt_geom.label("geom"))
            .cte("rows").prefix_with("MATERIALIZED"))
    m = _mvt_and_count(rows, layer.name)
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


def _etag(*parts: Any) -> str:
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f'"{h}"'


def public_etag(layer: TableLayer, tenant_key: str, tile: TileKey, stamp: datetime | None, limit: int) -> str:
    return _etag("tile", TILES_VERSION, layer.name, tenant_key, tile, stamp.isoformat() if stamp else "-", limit)


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


# --- applications (per caller) ---------------------------------------------------------------------------------

APPLICATION_PROPS = (
    ("own", "Boolean", "true: the caller's own application (operator), one with a case of the caller's "
                       "organisation (authority) or a statement request to it (participating body); false: another "
                       "application nearby, greyed, without details"),
    ("status", "String", "application status (draft, submitted, information_requested, granted, ...)"),
    ("id", "String", "application id (own only)"),
    ("reference", "String", "reference number, e.g. HE-2026-000123 (own only)"),
    ("project_name", "String", "project name (own only)"),
    ("case_id", "String", "the caller's case (authorities)"),
    ("case_status", "String", "state of the caller's case: received, incomplete, in_review, granted, ..."),
    ("decision_due", "String", "last day of the caller's decision period (ISO date)"),
    ("part", "String", "which part of the route: line (trenches), point (pits, cabinets), area"),
)


@dataclass(frozen=True)
class ApplicationsLayer:
    """Permit applications' routes, filtered by the caller (needs a Bearer token):

    - an operator sees its organisation's applications, drafts included (once permits stores their route);
    - an authority (reviewer, admin) sees the applications that have a case of its organisation, with the state
      of that case, and — greyed (``own=false``), with the application status only, no reference, name or ids —
      every other submitted application of the tenant that is neither a draft nor withdrawn;
    - a participating body (its reviewers and admins) sees the applications it has statement requests for as its
      own (reference, project name, no case), the others greyed like an authority;
    - a tenant admin sees every application of the tenant;
    - nothing of another tenant.

    The scope is ``permits.repository.readable_applications``, the one place that defines what a caller may read
    (for a body ``permits.participation.statements.readable_statements``).
    """

    name: str = "applications"
    description: str = "Routes of permit applications with their state, as the caller may see them"
    geometry: str = "mixed"
    minzoom: int = 5
    maxzoom: int = 16
    public: bool = False
    props: tuple = field(default=APPLICATION_PROPS)

    @staticmethod
    def available() -> bool:
        try:
            import permits.models  # noqa: F401
            import permits.repository  # noqa: F401
        except ModuleNotFoundError:
            return False
        return True


def applications_statement(principal) -> Select:
    from breitband.models import OrgKind, Role
    from permits.models import Application
    from permits.repository import is_authority, own_case, readable_applications

    a = Application.__table__
    if principal.organisation_kind is OrgKind.participating_body and not principal.is_tenant_admin:
        # a body reads no application, only its statement requests: their applications are its own on the map
        from permits.participation.models import StatementRequest
        from permits.participation.statements import readable_statements

        own_ids = (readable_statements(principal).with_only_columns(StatementRequest.application_id)
                   .correlate(None).scalar_subquery())
    else:
        own_ids = readable_applications(principal).with_only_columns(Application.id).correlate(None).scalar_subquery()
    is_own = Application.id.in_(own_ids)
    if is_authority(principal):
        visible = or_(is_own, Application.status.not_in(("draft", "withdrawn")))
    else:
        visible = is_own
    env_4326 = gf.ST_Transform(_envelope_3857(), 4326)
    my_case = own_case(principal)
    with_case = principal.role in (Role.authority_reviewer, Role.authority_admin)
    order = func.row_number().over(order_by=(is_own.desc(), Application.created_at.desc(), Application.id))
    cand = (select(order.label("_order"), Application.id, is_own.label("own"), Application.status,
                   Application.reference,
                   Application.project_name, Application.route_geom,
                   *( [my_case.c.id.label("case_id"), my_case.c.status.label("case_status"),
                       my_case.c.decision_due] if with_case else []))
            .select_from(a)
            .where(Application.tenant_key == principal.tenant_key,
                   Application.route_geom.is_not(None),
                   Application.route_geom.op("&&")(env_4326),
                   visible))
    if with_case:
        cand = cand.outerjoin(my_case, true())
    cand = (cand.order_by(is_own.desc(), Application.created_at.desc(), Application.id)
            .limit(bindparam("limit_plus_one", type_=Integer)).cte("cand").prefix_with("MATERIALIZED"))
    # Clip first, then simplify (issue 11): the route is cut to the tile plus twice the MVT buffer in its stored
    # CRS (EPSG:4326; the Web Mercator tile is a lon/lat rectangle there, so the box is exact), once per route,
    # before anything else touches its vertices. A route of 100,000 vertices costs one linear pass (GEOS'
    # rectangle clip) per tile; the transformation and simplification see only the piece in the tile. The wider
    # box leaves the exact cut at the buffer's edge to ST_AsMVTGeom.
    clip_box = func.Box2D(gf.ST_Transform(gf.ST_Expand(_envelope_3857(), bindparam("clip_pad3857")), 4326))
    keep = [col for col in cand.c if col.name not in ("route_geom", "_order")]
    clipped = (select(*keep, gf.ST_ClipByBox2D(cand.c.route_geom, clip_box).label("g"))
               .where(cand.c._order <= bindparam("limit", type_=Integer))
               .cte("clipped").prefix_with("MATERIALIZED"))
    dim = func.generate_series(1, 3).table_valued("dim").alias("dim")
    parts = (select(*[col for col in clipped.c if col.name != "g"], dim.c.dim.label("dim"),
                    gf.ST_CollectionExtract(clipped.c.g, dim.c.dim).label("pg"))
             .select_from(clipped).join(dim, true())
             .cte("parts").prefix_with("MATERIALIZED"))
    # The work per tile is capped. Douglas-Peucker (ST_Simplify) is quadratic in the worst case (a regular zigzag
    # of 40,000 vertices takes 2 s), so it runs only on pieces of at most SIMPLIFY_MAX_VERTICES. A larger line or
    # area piece (a dense route at a low zoom) is first thinned in one linear pass, still in EPSG:4326 so that
    # the transformation sees fewer vertices: no vertex within THIN_UNITS tile units (one screen pixel) of the one
    # kept before it (ST_RemoveRepeatedPoints with the tolerance in degrees; ``thin_deg``).
    pg = parts.c.pg
    thinned = case((and_(parts.c.dim > 1, gf.ST_NPoints(pg) > SIMPLIFY_MAX_VERTICES),
                    func.ST_RemoveRepeatedPoints(pg, bindparam("thin_deg"))), else_=pg)
    own = parts.c.own

    def if_own(col):
        return case((own, col), else_=None)

    c = parts.c
    cols = [own.label("own"), c.status.label("status"),
            if_own(cast(c.id, String)).label("id"), if_own(c.reference).label("reference"),
            if_own(c.project_name).label("project_name")]
    if with_case:
        cols += [cast(c.case_id, String).label("case_id"), c.case_status.label("case_status"),
                 cast(c.decision_due, String).label("decision_due")]
    cols.append(case({1: "point", 2: "line", 3: "area"}, value=c.dim).label("part"))
    merc_parts = (select(*cols, gf.ST_Transform(thinned, 3857).label("merc"))
                  .where(not_(gf.ST_IsEmpty(pg)))
                  .cte("merc").prefix_with("MATERIALIZED"))
    merc = merc_parts.c.merc
    display = case((gf.ST_NPoints(merc) <= SIMPLIFY_MAX_VERTICES,
                    func.ST_Simplify(merc, bindparam("tol3857"), True)), else_=merc)
    kept = (select(*[col for col in merc_parts.c if col.name != "merc"],
                   gf.ST_AsMVTGeom(display, _envelope_3857(), literal_column(str(EXTENT)),
                                   literal_column(str(BUFFER)), true()).label("geom"))
            .cte("kept").prefix_with("MATERIALIZED"))
    m = _mvt_and_count(kept, "applications")
    n = select(func.count()).select_from(cand).scalar_subquery()
    return select(n.label("n"), m.c.features, m.c.mvt).select_from(m)


def applications_tile(session: Session, principal, tile: TileKey) -> Tile:
    limit = tile_settings().feature_limit
    unit = tile.width_3857 / EXTENT
    params = {"z": tile.z, "x": tile.x, "y": tile.y, "limit": limit, "limit_plus_one": limit + 1,
              "tol3857": SIMPLIFY_UNITS * unit, "clip_pad3857": 2 * BUFFER * unit,
              # THIN_UNITS in degrees: a Web Mercator unit is 360/side degrees of longitude and cos(lat) times
              # that of latitude; the smaller one is kept, so the thinning stays within THIN_UNITS both ways
              "thin_deg": THIN_UNITS * unit * 360 / WEB_MERCATOR_SIDE * math.cos(math.radians(tile.center_lat))}
    row = session.execute(applications_statement(principal), params).one()
    data = bytes(row.mvt or b"")
    # Private and changing with every command: the ETag is the content's hash (per caller), saves the transfer.
    return Tile(data=data, features=int(row.features), truncated=int(row.n) > limit, limit=limit,
                etag=_etag("app", TILES_VERSION, principal.user_id, hashlib.sha256(data).hexdigest()))


if ApplicationsLayer.available():
    LAYERS["applications"] = ApplicationsLayer()


# --- TileJSON and style ----------------------------------------------------------------------------------------

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


def tilejson(session: Session, layer, tenant_key: str, base_url: str, *, tenant_in_url: bool) -> dict[str, Any]:
    bounds = tenant_bounds(session, tenant_key) or [-180.0, -85.051129, 180.0, 85.051129]
    query = f"?tenant={tenant_key}" if tenant_in_url else ""
    if isinstance(layer, TableLayer):
        fields = {p.name: p.tilejson_type for p in layer.props}
        descriptions = {p.name: p.description for p in layer.props}
        zoom_notes = "; ".join(f"z{b.minzoom}+: {b.label}" for b in layer.bands)
    else:
        fields = {name: typ for name, typ, _ in layer.props}
        descriptions = {name: desc for name, _, desc in layer.props}
        zoom_notes = "all zooms: every visible application"
    center_zoom = max(layer.minzoom, 8)
    return {
        "tilejson": "3.0.0",
        "name": layer.name,
        "description": layer.description,
        "version": TILES_VERSION,
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
            "fields": fields,
        }],
        "breitband:field_descriptions": descriptions,
        "breitband:feature_limit": tile_settings().feature_limit,
    }


ROAD_COLOURS = {"autobahn": "#1f5fbf", "bund": "#d7301f", "land": "#f39c12", "kreis": "#2e9d3a",
                "gemeinde": "#8c8c8c"}
APPLICATION_COLOURS = {"received": "#6a3d9a", "incomplete": "#e31a8c", "in_review": "#1f78b4",
                       "granted": "#33a02c", "partially_granted": "#b2df8a", "deemed_granted": "#33a02c",
                       "refused": "#e31a1c", "forwarded": "#999999", "withdrawn": "#bbbbbb"}


def style(base_url: str, tenant_key: str, bounds: list[float] | None, *, with_applications: bool) -> dict[str, Any]:
    """A MapLibre style (spec v8) whose only sources are our own tile endpoints. No text layers, so no glyphs
    or sprites are needed; labels would need glyph PBFs served by us (no external URLs in a closed network)."""
    base = base_url.rstrip("/")
    sources: dict[str, Any] = {
        name: {"type": "vector", "url": f"{base}/tiles/{name}.json?tenant={tenant_key}",
               "attribution": ATTRIBUTION}
        for name in ("boundaries", "roads")
    }
    class_colour = ["match", ["get", "road_class"], *[v for k, c in ROAD_COLOURS.items() for v in (k, c)],
                    ROAD_COLOURS["gemeinde"]]
    class_width = ["match", ["get", "road_class"], "autobahn", 3.0, "bund", 2.4, "land", 2.0, "kreis", 1.6, 1.0]
    # higher is drawn later (on top): Autobahn over Bundesstraße over ... over Gemeindestraße
    sort_key = ["match", ["get", "road_class"], "autobahn", 5, "bund", 4, "land", 3, "kreis", 2, 1]
    width = ["interpolate", ["exponential", 1.6], ["zoom"],
             6, ["*", 0.4, class_width], 12, ["*", 1.2, class_width], 16, ["*", 4, class_width]]
    layers: list[dict[str, Any]] = [
        {"id": "background", "type": "background", "paint": {"background-color": "#f6f4ef"}},
        {"id": "gemeinden-fill", "type": "fill", "source": "boundaries", "source-layer": "boundaries",
         "filter": ["==", ["get", "level"], "gemeinde"],
         "paint": {"fill-color": "#ffffff", "fill-opacity": 0.6, "fill-outline-color": "#d9d4c7"}},
        {"id": "boundary-gemeinde", "type": "line", "source": "boundaries", "source-layer": "boundaries",
         "filter": ["==", ["get", "level"], "gemeinde"], "minzoom": 8,
         "paint": {"line-color": "#9e9a91", "line-width": 0.8, "line-dasharray": [3, 2]}},
        {"id": "boundary-kreis", "type": "line", "source": "boundaries", "source-layer": "boundaries",
         "filter": ["==", ["get", "level"], "kreis"],
         "paint": {"line-color": "#7a6f8a", "line-width": 1.4}},
        {"id": "boundary-land", "type": "line", "source": "boundaries", "source-layer": "boundaries",
         "filter": ["==", ["get", "level"], "land"],
         "paint": {"line-color": "#4b3b66", "line-width": 2.5}},
        {"id": "roads-public", "type": "line", "source": "roads", "source-layer": "roads",
         "filter": ["!=", ["get", "is_private"], True],
         "layout": {"line-cap": "round", "line-join": "round", "line-sort-key": sort_key},
         "paint": {"line-color": class_colour, "line-width": width}},
        {"id": "roads-private", "type": "line", "source": "roads", "source-layer": "roads",
         "filter": ["==", ["get", "is_private"], True],
         "layout": {"line-sort-key": sort_key},
         "paint": {"line-color": class_colour, "line-width": width, "line-dasharray": [2, 2]}},
    ]
    if with_applications:
        sources["applications"] = {"type": "vector", "url": f"{base}/tiles/applications.json"}
        state = ["coalesce", ["get", "case_status"], ["get", "status"]]
        colour = ["case", ["!=", ["get", "own"], True], "#b0b0b0",
                  ["match", state, *[v for k, c in APPLICATION_COLOURS.items() for v in (k, c)], "#6a3d9a"]]
        layers += [
            {"id": "applications-area", "type": "fill", "source": "applications", "source-layer": "applications",
             "filter": ["==", ["get", "part"], "area"], "paint": {"fill-color": colour, "fill-opacity": 0.35}},
            {"id": "applications-line", "type": "line", "source": "applications", "source-layer": "applications",
             "filter": ["==", ["get", "part"], "line"],
             "layout": {"line-cap": "round", "line-join": "round",
                        "line-sort-key": ["case", ["==", ["get", "own"], True], 1, 0]},
             "paint": {"line-color": colour, "line-width": ["case", ["==", ["get", "own"], True], 4, 2]}},
            {"id": "applications-point", "type": "circle", "source": "applications", "source-layer": "applications",
             "filter": ["==", ["get", "part"], "point"],
             "paint": {"circle-color": colour, "circle-radius": 4, "circle-stroke-color": "#ffffff",
                       "circle-stroke-width": 1}},
        ]
    out: dict[str, Any] = {
        "version": 8,
        "name": "Breitband",
        "metadata": {"breitband:tenant": tenant_key,
                     "breitband:note": "No text layers: labels need glyphs served by this service (none yet); "
                                       "no external URLs, so the map works in a closed network.",
                     "breitband:road_colours": ROAD_COLOURS},
        "sources": sources,
        "layers": layers,
    }
    if bounds:
        out["center"] = [round((bounds[0] + bounds[2]) / 2, 5), round((bounds[1] + bounds[3]) / 2, 5)]
        out["zoom"] = 8
    return out


__all__ = ["LAYERS", "ROADS", "BOUNDARIES", "TableLayer", "ApplicationsLayer", "TileKey", "Tile", "MVT_MEDIA_TYPE",
           "validate_tile", "get_layer", "register_layer", "public_tile", "public_tile_etag", "applications_tile",
           "tilejson", "style", "tenant_bounds", "tile_settings"]
