"""Shared parts of the geo imports: reading GIS files, reprojection, the summary, the import log, errors, and the
administrative area as read from the boundaries (which the authority directory is derived from).

Every importer works inside the caller's transaction and never commits: a layer is replaced by deleting the tenant's
rows of that layer and writing the new ones, so a failed import leaves the previous layer untouched.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from sqlalchemy import func, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from tqdm import tqdm

from breitband.errors import NotFound, UnprocessableEntity
from breitband.models import Tenant
from geo.models import LayerImport
from geo.rules import TenantRules, parse_rules

MAX_SKIP_EXAMPLES = 200  # skipped features listed one by one in the summary (all are counted by reason)
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
GEMEINDEFREI_BEZ = "gemeindefreies gebiet"


def bad_file(path: Path | str, what: str, type: str = "bad-import-file") -> UnprocessableEntity:
    """The error for a file that cannot be imported: names the file and what is wrong with it."""
    return UnprocessableEntity(f"{path}: {what}", type=type, title="File cannot be imported")


def check_exists(path: Path) -> None:
    if not path.exists():
        raise bad_file(path, "file does not exist", "import-file-missing")
    if path.is_dir():
        raise bad_file(path, "is a directory, not a file", "import-file-missing")


# --- tenant ---------------------------------------------------------------------------------------------------

def load_tenant(session: Session, tenant_key: str) -> tuple[Tenant, TenantRules]:
    tenant = session.get(Tenant, tenant_key)
    if tenant is None:
        raise NotFound(f"No tenant {tenant_key!r}", type="tenant-not-found")
    try:
        rules = parse_rules(tenant.rules or {}, tenant_key)
    except UnprocessableEntity as exc:
        raise UnprocessableEntity(
            f"Tenant {tenant_key!r} has no valid rules, which the import needs ({exc.detail}); set them with "
            f"`breitband tenant create {tenant_key} --rules FILE --update`", type="invalid-rules") from None
    return tenant, rules


def lock_layer(session: Session, tenant_key: str, layer: str) -> None:
    """Serialise concurrent imports of the same layer of a tenant (released at the end of the transaction)."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"geo-import:{tenant_key}:{layer}"})


# --- reading GIS files ----------------------------------------------------------------------------------------

@dataclass
class VectorLayer:
    """One layer of a GIS file as arrays: attribute columns (looked up case-insensitively) and shapely geometries."""

    path: Path
    crs: CRS
    columns: dict[str, np.ndarray]
    geoms: np.ndarray
    fields: list[str] = field(default_factory=list)      # the column names as the file writes them

    def __len__(self) -> int:
        return len(self.geoms)

    def column(self, *names: str) -> np.ndarray | None:
        for name in names:
            col = self.columns.get(name.lower())
            if col is not None:
                return col
        return None


def read_vector(path: Path, required: tuple[tuple[str, ...], ...] = ()) -> VectorLayer:
    """Read a GeoJSON, Shapefile, GeoPackage (anything GDAL reads) with pyogrio: every layer with geometries, one
    after the other (a GeoPackage of VG250 with the layers Land, Kreise and Gemeinden gives all three; a layer
    without one of the others' attributes has None there). All layers must be in the same CRS.

    ``required``: attribute names that must exist, each given as alternatives (e.g. ``("ARS", "RS")``).
    Raises UnprocessableEntity naming the file on a missing file, a file GDAL cannot read, a missing attribute,
    a missing, unknown or mixed CRS, or a file without features.
    """
    import pyogrio  # deferred: loads GDAL (~40 MB resident), needed only when a GIS file is read
    import pyogrio.errors  # deferred: loads GDAL (~40 MB resident), needed only when a GIS file is read
    import pyogrio.raw  # deferred: loads GDAL (~40 MB resident), needed only when a GIS file is read

    check_exists(path)
    try:
        layers = [str(name) for name, kind in pyogrio.list_layers(path) if kind is not None] or [None]
        parts = [pyogrio.raw.read(path, layer=layer) for layer in layers]
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise bad_file(path, "not a GIS file that can be read (GeoJSON, Shapefile, GeoPackage, ...): "
                       + _first_line(exc)) from None
    except Exception as exc:  # GDAL reports broken files in several ways
        raise bad_file(path, f"cannot be read as a GIS file: {_first_line(exc)}") from None
    crss = {str(meta.get("crs")) for meta, *_ in parts if meta.get("crs")}
    if len(crss) > 1:
        raise bad_file(path, f"its layers ({', '.join(str(n) for n in layers)}) are in different CRS "
                       f"({', '.join(sorted(crss))}); export them in one", "import-unknown-crs")
    columns = _columns_of(parts)
    missing = [" or ".join(alts) for alts in required if not any(a.lower() in columns for a in alts)]
    if missing:
        have = ", ".join(dict.fromkeys(str(n) for meta, *_ in parts for n in meta["fields"])) or "none"
        raise bad_file(path, f"missing required attribute(s) {', '.join(missing)} (the file has: {have})",
                       "import-missing-attributes")
    wkb = [w for _meta, _fids, w, _values in parts if w is not None and len(w)]
    if not wkb:
        raise bad_file(path, "contains no features", "import-empty-file")
    crs = parse_crs(path, parts[0][0].get("crs"))
    try:
        geoms = np.concatenate([shapely.from_wkb(w, on_invalid="ignore") for w in wkb])
    except Exception as exc:
        raise bad_file(path, f"has unreadable geometries: {_first_line(exc)}") from None
    fields = list(dict.fromkeys(str(n) for meta, *_ in parts for n in meta["fields"]))
    return VectorLayer(path=path, crs=crs, columns=columns, geoms=geoms, fields=fields)


