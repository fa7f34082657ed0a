"""Rendering a decision document: the data (``gather``, one read transaction), the map of the route over our own
road network as SVG (``map_svg``; no external tiles), the QR code, the tenant's HTML template, and WeasyPrint.

The map shows the road segments around this authority's part (``road_segments`` of the tenant, clipped to the
frame), the whole route thin and dashed, this authority's pieces bold and red, points as circles, a scale bar and
the data attribution (© OpenStreetMap contributors, ODbL; boundaries © GeoBasis-DE / BKG).
"""

from __future__ import annotations

import html
import math
from datetime import datetime
from typing import Any

import numpy as np
import qrcode
import qrcode.image.svg
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.crs import parse_crs, transform_geometry
from notifications import templates

ATTRIBUTION = ("Kartengrundlage: Straßennetz © OpenStreetMap-Mitwirkende (ODbL 1.0); Verwaltungsgrenzen "
               "© GeoBasis-DE / BKG 2019 (Daten verändert, dl-de/by-2-0)")
MAP_W, MAP_H = 1000, 620                   # SVG user units (px), drawn at 170 mm width
ROAD_STYLE = {                             # class → (casing width, fill width, fill colour) at a 400 m frame
    "autobahn": (13.0, 10.0, "#e59a3b"), "bund": (11.0, 8.0, "#f3c65a"), "land": (10.0, 7.0, "#f7dc7c"),
    "kreis": (9.0, 6.0, "#fbeeaa"), "gemeinde": (8.0, 5.5, "#ffffff"),
}
AREA_STYLE = {"water": "#5aa9e6", "nature": "#5fae4f", "monument": "#b3478f"}
AREA_DE = {"water": "Wasserschutzgebiet", "nature": "Schutzgebiet", "monument": "Kulturdenkmal"}
AREAS_SQL = text("""
    SELECT ST_AsBinary(ST_ClipByBox2D(geom, env)) AS wkb, kind, name
    FROM protected_areas, (SELECT ST_MakeEnvelope(:x0, :y0, :x1, :y1, :srid) AS env) e
    WHERE tenant_key = :tenant AND geom && env
    LIMIT 500
""")
ROADS_SQL = text("""
    SELECT ST_AsBinary(ST_ClipByBox2D(geom, env)) AS wkb, road_class, is_path, ref, name
    FROM road_segments, (SELECT ST_MakeEnvelope(:x0, :y0, :x1, :y1, :srid) AS env) e
    WHERE tenant_key = :tenant AND geom && env
    ORDER BY CASE road_class WHEN 'gemeinde' THEN 0 WHEN 'kreis' THEN 1 WHEN 'land' THEN 2 WHEN 'bund' THEN 3
             ELSE 4 END
    LIMIT 20000
""")


def _to_metric(geoms: list[Any], src: int, srid: int) -> list[Any]:
    return [transform_geometry(g, src, srid) for g in geoms]


def frame(highlight: list[Any], route: list[Any], min_half: float = 80.0) -> tuple[float, float, float, float]:
    """The map frame: this authority's pieces (else the route) with a margin, in the map's aspect ratio."""
    target = highlight or route
    x0, y0, x1, y1 = shapely.total_bounds(target)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w = max((x1 - x0) / 2 * 1.15, min_half)
    half_h = max((y1 - y0) / 2 * 1.15, min_half)
    if half_w / half_h > MAP_W / MAP_H:
        half_h = half_w * MAP_H / MAP_W
    else:
        half_w = half_h * MAP_W / MAP_H
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def _path(geom: Any, box: tuple[float, float, float, float]) -> str:
    x0, y0, x1, y1 = box
    sx = MAP_W / (x1 - x0)
    out = []
    for part in getattr(geom, "geoms", [geom]):
        if part.is_empty:
            continue
        if part.geom_type == "Polygon":
            rings = [part.exterior, *part.interiors]
            for ring in rings:
                xy = np.asarray(ring.coords)
                out.append("M" + "L".join(f"{(x - x0) * sx:.1f},{(y1 - y) * sx:.1f}" for x, y in xy[:, :2]) + "Z")
        elif part.geom_type in ("LineString", "LinearRing"):
            xy = np.asarray(part.coords)
            out.append("M" + "L".join(f"{(x - x0) * sx:.1f},{(y1 - y) * sx:.1f}" for x, y in xy[:, :2]))
        elif part.geom_type in ("MultiLineString", "MultiPolygon", "GeometryCollection"):
            out.append(_path(part, box))
    return "".join(out)


