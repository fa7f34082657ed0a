"""Route files in every format for tests: the example route (data/examples/route-neu-isenburg.geojson) written with
GDAL (pyogrio) into each format the reader takes, in EPSG:25832 where the format carries a CRS."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pyogrio.raw
import shapely

from breitband.settings import PROJECT_ROOT
from geo.crs import transformer

EXAMPLE = PROJECT_ROOT / "data" / "examples" / "route-neu-isenburg.geojson"


def example_lines(epsg: int = 4326) -> tuple[list, list[str]]:
    doc = json.loads(EXAMPLE.read_text())
    geoms = [shapely.geometry.shape(f["geometry"]) for f in doc["features"]]
    if epsg != 4326:
        t = transformer(4326, epsg)
        geoms = [shapely.transform(g, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1]))) for g in geoms]
    return geoms, [f["properties"].get("name", "") for f in doc["features"]]


def write(path, driver: str, epsg: int | None = 4326, layer: str | None = None, *, declare: bool = True,
          **options) -> None:
    """The example route into ``path`` with GDAL: coordinates in ``epsg`` (None: EPSG:4326 without saying so),
    declared in the file unless ``declare`` is false (formats without a CRS: CSV, DXF)."""
    geoms, names = example_lines(epsg or 4326)
    gtype = "MultiLineString" if driver == "GPX" else "LineString"
    if driver == "GPX":
        geoms = [shapely.MultiLineString([g]) for g in geoms]
    pyogrio.raw.write(str(path), shapely.to_wkb(np.array(geoms, dtype=object)),
                      [np.array(names, dtype=object)], ["Layer" if driver == "DXF" else "name"],  # DXF: fixed columns
                      driver=driver, geometry_type=gtype,
                      crs=f"EPSG:{epsg}" if epsg and declare else None, layer=layer, **options)


def zipped_shapefile(tmp_path, epsg: int | None = 25832, prj: bool = True) -> bytes:
    shp = tmp_path / "shape" / "trasse.shp"
    shp.parent.mkdir()
    write(shp, "ESRI Shapefile", epsg)
    out = tmp_path / "trasse.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for part in shp.parent.iterdir():
            if prj or part.suffix != ".prj":
                zf.write(part, f"trasse/{part.name}")
    return out.read_bytes()


def made(tmp_path, kind: str) -> tuple[bytes, dict]:
    """(file bytes, extra request parameters) of the example route in a format."""
    if kind == "shapefile-zip":
        return zipped_shapefile(tmp_path), {}
    if kind == "csv-wkt":
        write(tmp_path / "r.csv", "CSV", None, layer_options={"GEOMETRY": "AS_WKT"})
        return (tmp_path / "r.csv").read_bytes(), {"crs": "EPSG:4326"}
    if kind == "csv-wkt-25832":
        write(tmp_path / "r.csv", "CSV", 25832, declare=False, layer_options={"GEOMETRY": "AS_WKT"})
        return (tmp_path / "r.csv").read_bytes(), {"crs": "EPSG:25832"}
    if kind == "dxf":           # DXF carries no CRS: the parameter is required
        write(tmp_path / "r.dxf", "DXF", 25832, declare=False)
        return (tmp_path / "r.dxf").read_bytes(), {"crs": "EPSG:25832"}
    if kind == "kmz":
        kml, _ = made(tmp_path, "kml")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr("doc.kml", kml)
        return out.getvalue(), {}
    if kind == "geojson-25832":
        geoms, _ = example_lines(25832)
        doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:25832"}},
               "features": [{"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(g)}
                            for g in geoms]}
        return json.dumps(doc).encode(), {}
    driver, suffix, epsg = {"gpkg": ("GPKG", "gpkg", 25832), "kml": ("KML", "kml", 4326),
                            "gml": ("GML", "gml", 25832), "gpx": ("GPX", "gpx", 4326),
                            "flatgeobuf": ("FlatGeobuf", "fgb", 25832)}[kind]
    path = tmp_path / f"route.{suffix}"
    write(path, driver, epsg)
    return path.read_bytes(), {}


def resolve(client, headers, body: bytes, **params):
    return client.post("/api/v1/resolve", headers=headers, params=params or None, content=body)


def summary(result) -> dict:
    return {a["name"]: a["length_m"] for a in result["authorities"]}
