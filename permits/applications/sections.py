"""The route of an application: GeoJSON features with the permit attributes of each section.

* Lines (LineString, MultiLineString) are trench sections: ``laying_method`` (required), ``depth_cm`` and
  ``width_cm`` (required unless the line is aerial or runs in an existing duct), and ``reduced_depth``, which must be
  stated expressly (true or false) for micro-/mini-trenching and milling (§ 127 (7) TKG); for other methods it
  defaults to false.
* Points and polygons carry ``kind``: pit, cabinet, manhole, house_connection (Point or Polygon) or
  construction_area (Polygon or MultiPolygon).

Other properties (GIS exports carry many) are kept as they are. The geometry itself (coordinates, validity, CRS,
territory) is checked by the resolution (``geo.service``) when the application is submitted; here only the shape
of the GeoJSON and the permit attributes are checked, each error with its place (``sections.features[i]...``).
"""

from __future__ import annotations

from typing import Any

from breitband.errors import UnprocessableEntity
from permits.models import NO_TRENCH_METHODS, REDUCED_DEPTH_METHODS, FeatureKind, LayingMethod

LINE_TYPES = {"LineString", "MultiLineString"}
POINT_TYPES = {"Point", "MultiPoint"}
AREA_TYPES = {"Polygon", "MultiPolygon"}
GEOMETRY_TYPES = LINE_TYPES | POINT_TYPES | AREA_TYPES
KIND_GEOMETRIES = {
    FeatureKind.pit: POINT_TYPES | AREA_TYPES,
    FeatureKind.cabinet: POINT_TYPES | AREA_TYPES,
    FeatureKind.manhole: POINT_TYPES | AREA_TYPES,
    FeatureKind.house_connection: POINT_TYPES | AREA_TYPES | LINE_TYPES,
    FeatureKind.construction_area: AREA_TYPES,
}
PERMIT_KEYS = ("kind", "laying_method", "depth_cm", "width_cm", "reduced_depth", "label")


def _int_cm(value: Any, field: str, errors: list[dict[str, str]], *, maximum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        errors.append({"field": field, "message": "must be a whole number of centimetres"})
        return None
    if not 0 < value <= maximum:
        errors.append({"field": field, "message": f"must be between 1 and {maximum} cm"})
        return None
    return int(value)


def _check_feature(feature: Any, where: str, errors: list[dict[str, str]]) -> dict[str, Any] | None:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        errors.append({"field": where, "message": "must be a GeoJSON Feature"})
        return None
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in GEOMETRY_TYPES:
        gtype = geometry.get("type") if isinstance(geometry, dict) else None
        errors.append({"field": f"{where}.geometry", "message": f"geometry type {gtype!r} is not supported; use "
                                                                "LineString, MultiLineString, Point, MultiPoint, "
                                                                "Polygon or MultiPolygon"})
        return None
    if not isinstance(geometry.get("coordinates"), list) or not geometry["coordinates"]:
        errors.append({"field": f"{where}.geometry.coordinates", "message": "coordinates are missing or empty"})
        return None
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        errors.append({"field": f"{where}.properties", "message": "must be an object"})
        return None
    p = f"{where}.properties"
    gtype = geometry["type"]
    out = dict(props)
    kind_raw = props.get("kind")
    try:
        kind = FeatureKind(kind_raw) if kind_raw is not None else (
            FeatureKind.trench if gtype in LINE_TYPES else None)
    except ValueError:
        errors.append({"field": f"{p}.kind", "message": f"unknown kind {kind_raw!r}; one of "
                                                        + ", ".join(k.value for k in FeatureKind)})
        return None
    if kind is None:
        errors.append({"field": f"{p}.kind", "message": "points and areas need a kind: pit, cabinet, manhole, "
                                                        "house_connection or construction_area"})
        return None
    out["kind"] = kind.value
    label = props.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > 200):
        errors.append({"field": f"{p}.label", "message": "must be a text of at most 200 characters"})

    if kind is FeatureKind.trench:
        if gtype not in LINE_TYPES:
            errors.append({"field": f"{where}.geometry", "message": f"a trench is a line, not a {gtype}"})
            return None
        method_raw = props.get("laying_method")
        if method_raw is None:
            errors.append({"field": f"{p}.laying_method", "message": "every trench section needs a laying method: "
                                                                     + ", ".join(m.value for m in LayingMethod)})
            return None
        try:
            method = LayingMethod(method_raw)
        except ValueError:
            errors.append({"field": f"{p}.laying_method", "message": f"unknown laying method {method_raw!r}; one of "
                                                                     + ", ".join(m.value for m in LayingMethod)})
            return None
        out["laying_method"] = method.value
        depth = _int_cm(props.get("depth_cm"), f"{p}.depth_cm", errors, maximum=1000)
        width = _int_cm(props.get("width_cm"), f"{p}.width_cm", errors, maximum=500)
        if method not in NO_TRENCH_METHODS:
            for name, value in (("depth_cm", depth), ("width_cm", width)):
                if value is None and props.get(name) is None:
                    errors.append({"field": f"{p}.{name}", "message": f"required for {method.value}"})
        out["depth_cm"], out["width_cm"] = depth, width
        reduced = props.get("reduced_depth")
        if reduced is not None and not isinstance(reduced, bool):
            errors.append({"field": f"{p}.reduced_depth", "message": "must be true or false"})
        elif reduced is None and method in REDUCED_DEPTH_METHODS:
            errors.append({"field": f"{p}.reduced_depth", "message": f"{method.value} needs an express statement "
                                                                     "whether the line is laid at reduced depth "
                                                                     "(§ 127 (7) TKG): true or false"})
        out["reduced_depth"] = bool(reduced)
        return out

    if gtype not in KIND_GEOMETRIES[kind]:
        errors.append({"field": f"{where}.geometry", "message": f"a {kind.value} cannot be a {gtype}"})
        return None
    for name in ("laying_method", "reduced_depth"):
        if props.get(name) is not None:
            errors.append({"field": f"{p}.{name}", "message": f"belongs to trench sections, not to a {kind.value}"})
    for name, maximum in (("depth_cm", 1000), ("width_cm", 10000)):
        if props.get(name) is not None:
            out[name] = _int_cm(props.get(name), f"{p}.{name}", errors, maximum=maximum)
    return out