def _points(geom: Any, box, r: float, style: str) -> str:
    x0, _, x1, y1 = box
    sx = MAP_W / (x1 - x0)
    return "".join(f'<circle cx="{(p.x - x0) * sx:.1f}" cy="{(y1 - p.y) * sx:.1f}" r="{r}" {style}/>'
                   for p in getattr(geom, "geoms", [geom]) if p.geom_type == "Point")


def _scale_bar(box) -> str:
    width_m = box[2] - box[0]
    target = width_m / 5
    nice = max(v for v in (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000) if v <= max(target, 5))
    px = nice * MAP_W / width_m
    label = f"{nice / 1000:g} km" if nice >= 1000 else f"{nice} m"
    y = MAP_H - 22
    return (f'<g font-family="DejaVu Sans, sans-serif" font-size="14"><rect x="14" y="{y - 18}" width="{px + 60:.1f}"'
            f' height="30" fill="#ffffff" fill-opacity="0.8"/>'
            f'<path d="M20,{y}h{px:.1f}" stroke="#000" stroke-width="3"/>'
            f'<path d="M20,{y - 6}v12M{20 + px:.1f},{y - 6}v12" stroke="#000" stroke-width="2"/>'
            f'<text x="{26 + px:.1f}" y="{y + 5}">{label}</text></g>'
            f'<g font-family="DejaVu Sans, sans-serif" font-size="18" font-weight="bold">'
            f'<path d="M{MAP_W - 30},20 l10,28 h-20 z" fill="#000"/><text x="{MAP_W - 37}" y="68">N</text></g>')


def map_svg(session: Session, tenant_key: str, srid: int, route: list[Any], highlight: list[Any]) -> str:
    """An SVG map (string) of the route and this authority's pieces over the tenant's road network."""
    if not route and not highlight:
        return ""
    box = frame([g for g in highlight if not g.is_empty], [g for g in route if not g.is_empty])
    pad = (box[2] - box[0]) * 0.02
    scale = min(1.6, max(0.5, 400.0 / (box[2] - box[0])))
    params = {"x0": box[0] - pad, "y0": box[1] - pad, "x1": box[2] + pad, "y1": box[3] + pad, "srid": srid,
              "tenant": tenant_key}
    areas = []
    for wkb, kind, area_name in session.execute(AREAS_SQL, params).all():
        geom = shapely.from_wkb(bytes(wkb))
        if not geom.is_empty:
            colour = AREA_STYLE.get(kind, "#888888")
            areas.append(f'<path d="{_path(geom, box)}" fill="{colour}" fill-opacity="0.25" stroke="{colour}" '
                         f'stroke-width="2"><title>{html.escape(area_name)}</title></path>')
    casing, fills, paths = [], [], []
    labels: dict[str, tuple[float, Any]] = {}
    for wkb, road_class, is_path, ref, name in session.execute(ROADS_SQL, params).all():
        geom = shapely.from_wkb(bytes(wkb))
        if geom.is_empty:
            continue
        d = _path(geom, box)
        if is_path:
            paths.append(f'<path d="{d}"/>')
            continue
        cw, fw, colour = ROAD_STYLE.get(road_class, ROAD_STYLE["gemeinde"])
        casing.append(f'<path d="{d}" stroke-width="{cw * scale:.1f}"/>')
        fills.append(f'<path d="{d}" stroke="{colour}" stroke-width="{fw * scale:.1f}"/>')
        label = " ".join(x for x in (ref, name) if x)
        if label and geom.length > labels.get(label, (0, None))[0]:
            labels[label] = (geom.length, geom)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {MAP_W} {MAP_H}" width="170mm" '
             f'height="{170 * MAP_H / MAP_W:.1f}mm" class="map">',
             f'<rect width="{MAP_W}" height="{MAP_H}" fill="#f2efe9"/>', "".join(areas),
             '<g fill="none" stroke="#b9b2a6" stroke-dasharray="3,3" stroke-width="1.2">' + "".join(paths) + "</g>",
             '<g fill="none" stroke="#8a8378" stroke-linecap="round" stroke-linejoin="round">'
             + "".join(casing) + "</g>",
             '<g fill="none" stroke-linecap="round" stroke-linejoin="round">' + "".join(fills) + "</g>"]
    route_lines = "".join(f'<path d="{_path(g, box)}"/>' for g in route if g.geom_type not in ("Point", "MultiPoint"))
    parts.append('<g fill="none" stroke="#2b5f9e" stroke-width="2.5" stroke-dasharray="8,5" '
                 'stroke-linecap="round">' + route_lines + "</g>")
    hl_lines = "".join(f'<path d="{_path(g, box)}"/>' for g in highlight
                       if g.geom_type not in ("Point", "MultiPoint"))
    parts.append('<g fill="none" stroke="#c0262d" stroke-width="6" stroke-linecap="round" stroke-linejoin="round" '
                 'stroke-opacity="0.9">' + hl_lines + "</g>")
    parts.append("".join(_points(g, box, 6, 'fill="#c0262d" stroke="#ffffff" stroke-width="2"') for g in highlight))
    parts.append("".join(_points(g, box, 4.5, 'fill="#2b5f9e" stroke="#ffffff" stroke-width="1.5"') for g in route))
    text_parts = []
    for label, (_, geom) in sorted(labels.items(), key=lambda kv: -kv[1][0])[:10]:
        p = geom.interpolate(0.5, normalized=True)
        x, y = (p.x - box[0]) * MAP_W / (box[2] - box[0]), (box[3] - p.y) * MAP_W / (box[2] - box[0])
        if 20 < x < MAP_W - 20 and 20 < y < MAP_H - 40:
            text_parts.append(f'<text x="{x:.1f}" y="{y:.1f}">{html.escape(label)}</text>')
    parts.append('<g font-family="DejaVu Sans, sans-serif" font-size="14" font-weight="bold" fill="#3a3a3a" '
                 'text-anchor="middle">' + "".join(text_parts) + "</g>")
    parts.append(_scale_bar(box))
    parts.append("</svg>")
    return "".join(parts)


