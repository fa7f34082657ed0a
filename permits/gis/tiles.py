"""The ``applications`` tile layer: permit applications' routes on the map, as the caller may see them.

geo serves the tiles (``GET /tiles/applications/{z}/{x}/{y}.mvt``, its TileJSON, the style) but knows nothing of
permits: this module builds the layer with geo's tile helpers, and the app factory registers ``LAYER`` with
``geo.tiles.register_layer``. One statement per tile, like geo's public layers (``ST_AsMVT`` over
``ST_AsMVTGeom(..., ST_TileEnvelope(z, x, y))``), with the caller's scope and the work per tile capped for long
routes (issue 11: clip first, then simplify; see ``applications_statement``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from geoalchemy2 import functions as gf
from sqlalchemy import (
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

from breitband.identity import Principal
from breitband.models import Organisation, Role
from geo.tiles import (
    BUFFER,
    EXTENT,
    SIMPLIFY_UNITS,
    TILES_VERSION,
    WEB_MERCATOR_SIDE,
    Tile,
    TileKey,
    envelope_3857,
    etag_of,
    mvt_and_count,
    tile_settings,
)
from permits.gis.scope import gis_applications
from permits.models import Application
from permits.repository import is_authority, own_case

LAYER_NAME = "applications"
# Douglas-Peucker only on pieces of a route (clipped to a tile) of at most this many vertices (worst case, a regular
# zigzag, ~4 ms); larger line and area pieces are first thinned in one linear pass so that no two kept vertices are
# closer than THIN_UNITS tile units.
SIMPLIFY_MAX_VERTICES = 2_000
THIN_UNITS = 8.0             # one screen pixel of a 512-pixel tile

APPLICATION_PROPS = (
    ("own", "Boolean", "true: the caller's own application (operator), one with a case of the caller's "
                       "organisation (authority) or a statement request to it (participating body); false: another "
                       "application nearby, greyed, without details"),
    ("status", "String", "application status (draft, submitted, information_requested, granted, ...)"),
    ("id", "String", "application id (own only)"),
    ("reference", "String", "reference number, e.g. HE-2026-000123 (own only)"),
    ("project_name", "String", "project name (own only)"),
    ("operator", "String", "the applicant organisation's name (own only)"),
    ("case_id", "String", "the caller's case (authorities)"),
    ("case_status", "String", "state of the caller's case: received, incomplete, in_review, granted, ..."),
    ("decision_due", "String", "last day of the caller's decision period (ISO date)"),
    ("part", "String", "which part of the route: line (trenches), point (pits, cabinets), area"),
)
# The core colour of a route by the state of the caller's case (else the application's status). None of these hues is
# a road class's (blue, red, orange, green, grey: geo/style.py ROAD_COLOURS), and every route has a dark casing that
# no road has, so a route is never taken for a road (issue 16).
APPLICATION_COLOURS = {"received": "#8e44ad", "incomplete": "#f1c40f", "in_review": "#00a3a3",
                       "granted": "#ffffff", "partially_granted": "#d9c8e6", "deemed_granted": "#ffffff",
                       "refused": "#7b4a2e", "forwarded": "#9e9e9e", "withdrawn": "#bdbdbd"}
ROUTE_CASING = "#1b1b1b"
OWN_HALO = "#c9a3e6"        # the viewer's own routes: a soft violet glow under the casing
OTHER_ROUTE = "#8a8a8a"     # another's application (greyed, dashed, thin; no casing)


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

    The scope is ``permits.gis.scope.gis_applications`` (built from ``permits.repository.readable_applications``,
    for a body from ``permits.participation.statements.readable_statements``), shared with the OGC API.
    """

    name: str = LAYER_NAME
    description: str = "Routes of permit applications with their state, as the caller may see them"
    geometry: str = "mixed"
    minzoom: int = 5
    maxzoom: int = 16
    public: bool = False
    props: tuple = field(default=APPLICATION_PROPS)
    zoom_notes: str = "all zooms: every visible application"

    def tile(self, session: Session, principal: Principal, tile: TileKey) -> Tile:
        """The tile as ``principal`` may see it (``GET /tiles/applications/{z}/{x}/{y}.mvt``)."""
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
                    etag=etag_of("app", TILES_VERSION, principal.user_id, hashlib.sha256(data).hexdigest()))

    def style_layers(self) -> list[dict[str, Any]]:
        """Routes as cased lines (dark casing, core coloured by the state of the caller's case, else the application's
        status), areas and points in the same colours; the caller's own with a violet halo and on top; another's
        application thin, grey and dashed, without casing."""
        state = ["coalesce", ["get", "case_status"], ["get", "status"]]
        core = ["match", state, *[v for k, c in APPLICATION_COLOURS.items() for v in (k, c)],
                APPLICATION_COLOURS["received"]]
        own = ["==", ["get", "own"], True]
        src = {"source": self.name, "source-layer": self.name}
        line = ["==", ["get", "part"], "line"]
        round_ = {"line-cap": "round", "line-join": "round"}
        return [
            {"id": "applications-area", "type": "fill", **src, "filter": ["==", ["get", "part"], "area"],
             "paint": {"fill-color": ["case", own, core, OTHER_ROUTE], "fill-opacity": 0.35,
                       "fill-outline-color": ROUTE_CASING}},
            {"id": "applications-other", "type": "line", **src, "filter": ["all", line, ["!", own]],
             "layout": round_,
             "paint": {"line-color": OTHER_ROUTE, "line-width": 2, "line-dasharray": [1.5, 1.5]}},
            {"id": "applications-halo", "type": "line", **src, "filter": ["all", line, own], "layout": round_,
             "paint": {"line-color": OWN_HALO, "line-width": 16, "line-blur": 5, "line-opacity": 0.9}},
            {"id": "applications-casing", "type": "line", **src, "filter": ["all", line, own], "layout": round_,
             "paint": {"line-color": ROUTE_CASING, "line-width": 7}},
            {"id": "applications-line", "type": "line", **src, "filter": ["all", line, own], "layout": round_,
             "paint": {"line-color": core, "line-width": 3.5}},
            {"id": "applications-point", "type": "circle", **src, "filter": ["==", ["get", "part"], "point"],
             "paint": {"circle-color": ["case", own, core, OTHER_ROUTE], "circle-radius": 5,
                       "circle-stroke-color": ROUTE_CASING, "circle-stroke-width": 2}},
        ]