def _columns_of(parts: list[tuple]) -> dict[str, np.ndarray]:
    """The attribute columns of the layers read one after the other (case-insensitive names; a layer without a
    column contributes None there)."""
    if len(parts) == 1:
        meta, _fids, _wkb, values = parts[0]
        return {str(name).lower(): col for name, col in zip(meta["fields"], values)}
    names = list(dict.fromkeys(str(n).lower() for meta, *_ in parts for n in meta["fields"]))
    columns = {}
    by_layer = [({str(n).lower(): v for n, v in zip(meta["fields"], values)}, 0 if wkb is None else len(wkb))
                for meta, _fids, wkb, values in parts]
    for name in names:
        found = [(layer.get(name), size) for layer, size in by_layer]
        if all(col is not None for col, _ in found):          # in every layer: keep its type (numbers stay numbers)
            columns[name] = np.concatenate([col for col, _ in found])
        else:
            columns[name] = np.concatenate([np.asarray(col, dtype=object) if col is not None
                                            else np.full(size, None, dtype=object) for col, size in found])
    return columns


def parse_crs(path: Path, crs: Any) -> CRS:
    if not crs:
        raise bad_file(path, "unknown CRS: the file does not say in which coordinate reference system it is "
                       "(for a Shapefile: the .prj file is missing)", "import-unknown-crs")
    try:
        return _crs(str(crs))
    except (CRSError, ProjError) as exc:
        raise bad_file(path, f"unknown CRS {str(crs)[:80]!r}: {_first_line(exc)}", "import-unknown-crs") from None


@lru_cache(maxsize=64)
def _crs(user_input: str) -> CRS:
    return CRS.from_user_input(user_input)


@lru_cache(maxsize=64)
def transformer(src: str | CRS, srid: int) -> Transformer:
    return Transformer.from_crs(src if isinstance(src, CRS) else _crs(src), CRS.from_epsg(srid), always_xy=True)


