"""Spatial data per tenant: administrative areas, road segments, Ortsdurchfahrten, authorities, import log.

Geometries are stored in the tenant's metric CRS (``tenants.srid``); the columns carry no SRID constraint so that
tenants with different CRSs share the tables. The spatial indexes of the small tables lead with ``tenant_key``
(GiST with btree_gist), so a lookup never touches another tenant's rows (and never mixes SRIDs). The road network's
index is a plain geometry GiST (much faster at a million rows): queries on it use only the bounding-box operator
``&&``, which ignores SRIDs, and filter ``tenant_key`` before any exact spatial function runs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Boolean, Computed, DateTime, Float, ForeignKey, Identity, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from breitband.db import Base

ROAD_CLASSES = ("autobahn", "bund", "land", "kreis", "gemeinde")
AUTHORITY_KINDS = ("autobahn", "bund", "land", "kreis", "gemeinde", "other")
PATH_HIGHWAYS = ("footway", "cycleway", "path", "steps", "bridleway")


class AdminArea(Base):
    """Land, Kreis or Gemeinde (BKG VG250/VG5000)."""

    __tablename__ = "admin_areas"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(16))          # land | kreis | gemeinde
    ags: Mapped[str] = mapped_column(String(8))             # 2, 5 or 8 digits
    ars: Mapped[str | None] = mapped_column(String(12))     # 12-digit regional key
    name: Mapped[str] = mapped_column(String(200))
    bez: Mapped[str | None] = mapped_column(String(100))    # Stadt, Gemeinde, Landkreis, Kreisfreie Stadt, ...
    population: Mapped[int | None] = mapped_column(Integer)
    kreisfrei: Mapped[bool] = mapped_column(Boolean, default=False)  # kreisfreie Stadt (Kreis or its Gemeinde)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=-1, spatial_index=False))
    # where the name is written on the map (migration 0016: a generated column)
    label_point: Mapped[Any] = mapped_column(Geometry("POINT", srid=-1, spatial_index=False),
                                             Computed("ST_PointOnSurface(geom)", persisted=True))


class RoadSegment(Base):
    """A piece of an OSM way (long ways are cut into pieces of at most ~200 m for index selectivity)."""

    __tablename__ = "road_segments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    osm_id: Mapped[int | None] = mapped_column(BigInteger)
    ref: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(300))
    highway: Mapped[str | None] = mapped_column(String(50))
    access: Mapped[str | None] = mapped_column(String(50))
    road_class: Mapped[str] = mapped_column(String(16))     # autobahn | bund | land | kreis | gemeinde
    class_source: Mapped[str] = mapped_column(String(16))   # ref | link | highway | default | attribute
    class_ref: Mapped[str | None] = mapped_column(String(100))  # the ref that decided the class (links: joined road)
    is_private: Mapped[bool] = mapped_column(Boolean, default=False)
    is_path: Mapped[bool] = mapped_column(Boolean, default=False)
    geom: Mapped[Any] = mapped_column(Geometry("LINESTRING", srid=-1, spatial_index=False))


class Ortsdurchfahrt(Base):
    """A stretch of a classified road through a built-up area, as imported by the state or drawn by an authority."""

    __tablename__ = "ortsdurchfahrten"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    road_ref: Mapped[str | None] = mapped_column(String(100))
    gemeinde_ags: Mapped[str | None] = mapped_column(String(8))
    name: Mapped[str | None] = mapped_column(String(300))
    is_line: Mapped[bool] = mapped_column(Boolean, default=False)
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=-1, spatial_index=False))


class Authority(Base):
    """The road-authority side of an organisation: which roads it is responsible for."""

    __tablename__ = "authorities"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))           # autobahn | bund | land | kreis | gemeinde | other
    key: Mapped[str | None] = mapped_column(String(8))      # AGS of the Land, Kreis or Gemeinde where one applies
    jurisdiction: Mapped[str] = mapped_column(String(500))  # human-readable: which roads, where


class LayerImport(Base):
    """The last import of a layer per tenant: when, from which files, with which counts and skipped features."""

    __tablename__ = "layer_imports"

    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"), primary_key=True)
    layer: Mapped[str] = mapped_column(String(32), primary_key=True)  # boundaries | roads | ortsdurchfahrten
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sources: Mapped[list[str]] = mapped_column(JSONB, default=list)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


# --- base map (issue 16): from the tenant's OSM extracts, `breitband import basemap` ---------------------------

class BasemapArea(Base):
    """Land use / land cover, water areas and buildings."""

    __tablename__ = "basemap_areas"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    osm_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))            # landuse | water | building
    class_: Mapped[str | None] = mapped_column("class", String(50))  # forest, residential, farmland, water, ...
    name: Mapped[str | None] = mapped_column(String(300))
    area_m2: Mapped[float] = mapped_column(Float)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=-1, spatial_index=False))


class BasemapLine(Base):
    """Waterways, railways, and road labels (named/numbered roads merged into long lines)."""

    __tablename__ = "basemap_lines"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    osm_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))            # water | railway | road_label
    class_: Mapped[str | None] = mapped_column("class", String(50))  # river, stream, rail, tram; road class
    name: Mapped[str | None] = mapped_column(String(300))
    ref: Mapped[str | None] = mapped_column(String(100))
    length_m: Mapped[float] = mapped_column(Float)
    geom: Mapped[Any] = mapped_column(Geometry("LINESTRING", srid=-1, spatial_index=False))


class BasemapPoint(Base):
    """Place names and house numbers."""

    __tablename__ = "basemap_points"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    osm_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))            # place | housenumber
    class_: Mapped[str | None] = mapped_column("class", String(50))  # city, town, village, suburb, ...
    name: Mapped[str | None] = mapped_column(String(300))
    housenumber: Mapped[str | None] = mapped_column(String(50))
    population: Mapped[int | None] = mapped_column(Integer)
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=-1, spatial_index=False))