def applications_statement(principal: Principal) -> Select:
    """One statement per caller (the scope is the caller's): SELECT n, features, mvt for the tile in the bind
    parameters (z, x, y, limit, limit_plus_one, tol3857, clip_pad3857, thin_deg; see ``ApplicationsLayer.tile``)."""
    a = Application.__table__
    # a body reads no application, only its statement requests: their applications are its own on the map
    own_ids = gis_applications(principal).with_only_columns(Application.id).correlate(None).scalar_subquery()
    is_own = Application.id.in_(own_ids)
    if is_authority(principal):
        visible = or_(is_own, Application.status.not_in(("draft", "withdrawn")))
    else:
        visible = is_own
    env_4326 = gf.ST_Transform(envelope_3857(), 4326)
    my_case = own_case(principal)
    with_case = principal.role in (Role.authority_reviewer, Role.authority_admin)
    order = func.row_number().over(order_by=(is_own.desc(), Application.created_at.desc(), Application.id))
    operator = (select(Organisation.name).where(Organisation.id == Application.applicant_org_id)
                .correlate(Application).scalar_subquery())
    cand = (select(order.label("_order"), Application.id, is_own.label("own"), Application.status,
                   Application.reference,
                   Application.project_name, operator.label("operator"), Application.route_geom,
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
    clip_box = func.Box2D(gf.ST_Transform(gf.ST_Expand(envelope_3857(), bindparam("clip_pad3857")), 4326))
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
            if_own(c.project_name).label("project_name"), if_own(c.operator).label("operator")]
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
                   gf.ST_AsMVTGeom(display, envelope_3857(), literal_column(str(EXTENT)),
                                   literal_column(str(BUFFER)), true()).label("geom"))
            .cte("kept").prefix_with("MATERIALIZED"))
    m = mvt_and_count(kept, LAYER_NAME)
    n = select(func.count()).select_from(cand).scalar_subquery()
    return select(n.label("n"), m.c.features, m.c.mvt).select_from(m)


LAYER = ApplicationsLayer()
