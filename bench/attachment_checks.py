"""The cost of checking an attachment (``permits.applications.attachments.identify``) beside the cost every upload
already has: hashing the same bytes with SHA-256 (the baseline, measured in the same run).

    .venv/bin/python bench/attachment_checks.py [--repeat 5]

Files, each at or near a limit of the default settings (25 MiB per file, zips: 200 members, 256 MiB unpacked,
100 : 1):
- a 25 MiB PDF (sniffed by its first bytes only);
- a Shapefile zip of about 25 MiB packed, written by GDAL (every member read through, CRC checked);
- the heaviest zip the limits let through: a member of 254 MiB compressed just under 100 : 1;
- a GeoJSON of about 24 MiB (recognised by its start, UTF-8 checked throughout);
- a GeoPackage 1.0 without the application_id (the SQLite schema looked at).
Prints per file: size, median seconds of ``identify`` and of SHA-256 over the file, and their ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pyogrio.raw
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from breitband.zips import HEAD_BYTES, ZipLimits  # noqa: E402
from permits.applications.attachments import identify  # noqa: E402

MIB = 1 << 20


def lines(n: int) -> np.ndarray:
    rng = np.random.default_rng(14)
    start = rng.uniform([470000, 5530000], [480000, 5540000], size=(n, 2))
    steps = rng.normal(0, 20, size=(n, 20, 2)).cumsum(axis=1)
    return shapely.linestrings(start[:, None, :] + steps)


def shapefile_zip(tmp: Path, n: int) -> Path:
    shp = tmp / "shape" / "trasse.shp"
    shp.parent.mkdir()
    geoms = lines(n)
    names = np.array([f"Abschnitt {i}" for i in range(n)], dtype=object)
    pyogrio.raw.write(str(shp), shapely.to_wkb(geoms), [names], ["name"], driver="ESRI Shapefile",
                      geometry_type="LineString", crs="EPSG:25832")
    out = tmp / "trasse.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for part in shp.parent.iterdir():
            zf.write(part, f"trasse/{part.name}")
    return out


def heaviest_zip(tmp: Path) -> Path:
    """A .dbf member of 254 MiB whose compression ratio is just under the limit: random bytes thinly
    spread over zeros, written in 1 MiB blocks."""
    rng = np.random.default_rng(7)
    block = np.zeros(MIB, dtype=np.uint8)
    block[rng.choice(MIB, size=2350, replace=False)] = rng.integers(1, 255, size=2350, dtype=np.uint8)
    out = tmp / "heavy.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("trasse/trasse.shp", "w") as m:
            m.write(b"\x00\x00\x27\x0a" + bytes(96))
        with zf.open("trasse/trasse.shx", "w") as m:
            m.write(b"\x00\x00\x27\x0a" + bytes(96))
        with zf.open("trasse/trasse.dbf", "w", force_zip64=True) as m:
            m.write(b"\x03" + bytes(31))
            for _ in range(254):
                block[: 16] = rng.integers(0, 255, size=16, dtype=np.uint8)
                m.write(block.tobytes())
    return out


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pdf = tmp / "plan.pdf"
        pdf.write_bytes(b"%PDF-1.7\n" + os.urandom(25 * MIB - 9))
        geojson = tmp / "route.geojson"
        feats = [{"type": "Feature", "properties": {"n": i}, "geometry": shapely.geometry.mapping(g)}
                 for i, g in enumerate(lines(28000))]
        geojson.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
        gpkg = tmp / "alt.gpkg"
        pyogrio.raw.write(str(gpkg), shapely.to_wkb(lines(20000)), [], [], driver="GPKG",
                          geometry_type="LineString", crs="EPSG:25832")
        data = bytearray(gpkg.read_bytes())
        data[68:72] = bytes(4)
        gpkg.write_bytes(bytes(data))
        files = [("PDF", pdf, "plan.pdf"), ("Shapefile zip", shapefile_zip(tmp, 60000), "trasse.zip"),
                 ("heaviest zip allowed", heaviest_zip(tmp), "heavy.zip"), ("GeoJSON", geojson, "route.geojson"),
                 ("GeoPackage 1.0", gpkg, "alt.gpkg")]
        print(f"{'file':<22} {'size MiB':>9} {'unpacked':>9} {'identify s':>11} {'sha256 s':>9} {'ratio':>7}",
              " stored as")
        for label, path, name in files:
            with path.open("rb") as f:
                head = f.read(HEAD_BYTES)
            fmt = identify(path, head, name, None, ZipLimits())
            t_check = timed(lambda: identify(path, head, name, None, ZipLimits()), args.repeat)  # noqa: B023
            t_hash = timed(lambda: hashlib.file_digest(path.open("rb"), "sha256"), args.repeat)  # noqa: B023
            unpacked = path.stat().st_size
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as zf:
                    unpacked = sum(i.file_size for i in zf.infolist())
            size = path.stat().st_size
            print(f"{label:<22} {size / MIB:>9.1f} {unpacked / MIB:>9.1f} {t_check:>11.3f} {t_hash:>9.3f} "
                  f"{t_check / t_hash:>7.2f}  {fmt.content_type}")


if __name__ == "__main__":
    main()
