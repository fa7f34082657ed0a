"""CRS handling: parse what clients send, cache transformers (always_xy), check areas of use."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from breitband.errors import UnprocessableEntity

_OGC_URN = re.compile(r"^urn:ogc:def:crs:(?:EPSG|epsg):[^:]*:(\d+)$")
_OGC_URL = re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/0/(\d+)$")
_CRS84 = {"urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
          "CRS84", "OGC:CRS84"}


def parse_crs(value: str | int | None, *, field: str = "crs") -> int:
    """Return the EPSG code for 'EPSG:25832', '25832', OGC URNs/URLs or CRS84 (= EPSG:4326 in x/y order)."""
    if value is None or value == "":
        return 4326
    text = str(value).strip()
    if text in _CRS84:
        return 4326
    for pattern in (_OGC_URN, _OGC_URL):
        m = pattern.match(text)
        if m:
            text = m.group(1)
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        crs = _crs(text)
    except CRSError:
        raise UnprocessableEntity(f"Unknown CRS {value!r}: give an EPSG code such as EPSG:4326 or EPSG:25832",
                                  type="unknown-crs", field=field) from None
    epsg = crs.to_epsg()
    if epsg is None:
        raise UnprocessableEntity(f"CRS {value!r} has no EPSG code; give one such as EPSG:25832",
                                  type="unknown-crs", field=field)
    return epsg


@lru_cache(maxsize=64)
def _crs(text: str) -> CRS:
    return CRS.from_user_input(text)


@lru_cache(maxsize=64)
def crs_of(epsg: int) -> CRS:
    return CRS.from_epsg(epsg)


@lru_cache(maxsize=256)
def transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(crs_of(src), crs_of(dst), always_xy=True)


def transform_geometry(geom: Any, src: int, dst: int) -> Any:
    """A shapely geometry from EPSG:src into EPSG:dst (x/y order, vectorised); the same object when src == dst."""
    if src == dst:
        return geom
    t = transformer(src, dst)
    return shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


@lru_cache(maxsize=64)
def area_of_use(epsg: int) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) in degrees, or None when the CRS does not say."""
    aou = crs_of(epsg).area_of_use
    if aou is None:
        return None
    return (aou.west, aou.south, aou.east, aou.north)


def is_geographic(epsg: int) -> bool:
    return crs_of(epsg).is_geographic