def normalise_sections(data: Any, field: str = "sections") -> dict[str, Any]:
    """Validate a Feature or FeatureCollection; → a FeatureCollection with normalised properties, or 422."""
    errors: list[dict[str, str]] = []
    if not isinstance(data, dict) or data.get("type") not in ("FeatureCollection", "Feature"):
        raise UnprocessableEntity(f"{field}: must be a GeoJSON FeatureCollection or Feature (geometries need "
                                  "properties such as the laying method)", type="invalid-sections",
                                  errors=[{"field": field, "message": "not a FeatureCollection or Feature"}])
    if data["type"] == "Feature":
        features_in, prefix = [data], f"{field}"
    else:
        features_in, prefix = data.get("features"), f"{field}.features"
        if not isinstance(features_in, list) or not features_in:
            raise UnprocessableEntity(f"{field}: the FeatureCollection has no features", type="invalid-sections",
                                      errors=[{"field": f"{field}.features", "message": "no features"}])
    features = []
    for i, feature in enumerate(features_in):
        where = prefix if data["type"] == "Feature" else f"{prefix}[{i}]"
        out = _check_feature(feature, where, errors)
        if out is not None:
            features.append({"type": "Feature", "geometry": feature["geometry"], "properties": out})
    if errors:
        raise UnprocessableEntity("; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
                                  + (f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""),
                                  type="invalid-sections", errors=errors)
    return {"type": "FeatureCollection", "features": features}


def summary(sections: dict[str, Any] | None) -> dict[str, Any]:
    """Counts per laying method and kind, and whether reduced depth is declared anywhere."""
    if not sections:
        return {"features": 0, "laying_methods": {}, "kinds": {}, "reduced_depth": False}
    methods: dict[str, int] = {}
    kinds: dict[str, int] = {}
    reduced = False
    for f in sections.get("features", []):
        props = f.get("properties", {})
        kinds[props.get("kind")] = kinds.get(props.get("kind"), 0) + 1
        if props.get("laying_method"):
            methods[props["laying_method"]] = methods.get(props["laying_method"], 0) + 1
        reduced = reduced or bool(props.get("reduced_depth"))
    return {"features": len(sections.get("features", [])), "laying_methods": methods, "kinds": kinds,
            "reduced_depth": reduced}


# Shapefile column names are cut to 10 characters: what a planner's "laying_method" becomes in a .dbf
_TRUNCATED = {"laying_met": "laying_method", "reduced_de": "reduced_depth"}
_TRUE, _FALSE = {"true", "t", "yes", "y", "ja", "j", "1"}, {"false", "f", "no", "n", "nein", "0"}


def _as_bool(value: Any) -> Any:
    """A yes/no as GIS files write it (a logical column, 0/1, "T"/"F", "ja"/"nein") → bool; anything else as it
    is (the check then names it)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return value


def from_file(route: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The sections of a route read from a file (``geo.service.read_route``): the file's attributes as the
    properties (Shapefile's truncated ``laying_met``/``reduced_de`` read as ``laying_method``/``reduced_depth``;
    yes/no columns as booleans; empty values dropped), and for every line the ``defaults`` (laying_method,
    depth_cm, width_cm, reduced_depth given with the upload) where the file has no value. The result is checked
    by ``normalise_sections`` like sections sent as JSON."""
    features = []
    for feature in route["features"]:
        props = {_TRUNCATED.get(k.lower(), k): v for k, v in (feature.get("properties") or {}).items()
                 if v is not None and v != ""}
        if "reduced_depth" in props:
            props["reduced_depth"] = _as_bool(props["reduced_depth"])
        if feature["geometry"]["type"] in LINE_TYPES and props.get("kind", "trench") == "trench":
            for key, value in defaults.items():
                if value is not None:
                    props.setdefault(key, value)
        features.append({"type": "Feature", "geometry": feature["geometry"], "properties": props})
    return {"type": "FeatureCollection", "features": features}
