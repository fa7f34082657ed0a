"""Road files from road databases, read through a column mapping: the ATKIS Basis-DLM (layer ``ver01_l``, attributes
BEZ, WDM, ZUS, NAM, ...) or a state's road information system (columns such as KLASSE, STRNR, NAME), which carry no
OSM tags.

A mapping names, for the targets of a road segment, the file's columns:

- ``ref``: the road number, one column (``BEZ``) or a template of columns (``{KLASSE} {STRNR}{ZUSATZ}`` → "L 3117"),
  written as OSM writes it ("L3117" → "L 3117", so that Ortsdurchfahrten name their road the same way);
- ``class``: a column whose values say the class of road. A value gets its class from the mapping's ``classes``
  (value → autobahn | bund | land | kreis | gemeinde; also motorway | federal | state | district | municipal), else
  where it is itself a class name, else where it is a road-number prefix of the tenant's rules (``road_classes``:
  A, B, L, K, St, ...), else from the default ``*``. Values that none of these maps stop the import, listed with
  their counts (nothing is guessed). Without a class column, the class comes from ``ref`` by the tenant's rules, as
  for OSM (without a ref that applies: gemeinde);
- ``name``: the street name.

``skip`` names values of columns whose features are not roads in use (ATKIS ``ZUS`` 2100 "außer Betrieb", 4000 "im
Bau"); they are skipped with the reason in the summary. Column names are matched case-insensitively; a column the
file does not have stops the import naming the columns it has.

The mapping comes from a TOML file (``--mapping``, examples in data/road_mappings/) and/or the options ``--map``,
``--class-map`` and ``--skip`` of ``breitband import roads``, which override the file's entries.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from breitband.errors import UnprocessableEntity
from geo.importers.common import Summary, bad_file, read_vector, to_tenant_crs
from geo.importers.ways import WayArrays

Target = Literal["ref", "class", "name"]
TARGETS: tuple[str, ...] = ("ref", "class", "name")
CLASSES = ("autobahn", "bund", "land", "kreis", "gemeinde")
ALIASES = {"motorway": "autobahn", "federal": "bund", "state": "land", "district": "kreis", "municipal": "gemeinde"}
DEFAULT = "*"
ATTRIBUTE_SOURCE = "attribute"      # road_segments.class_source of a class read from the file's class column
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_REF_TOKEN = re.compile(r"^([^\W\d_]+)\s*\.?\s*(\d\S*)$")
_LINE_TYPES = (1, 5)


class RefClassifier(Protocol):
    """What the mapping needs of ``geo.importers.roads.Classifier`` (the tenant's rules)."""

    def ref_class(self, ref: str | None) -> tuple[str, str] | None: ...

    def prefix_class(self, prefix: str) -> str | None: ...


def _bad_mapping(what: str) -> UnprocessableEntity:
    return UnprocessableEntity(f"road mapping: {what}", type="import-bad-mapping", title="Invalid column mapping")


def class_name(value: str, where: str) -> str:
    name = str(value).strip().lower()
    name = ALIASES.get(name, name)
    if name not in CLASSES:
        raise _bad_mapping(f"{where}: unknown road class {value!r}; classes: {', '.join(CLASSES)} (or "
                           f"{', '.join(ALIASES)})")
    return name


class RoadMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: dict[Target, str] = Field(default_factory=dict)
    classes: dict[str, str] = Field(default_factory=dict)
    skip: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        for target, column in value.items():
            if not column.strip() or (target != "ref" and _PLACEHOLDER.search(column)):
                raise ValueError(f"{target}: {column!r} must name a column (a template {{A}} {{B}} only for ref)")
        return {t: c.strip() for t, c in value.items()}

    @field_validator("classes", mode="before")
    @classmethod
    def _classes(cls, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ValueError("must be a table of value = class")
        return {_text(k) or "": class_name(v, f"class of {k!r}") for k, v in value.items()}

    @field_validator("skip", mode="before")
    @classmethod
    def _skip(cls, value: Any) -> dict[str, list[str]]:
        if not isinstance(value, dict):
            raise ValueError("must be a table of column = [values]")
        return {str(k).strip(): [_text(v) or "" for v in (vs if isinstance(vs, list) else [vs])]
                for k, vs in value.items()}

    def column_names(self, target: str) -> list[str]:
        spec = self.columns.get(target)
        if spec is None:
            return []
        return _PLACEHOLDER.findall(spec) if _PLACEHOLDER.search(spec) else [spec]

    def describe(self) -> dict[str, str]:
        out = dict(self.columns)
        if self.classes:
            out["classes"] = ", ".join(f"{k}={v}" for k, v in self.classes.items())
        for column, values in self.skip.items():
            out[f"skip {column}"] = ", ".join(values)
        return out


def _text(value: Any) -> str | None:
    """A cell as text for comparisons: numbers without a trailing .0 (1301.0 → "1301"), strings stripped."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    s = str(value).strip()
    return s or None


def normalise_ref(ref: str | None) -> str | None:
    """Road numbers written as OSM (and the Ortsdurchfahrt files) write them, prefix and number apart: ATKIS BEZ
    "L3262" → "L 3262", "B 44;B3" → "B 44;B 3"; what is no prefix + number stays as it is. The resolution matches an
    Ortsdurchfahrt to its road by this ref, and explanations show it."""
    if ref is None:
        return None
    tokens = []
    for token in ref.split(";"):
        m = _REF_TOKEN.match(token.strip())
        tokens.append(f"{m.group(1)} {m.group(2)}" if m else token.strip())
    return ";".join(t for t in tokens if t) or None


def _pairs(option: str, text: str) -> list[tuple[str, str]]:
    out = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise _bad_mapping(f"{option} {text!r}: write KEY=VALUE pairs separated by commas, e.g. "
                               + ("ref=STRNR,class=KLASSE,name=NAME" if option == "--map" else
                                  "A=autobahn,B=bund,L=land,K=kreis,G=gemeinde"))
        out.append((key.strip(), value.strip()))
    return out


def load_mapping(file: Path | None = None, map_option: str | None = None, class_map: str | None = None,
                 skip: list[str] | None = None) -> RoadMapping | None:
    """The mapping of ``breitband import roads``: the TOML file, then the options over it. None when nothing is
    given (the files are OSM or carry OSM tags)."""
    data: dict[str, Any] = {}
    if file is not None:
        try:
            with open(file, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise _bad_mapping(f"{file}: file does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise _bad_mapping(f"{file} is not valid TOML: {exc}") from None
    if file is None and not map_option and not class_map and not skip:
        return None
    columns = dict(data.get("columns") or {})
    for target, column in _pairs("--map", map_option or ""):
        if target not in TARGETS:
            raise _bad_mapping(f"--map: unknown target {target!r}; targets: {', '.join(TARGETS)}")
        columns[target] = column
    classes = dict(data.get("classes") or {})
    for value, cls in _pairs("--class-map", class_map or ""):
        classes[value] = cls
    skips = dict(data.get("skip") or {})
    for item in skip or []:
        column, sep, values = item.partition("=")
        if not sep or not column.strip() or not values.strip():
            raise _bad_mapping(f"--skip {item!r}: write COLUMN=VALUE[,VALUE...], e.g. ZUS=2100,4000")
        skips[column.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    try:
        mapping = RoadMapping.model_validate({**{k: v for k, v in data.items()
                                                 if k not in ("columns", "classes", "skip")},
                                              "columns": columns, "classes": classes, "skip": skips})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise _bad_mapping(f"{file or 'options'}: {problems}") from None
    if not mapping.columns:
        raise _bad_mapping("name at least one column, e.g. --map ref=STRNR,class=KLASSE,name=NAME")
    if mapping.classes and "class" not in mapping.columns:
        raise _bad_mapping("a class map needs the column it maps: --map class=COLUMN")
    return mapping


class _ClassOf:
    """Class of a value of the class column (see the module docstring for the order); None: not mapped."""

    def __init__(self, mapping: RoadMapping, classifier: RefClassifier) -> None:
        self.exact = {k: v for k, v in mapping.classes.items() if k != DEFAULT}
        self.folded = {k.casefold(): v for k, v in self.exact.items()}
        self.default = mapping.classes.get(DEFAULT)
        self.classifier = classifier

    def __call__(self, value: str | None) -> str | None:
        if value is not None:
            hit = self.exact.get(value) or self.folded.get(value.casefold())
            if hit:
                return hit
            name = ALIASES.get(value.casefold(), value.casefold())
            if name in CLASSES:
                return name
            hit = self.classifier.prefix_class(value)
            if hit:
                return hit
        return self.default


def read_mapped_ways(path: Path, srid: int, summary: Summary, mapping: RoadMapping,
                     classifier: RefClassifier) -> WayArrays:
    """The line features of a road-database file, classified through ``mapping`` (in ``srid``). Raises a bad-file
    error naming the columns the file has for a column it lacks, and listing the class values nothing maps."""
    layer = read_vector(path)
    for target in TARGETS:
        for column in mapping.column_names(target):
            if layer.column(column) is None:
                raise bad_file(path, f"no column {column!r} (named by the mapping for {target}); the file has: "
                               f"{', '.join(layer.fields) or 'no columns'}", "import-unknown-column")
    for column in mapping.skip:
        if layer.column(column) is None:
            raise bad_file(path, f"no column {column!r} (named by the mapping's skip); the file has: "
                           f"{', '.join(layer.fields) or 'no columns'}", "import-unknown-column")
    geoms = to_tenant_crs(layer, srid)
    types = shapely.get_type_id(geoms)
    n = len(layer)
    ref_spec = mapping.columns.get("ref")
    ref_cols = {c: layer.column(c) for c in mapping.column_names("ref")}
    name_col = layer.column(mapping.columns["name"]) if "name" in mapping.columns else None
    class_col = layer.column(mapping.columns["class"]) if "class" in mapping.columns else None
    skips = [(column, layer.column(column), set(values)) for column, values in mapping.skip.items()]
    class_of = _ClassOf(mapping, classifier)

    def ref_of(i: int) -> str | None:
        if ref_spec is None:
            return None
        if len(ref_cols) == 1 and not _PLACEHOLDER.search(ref_spec):
            return normalise_ref(_text(next(iter(ref_cols.values()))[i]))
        filled = _PLACEHOLDER.sub(lambda m: _text(ref_cols[m.group(1)][i]) or "", ref_spec)
        return normalise_ref(" ".join(filled.split()) or None)

    keep = np.zeros(n, dtype=bool)
    classified: list[tuple[str, str, str | None]] = []
    refs: list[str | None] = []
    names: list[str | None] = []
    unmapped: Counter = Counter()
    for i in range(n):
        if types[i] not in _LINE_TYPES:
            what = {-1: "no geometry", 0: "Point", 3: "Polygon", 4: "MultiPoint", 6: "MultiPolygon",
                    7: "GeometryCollection"}.get(int(types[i]), str(types[i]))
            summary.skip(f"not a line ({what})", file=path, feature=i)
            continue
        skipped = next(((column, v) for column, col, values in skips
                        if (v := _text(col[i]) or "") in values), None)
        if skipped is not None:
            summary.skip(f"{skipped[0]}={skipped[1]}: skipped by the mapping", file=path, feature=i)
            continue
        ref = ref_of(i)
        if class_col is not None:
            value = _text(class_col[i])
            cls = class_of(value)
            if cls is None:
                unmapped["(empty)" if value is None else value] += 1
                continue
            hit = (cls, ATTRIBUTE_SOURCE, ref)
        else:
            by_ref = classifier.ref_class(ref)
            hit = (by_ref[0], "ref", by_ref[1]) if by_ref else ("gemeinde", "default", None)
        keep[i] = True
        classified.append(hit)
        refs.append(ref)
        names.append(_text(name_col[i]) if name_col is not None else None)
    if unmapped:
        listed = ", ".join(f"{v!r} ({k} feature{'s' if k != 1 else ''})" for v, k in unmapped.most_common(20))
        more = f" and {len(unmapped) - 20} more" if len(unmapped) > 20 else ""
        raise bad_file(path, f"values of the class column {mapping.columns['class']} that no road class is mapped "
                       f"to: {listed}{more}; map them with --class-map VALUE=CLASS (classes: {', '.join(CLASSES)}) "
                       f"or give the rest a class with --class-map '*=gemeinde'; the road layer is left as it is",
                       "import-unmapped-classes")
    sel = np.flatnonzero(keep)
    parts, part_of = shapely.get_parts(geoms[sel], return_index=True)
    coords, coord_of = shapely.get_coordinates(parts, return_index=True)
    counts = np.bincount(coord_of, minlength=len(parts)) if len(parts) else np.zeros(0, dtype=np.int64)
    per_part = part_of.tolist()
    return WayArrays(osm_id=[None] * len(parts), highway=[None] * len(parts),
                     ref=[refs[j] for j in per_part], name=[names[j] for j in per_part], access=[None] * len(parts),
                     coords=coords, offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                     crs=f"EPSG:{srid}", classified=[classified[j] for j in per_part])


__all__ = ["RoadMapping", "load_mapping", "read_mapped_ways", "ATTRIBUTE_SOURCE", "CLASSES"]