def transform_xy(x: np.ndarray, y: np.ndarray, src: str | CRS, srid: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised reprojection of coordinate arrays (x = easting/longitude first)."""
    t = transformer(src, srid)
    if t.source_crs is not None and t.source_crs.to_epsg() == srid:
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    tx, ty = t.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float), errcheck=False)
    return np.asarray(tx), np.asarray(ty)


def to_tenant_crs(layer: VectorLayer, srid: int, geoms: np.ndarray | None = None) -> np.ndarray:
    """Reproject geometries of a layer to the tenant's SRID; a coordinate that cannot be transformed is an error
    naming the feature (usually: the file's CRS is not the one its coordinates are in)."""
    geoms = layer.geoms if geoms is None else geoms
    t = transformer(layer.crs, srid)

    def _apply(coords: np.ndarray) -> np.ndarray:
        x, y = t.transform(coords[:, 0], coords[:, 1], errcheck=False)
        return np.column_stack([x, y])

    out = shapely.transform(geoms, _apply)
    bounds = shapely.bounds(out)
    present = ~shapely.is_missing(out) & ~shapely.is_empty(out)
    bad = present & ~np.isfinite(bounds).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        x, y = shapely.get_coordinates(geoms[i])[0]
        raise bad_file(layer.path, f"feature {i} has coordinates ({x:.6g}, {y:.6g}) that cannot be transformed "
                       f"from {crs_label(layer.crs)} to EPSG:{srid}: is the file's CRS the one its coordinates "
                       "are in?", "import-bad-coordinates")
    return out


def crs_label(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def _first_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return msg[0] if msg else type(exc).__name__


# --- files as sources -----------------------------------------------------------------------------------------

def file_info(path: Path) -> dict[str, Any]:
    """Name, size and SHA-256 of an imported file (for a Shapefile: over its .shp/.shx/.dbf/.prj/.cpg parts)."""
    h = hashlib.sha256()
    size = 0
    parts = [path]
    if path.suffix.lower() == ".shp":
        parts = [p for p in (path.with_suffix(s) for s in SHAPEFILE_PARTS) if p.exists()]
    for part in parts:
        with open(part, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
    return {"path": str(path.resolve()), "name": path.name, "bytes": size, "sha256": h.hexdigest()}


# --- administrative areas -------------------------------------------------------------------------------------

@dataclass
class Area:
    """One Land, Kreis or Gemeinde as read from the boundary files (geo.importers.boundaries), before it is stored;
    the authority directory (geo.importers.authorities) is derived from these."""

    level: str
    ags: str
    ars: str | None
    name: str
    bez: str | None
    ewz: int | None
    geom: Any
    file: str
    feature: int
    population: int | None = None
    population_source: str | None = None
    kreisfrei: bool = False

    @property
    def gemeindefrei(self) -> bool:
        return (self.bez or "").strip().lower() == GEMEINDEFREI_BEZ


# --- summary --------------------------------------------------------------------------------------------------

@dataclass
class Summary:
    """What an import did: counts, skipped features with reasons, warnings. ``as_dict`` goes into LayerImport."""

    layer: str
    tenant: str
    files: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    skipped_by_reason: Counter = field(default_factory=Counter)
    skipped_examples: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None

    def skip(self, reason: str, *, file: Path | str | None = None, feature: int | None = None,
             ident: str | None = None) -> None:
        self.skipped_by_reason[reason] += 1
        if len(self.skipped_examples) < MAX_SKIP_EXAMPLES:
            ex: dict[str, Any] = {"reason": reason}
            if file is not None:
                ex["file"] = Path(file).name
            if feature is not None:
                ex["feature"] = feature
            if ident:
                ex["id"] = ident
            self.skipped_examples.append(ex)

    def skip_many(self, reason: str, n: int) -> None:
        if n:
            self.skipped_by_reason[reason] += n

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped_by_reason.values())

    def finish(self) -> dict[str, Any]:
        self.seconds = round(time.monotonic() - self.started, 2)
        return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "tenant": self.tenant,
            "files": self.files,
            "counts": self.counts,
            "skipped": {
                "total": self.skipped_total,
                "by_reason": dict(self.skipped_by_reason.most_common()),
                "examples": self.skipped_examples,
            },
            "warnings": self.warnings,
            "seconds": self.seconds,
        }


def format_summary(summary: dict[str, Any], examples_per_reason: int = 3) -> str:
    """The summary as printed by the CLI."""
    lines = [f"Imported {summary['layer']} for tenant {summary['tenant']!r} from "
             f"{len(summary['files'])} file(s) in {summary.get('seconds') or 0:.1f} s:"]
    for f in summary["files"]:
        lines.append(f"  file {f['name']} ({f['bytes']:,} bytes)")
    for key, value in summary["counts"].items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
        lines.append(f"  {key}: {value}")
    skipped = summary["skipped"]
    if skipped["total"]:
        lines.append(f"Skipped {skipped['total']} feature(s):")
        for reason, n in skipped["by_reason"].items():
            lines.append(f"  {n:>7} × {reason}")
            shown = [e for e in skipped["examples"] if e["reason"] == reason][:examples_per_reason]
            for e in shown:
                where = " ".join(str(x) for x in (e.get("file"), f"#{e['feature']}" if "feature" in e else None,
                                                  e.get("id")) if x)
                lines.append(f"            e.g. {where}")
    else:
        lines.append("Skipped no features.")
    for w in summary["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def progress(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = False):
    """A tqdm progress bar on stderr: off unless asked for (the API is quiet, the CLI asks), and off when stderr is
    not a terminal (logs, tests)."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=None if enabled else True,
                dynamic_ncols=True, mininterval=0.3, leave=False)


# --- import log -----------------------------------------------------------------------------------------------

def record_import(session: Session, tenant_key: str, layer: str, summary: dict[str, Any]) -> None:
    sources = [f["path"] for f in summary["files"]]
    stmt = pg_insert(LayerImport).values(tenant_key=tenant_key, layer=layer, sources=sources, summary=summary)
    stmt = stmt.on_conflict_do_update(index_elements=[LayerImport.tenant_key, LayerImport.layer],
                                      set_={"imported_at": func.now(), "sources": sources, "summary": summary})
    session.execute(stmt)


def same_sources(session: Session, tenant_key: str, layer: str, paths: list[Path]) -> bool:
    """True if the layer's last import was from files with exactly these contents (by SHA-256)."""
    row = session.get(LayerImport, (tenant_key, layer))
    if row is None:
        return False
    before = sorted(f.get("sha256", "") for f in (row.summary or {}).get("files", []))
    now = sorted(file_info(p)["sha256"] for p in paths)
    return before == now


def psycopg_connection(session: Session):
    """The psycopg 3 connection under the session's current transaction (for COPY)."""
    return session.connection().connection.driver_connection
