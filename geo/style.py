"""The MapLibre style we serve (``/styles/breitband.json``): a calm base map from our own tiles with labels in
glyphs we make ourselves (``/fonts/...``, geo/glyphs.py), the road classes on top in the colours the UI's legend
uses, and the caller's applications above everything.

Design rules (issue 16):
- the base is muted (land use in pale tints, water pale blue, buildings light grey-brown from z14), so that the
  roads and routes carry the colour;
- road classes keep their colours (``ROAD_COLOURS``, also in the legend): blue, red, orange, green, grey;
- routes and cases never use those hues: they are drawn with a dark casing and a core in violet, teal, yellow,
  white or brown (permits/gis/tiles.py, web/src/map.js), and the viewer's own part has a soft violet halo;
- labels never overlap (MapLibre's collision detection; no ``*-allow-overlap``): symbol layers listed later are
  placed first, so place and Gemeinde names win over street names, street names over house numbers;
- no external URL: sources, glyphs are this service's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from geo.glyphs import available_fonts
from geo.tiles import ATTRIBUTION, CallerLayer

ROAD_COLOURS = {"autobahn": "#1f5fbf", "bund": "#d7301f", "land": "#f39c12", "kreis": "#2e9d3a",
                "gemeinde": "#8c8c8c"}
# the text colour of a road number: the class colour, darkened so that it reads on the pale base
REF_TEXT = {"autobahn": "#174a94", "bund": "#a8240f", "land": "#a35f00", "kreis": "#1f6b27", "gemeinde": "#555555"}
LANDUSE_COLOURS = {
    "forest": "#d5e5c8", "wood": "#d5e5c8", "scrub": "#dbe8cf", "heath": "#e5ead2",
    "grass": "#e2eed6", "meadow": "#e2eed6", "grassland": "#e2eed6", "village_green": "#e2eed6",
    "recreation_ground": "#e2eed6", "park": "#dcebd0", "garden": "#dcebd0", "nature_reserve": "#e2eed6",
    "golf_course": "#dcebd0", "pitch": "#d9e9cf", "playground": "#dcebd0", "sports_centre": "#e6ecdd",
    "stadium": "#e6ecdd", "track": "#e6ecdd", "allotments": "#e4ead3", "cemetery": "#d9e4d2",
    "farmland": "#f1eedf", "farmyard": "#ece4d6", "orchard": "#e4ecd2", "vineyard": "#e4ecd2",
    "residential": "#ebe7e1", "commercial": "#efe4e1", "retail": "#efe4e1", "industrial": "#e8e2ea",
    "railway": "#e6e2e0", "construction": "#ebe8dc", "brownfield": "#ebe8dc", "greenfield": "#ebe8dc",
    "military": "#ece2dc", "education": "#efe9dc", "religious": "#e8e4de",
    "wetland": "#dde9e6", "sand": "#f2ead2", "beach": "#f2ead2", "bare_rock": "#e6e2dc",
}
WATER = "#b9d3e8"
WATER_LINE = "#9cc0de"
WATER_TEXT = "#4a7aa3"
BUILDING = "#ddd5cc"
BUILDING_OUTLINE = "#cbbfb3"
RAIL = "#9a9a9a"
BACKGROUND = "#f4f2ee"
TEXT = "#333333"
HALO = "#ffffff"
FONT = "DejaVu Sans"
FONT_BOLD = "DejaVu Sans Bold"
FONT_ITALIC = "DejaVu Sans Oblique"


def _match(prop: str, mapping: dict[str, str], default: str) -> list:
    return ["match", ["get", prop], *[v for k, c in mapping.items() for v in (k, c)], default]


def _src(name: str) -> dict[str, str]:
    return {"source": name, "source-layer": name}


def _base_layers() -> list[dict[str, Any]]:
    """Background, Gemeinde areas, land use, water, buildings, railways: below the roads."""
    return [
        {"id": "background", "type": "background", "paint": {"background-color": BACKGROUND}},
        {"id": "gemeinden-fill", "type": "fill", **_src("boundaries"),
         "filter": ["==", ["get", "level"], "gemeinde"],
         "paint": {"fill-color": "#fbfaf7", "fill-opacity": 0.8}},
        {"id": "landuse", "type": "fill", **_src("basemap_areas"), "filter": ["==", ["get", "kind"], "landuse"],
         "paint": {"fill-color": _match("class", LANDUSE_COLOURS, "#ebe8e0"), "fill-opacity": 0.9}},
        {"id": "water-area", "type": "fill", **_src("basemap_areas"), "filter": ["==", ["get", "kind"], "water"],
         "paint": {"fill-color": WATER}},
        {"id": "water-line", "type": "line", **_src("basemap_lines"), "filter": ["==", ["get", "kind"], "water"],
         "layout": {"line-cap": "round", "line-join": "round"},
         "paint": {"line-color": WATER_LINE,
                   "line-width": ["interpolate", ["linear"], ["zoom"], 8,
                                  ["match", ["get", "class"], ["river", "canal"], 1.2, 0.4],
                                  16, ["match", ["get", "class"], ["river", "canal"], 6, 2]]}},
        {"id": "building", "type": "fill", **_src("basemap_areas"), "minzoom": 14,
         "filter": ["==", ["get", "kind"], "building"],
         "paint": {"fill-color": BUILDING, "fill-outline-color": BUILDING_OUTLINE,
                   "fill-opacity": ["interpolate", ["linear"], ["zoom"], 14, 0.5, 16, 1]}},
        {"id": "railway", "type": "line", **_src("basemap_lines"), "filter": ["==", ["get", "kind"], "railway"],
         "paint": {"line-color": RAIL,
                   "line-width": ["interpolate", ["linear"], ["zoom"], 8, 0.6, 16, 2.5]}},
        {"id": "railway-dash", "type": "line", **_src("basemap_lines"), "minzoom": 13,
         "filter": ["all", ["==", ["get", "kind"], "railway"], ["!=", ["get", "class"], "tram"]],
         "paint": {"line-color": "#ffffff", "line-width": ["interpolate", ["linear"], ["zoom"], 13, 0.8, 16, 1.5],
                   "line-dasharray": [3, 3]}},
        {"id": "boundary-gemeinde", "type": "line", **_src("boundaries"),
         "filter": ["==", ["get", "level"], "gemeinde"], "minzoom": 8,
         "paint": {"line-color": "#a39fb0", "line-width": 0.8, "line-dasharray": [3, 2]}},
        {"id": "boundary-kreis", "type": "line", **_src("boundaries"), "filter": ["==", ["get", "level"], "kreis"],
         "paint": {"line-color": "#8c7fa0", "line-width": 1.4}},
        {"id": "boundary-land", "type": "line", **_src("boundaries"), "filter": ["==", ["get", "level"], "land"],
         "paint": {"line-color": "#5b4b78", "line-width": 2.5}},
    ]


def _road_layers() -> list[dict[str, Any]]:
    class_colour = _match("road_class", ROAD_COLOURS, ROAD_COLOURS["gemeinde"])
    class_width = ["match", ["get", "road_class"], "autobahn", 3.0, "bund", 2.4, "land", 2.0, "kreis", 1.6, 1.0]
    # higher is drawn later (on top): Autobahn over Bundesstraße over ... over Gemeindestraße
    sort_key = ["match", ["get", "road_class"], "autobahn", 5, "bund", 4, "land", 3, "kreis", 2, 1]
    def width_plus(extra: float) -> list:
        return ["interpolate", ["exponential", 1.6], ["zoom"], 6, ["+", ["*", 0.4, class_width], extra],
                12, ["+", ["*", 1.2, class_width], extra], 16, ["+", ["*", 4, class_width], extra]]

    width = ["interpolate", ["exponential", 1.6], ["zoom"],
             6, ["*", 0.4, class_width], 12, ["*", 1.2, class_width], 16, ["*", 4, class_width]]
    return [
        {"id": "roads-casing", "type": "line", **_src("roads"), "minzoom": 13,
         "filter": ["!=", ["get", "is_private"], True],
         "layout": {"line-cap": "round", "line-join": "round", "line-sort-key": sort_key},
         "paint": {"line-color": "#ffffff", "line-width": width_plus(2), "line-opacity": 0.9}},
        {"id": "roads-public", "type": "line", **_src("roads"),
         "filter": ["!=", ["get", "is_private"], True],
         "layout": {"line-cap": "round", "line-join": "round", "line-sort-key": sort_key},
         "paint": {"line-color": class_colour, "line-width": width}},
        {"id": "roads-private", "type": "line", **_src("roads"),
         "filter": ["==", ["get", "is_private"], True],
         "layout": {"line-sort-key": sort_key},
         "paint": {"line-color": class_colour, "line-width": width, "line-dasharray": [2, 2]}},
    ]


def _halo(width: float = 1.6) -> dict[str, Any]:
    return {"text-halo-color": HALO, "text-halo-width": width, "text-halo-blur": 0.5}


def _label_layers() -> list[dict[str, Any]]:
    """Symbol layers, lowest priority first (MapLibre places the later ones first)."""
    label = ["==", ["get", "kind"], "road_label"]
    return [
        {"id": "housenumber", "type": "symbol", **_src("basemap_points"), "minzoom": 17,
         "filter": ["==", ["get", "kind"], "housenumber"],
         "layout": {"text-field": ["get", "housenumber"], "text-font": [FONT], "text-size": 10},
         "paint": {"text-color": "#7a6f66", **_halo(1.2)}},
        {"id": "water-name", "type": "symbol", **_src("basemap_lines"), "minzoom": 12,
         "filter": ["all", ["==", ["get", "kind"], "water"], ["has", "name"]],
         "layout": {"symbol-placement": "line", "text-field": ["get", "name"], "text-font": [FONT_ITALIC],
                    "text-size": 11, "symbol-spacing": 400},
         "paint": {"text-color": WATER_TEXT, **_halo(1.2)}},
        {"id": "street-name", "type": "symbol", **_src("basemap_lines"), "minzoom": 13,
         "filter": ["all", label, ["has", "name"]],
         "layout": {"symbol-placement": "line", "text-field": ["get", "name"], "text-font": [FONT],
                    "text-size": ["interpolate", ["linear"], ["zoom"], 13, 10, 17, 13],
                    "symbol-spacing": 300, "text-max-angle": 30, "text-padding": 2},
         "paint": {"text-color": TEXT, **_halo(1.8)}},
        {"id": "road-ref", "type": "symbol", **_src("basemap_lines"), "minzoom": 8,
         "filter": ["all", label, ["has", "ref"], ["!=", ["get", "class"], "gemeinde"]],
         "layout": {"symbol-placement": "line", "text-field": ["get", "ref"], "text-font": [FONT_BOLD],
                    "text-size": ["interpolate", ["linear"], ["zoom"], 8, 9, 16, 12],
                    "symbol-spacing": 350, "text-rotation-alignment": "viewport", "text-padding": 6},
         "paint": {"text-color": _match("class", REF_TEXT, REF_TEXT["gemeinde"]), **_halo(2.2)}},
        {"id": "place-minor", "type": "symbol", **_src("basemap_points"), "minzoom": 12,
         "filter": ["all", ["==", ["get", "kind"], "place"],
                    ["match", ["get", "class"], ["suburb", "borough", "quarter", "hamlet", "neighbourhood",
                                                 "isolated_dwelling"], True, False]],
         "layout": {"text-field": ["get", "name"], "text-font": [FONT], "text-transform": "uppercase",
                    "text-letter-spacing": 0.08,
                    "text-size": ["match", ["get", "class"], ["suburb", "borough"], 12, 10], "text-padding": 4},
         "paint": {"text-color": "#5d5d5d", **_halo(1.8)}},
        # zoomed in, the Gemeinde's name in every tile of it (MapLibre labels a polygon once per tile), so that a
        # view inside a town always says where it is, even where the OSM extract has no place names
        {"id": "gemeinde-name-area", "type": "symbol", **_src("boundaries"), "minzoom": 12,
         "filter": ["==", ["get", "level"], "gemeinde"],
         "layout": {"text-field": ["get", "name"], "text-font": [FONT_ITALIC], "text-size": 15,
                    "text-padding": 40, "text-letter-spacing": 0.04},
         "paint": {"text-color": "#7a6c93", "text-opacity": 0.85, **_halo(2)}},
        {"id": "gemeinde-name", "type": "symbol", **_src("admin_labels"), "minzoom": 9, "maxzoom": 12,
         "filter": ["==", ["get", "level"], "gemeinde"],
         "layout": {"text-field": ["get", "name"], "text-font": [FONT_ITALIC],
                    "text-size": ["interpolate", ["linear"], ["zoom"], 9, 11, 14, 14], "text-padding": 6},
         "paint": {"text-color": "#5b4b78", **_halo(2)}},
        {"id": "place-major", "type": "symbol", **_src("basemap_points"),
         "filter": ["all", ["==", ["get", "kind"], "place"],
                    ["match", ["get", "class"], ["city", "town", "village"], True, False]],
         "layout": {"text-field": ["get", "name"], "text-font": [FONT_BOLD], "text-padding": 6,
                    "text-size": ["match", ["get", "class"], "city", 17, "town", 14, 12],
                    "symbol-sort-key": ["match", ["get", "class"], "city", 1, "town", 2, 3]},
         "paint": {"text-color": TEXT, **_halo(2.2)}},
        {"id": "kreis-name", "type": "symbol", **_src("admin_labels"), "minzoom": 6, "maxzoom": 10,
         "filter": ["==", ["get", "level"], "kreis"],
         "layout": {"text-field": ["get", "name"], "text-font": [FONT_BOLD], "text-size": 12,
                    "text-transform": "uppercase", "text-letter-spacing": 0.06, "text-padding": 8},
         "paint": {"text-color": "#6f6189", **_halo(2)}},
    ]


def style(base_url: str, tenant_key: str, bounds: list[float] | None, *,
          caller_layers: Sequence[CallerLayer]) -> dict[str, Any]:
    """A MapLibre style (spec v8) whose only sources and glyphs are this service's. ``caller_layers``: per-caller
    layers drawn on top (for a caller with a token; their sources name no tenant)."""
    base = base_url.rstrip("/")
    sources: dict[str, Any] = {
        name: {"type": "vector", "url": f"{base}/tiles/{name}.json?tenant={tenant_key}", "attribution": ATTRIBUTION}
        for name in ("boundaries", "admin_labels", "basemap_areas", "basemap_lines", "basemap_points", "roads")
    }
    layers = _base_layers() + _road_layers()
    for layer in caller_layers:
        sources[layer.name] = {"type": "vector", "url": f"{base}/tiles/{layer.name}.json"}
        layers += layer.style_layers()
    # labels above everything, routes included: a name is never hidden under a line
    layers += _label_layers()
    out: dict[str, Any] = {
        "version": 8,
        "name": "Breitband",
        "metadata": {"breitband:tenant": tenant_key,
                     "breitband:note": "Sources and glyphs are this service's: no external URLs, so the map works "
                                       "in a closed network.",
                     "breitband:fonts": available_fonts(),
                     "breitband:road_colours": ROAD_COLOURS},
        "glyphs": f"{base}/fonts/{{fontstack}}/{{range}}.pbf",
        "sources": sources,
        "layers": layers,
    }
    if bounds:
        out["center"] = [round((bounds[0] + bounds[2]) / 2, 5), round((bounds[1] + bounds[3]) / 2, 5)]
        out["zoom"] = 8
    return out


__all__ = ["ROAD_COLOURS", "style"]