def qr_svg(url: str) -> str:
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    svg = image.to_string(encoding="unicode")
    return svg[svg.index("<svg"):]


def _geoms(features: list[dict[str, Any]]) -> list[Any]:
    return [shapely.geometry.shape(f) for f in features if f]


def map_for(session: Session, tenant_key: str, srid: int, content: dict[str, Any], part: dict[str, Any],
            pieces_crs: int) -> str:
    route = _to_metric(_geoms([f["geometry"] for f in (content.get("sections") or {}).get("features") or []]),
                       parse_crs(content.get("crs")), srid)
    highlight = _to_metric(_geoms([p.get("geometry") for p in part.get("pieces") or []]), pieces_crs, srid)
    return map_svg(session, tenant_key, srid, route, highlight)


def render_pdf(tenant_key: str, context: dict[str, Any]) -> bytes:
    import weasyprint  # deferred: loads Pango/HarfBuzz and parses its stylesheets (~0.6-2.8 s); only workers render

    template = templates.select(tenant_key, ["documents/decision.html.j2"])
    page = template.render(**context)
    # PDF/A-3b: fonts embedded, an sRGB output intent and XMP metadata declaring part 3, conformance B; the
    # signature is added afterwards as an incremental update, which PDF/A allows (tests/permits/test_pdfa.py).
    return weasyprint.HTML(string=page, base_url=str(templates.search_path(tenant_key)[0])).write_pdf(
        pdf_variant="pdf/a-3b", font_config=_fonts())


_FONTS: list[Any] = []


def _fonts() -> Any:
    """One font configuration per process: building it makes Fontconfig scan the fonts (part of the first
    document's time), and WeasyPrint reuses the loaded faces across documents rendered with the same one."""
    from weasyprint.text.fonts import FontConfiguration  # deferred: part of WeasyPrint (see render_pdf)

    if not _FONTS:
        _FONTS.append(FontConfiguration())
    return _FONTS[0]


def legal_basis(kind: str) -> str:
    if kind == "deemed_approval":
        return "§ 127 Abs. 3 Satz 1 TKG (Zustimmungsfiktion) i. V. m. § 127 Abs. 1 TKG"
    return "§ 127 Abs. 1 TKG"


def local(value: datetime | None) -> str | None:
    return templates.de_datetime(value) if value else None


def km(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:,.1f}".replace(",", " ").replace(".", ",")
