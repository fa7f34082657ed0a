"""CQL2 filters, sort keys and queryables for OGC API - Features Part 3 (Filtering), translated into SQLAlchemy
expressions over whitelisted columns.

    parse_filter(text, lang, queryables, geometry=, filter_crs=, storage_srid=)  → a WHERE clause
    parse_sortby("+decision_due,-reference", queryables)                          → ORDER BY clauses
    queryables_document(collection_url, title, queryables)                         → the /queryables JSON Schema

**Never SQL text from the client.** A filter is parsed into a tree, and every node becomes an SQLAlchemy
expression: properties only through the caller's ``Queryable`` mapping (an unknown name is a 400 naming the
queryables), literals only as bound parameters of the property's type. Types are checked before anything reaches
the database (a string against a number, a date against a timestamp, LIKE on a date, a LIKE pattern ending in its
escape character): each is a 400 ``invalid-parameter`` naming ``filter``, the property and what was expected, and
for syntax errors the 1-based ``position`` of the character where the parser stopped.

**CQL2 text** is parsed by our own grammar (below) with Lark, the parser generator pygeofilter uses. pygeofilter
0.4.0's own CQL2 text parser was tried and left: it rejects ``NOT (a OR b)``, ``'it''s'`` (the CQL2 escape of a
quote), one-letter property names and lower-case WKT, reads ``BBOX(…)`` in ``S_INTERSECTS`` as an unknown function,
accepts timestamps without a time zone, and prints to stdout (Lark's debug dumps, print() calls in its WKT
transformer); its CQL2 JSON parser reads ``{"bbox": [x1, y1, x2, y2]}`` as (x1, x2, y1, y2) and fails on the CQL2
1.0 forms of ``between`` and functions. **CQL2 JSON** (``filter-lang=cql2-json``) is read directly from the decoded
JSON into the same translation.

What is implemented (``CONFORMANCE`` lists the classes): Basic CQL2 (=, <>, <, <=, >, >=, AND, OR, NOT, IS [NOT]
NULL, parentheses, boolean properties as conditions), advanced comparison operators ([NOT] LIKE with ``%``, ``_``
and ``\\`` as escape, [NOT] BETWEEN, [NOT] IN), CASEI (case-insensitive comparison, as ``lower()``), DATE('…') and
TIMESTAMP('…Z') literals, property-property comparisons, and the spatial functions S_INTERSECTS, S_DISJOINT,
S_CONTAINS, S_WITHIN, S_TOUCHES, S_CROSSES, S_OVERLAPS, S_EQUALS with WKT or BBOX(…) literals, which are in
``filter-crs`` (default CRS84, longitude first; an EPSG CRS in its own axis order, so EPSG:4326 is latitude first)
and are transformed into the storage CRS before the query (the index on the geometry column stays usable). Not
implemented, each a 400 that says so: temporal functions (T_…; compare with <, >, BETWEEN), ACCENTI, arrays,
arithmetic, functions other than CASEI.

Sort keys (``sortby``): comma-separated queryables, each with an optional ``+`` (ascending, the default) or ``-``;
a ``+`` that arrived as a space (an unencoded ``+`` in a URL) counts as ``+``. The caller adds its own final key
(the id) so that pages are stable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import shapely
import shapely.errors
import shapely.geometry
from lark import Lark, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    String,
    and_,
    bindparam,
    false,
    func,
    not_,
    or_,
    true,
)
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from breitband.errors import UnprocessableEntity
from geo.crs import crs_of, parse_crs, transform_geometry
from permits.gis.params import BadParameter

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_CRS84_NAMES = {CRS84, "https://www.opengis.net/def/crs/OGC/1.3/CRS84", "urn:ogc:def:crs:OGC:1.3:CRS84",
                "urn:ogc:def:crs:OGC::CRS84", "CRS84", "OGC:CRS84"}
_CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/"
_PART3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/"
# The conformance classes this module implements; the endpoints list them when they offer ``filter``.
CONFORMANCE = [_PART3 + c for c in ("queryables", "filter", "features-filter")] + [
    _CQL2 + c for c in ("cql2-text", "cql2-json", "basic-cql2", "advanced-comparison-operators",
                        "case-insensitive-comparison", "basic-spatial-functions", "basic-spatial-functions-plus",
                        "spatial-functions", "property-property")]
LANGUAGES = ("cql2-text", "cql2-json")
MAX_LENGTH = 8000           # characters of a filter; a URL of a GIS client stays far below
MAX_DEPTH = 60              # nesting of conditions and values, so that no input reaches Python's recursion limit

SCALAR_TYPES = ("string", "integer", "number", "date", "datetime", "boolean")
# JSON Schema formats of a geometry queryable (OGC API - Features Part 3, 6.2)
GEOMETRY_TYPES = tuple("geometry-" + k for k in (
    "point", "multipoint", "linestring", "multilinestring", "polygon", "multipolygon", "geometrycollection", "any",
    "point-or-multipoint", "linestring-or-multilinestring", "polygon-or-multipolygon"))
_SQL_TYPES = {"string": String(), "integer": Integer(), "number": Float(), "date": Date(),
              "datetime": DateTime(timezone=True), "boolean": Boolean()}
_SPATIAL = {"s_intersects": func.ST_Intersects, "s_disjoint": func.ST_Disjoint, "s_contains": func.ST_Contains,
            "s_within": func.ST_Within, "s_touches": func.ST_Touches, "s_crosses": func.ST_Crosses,
            "s_overlaps": func.ST_Overlaps, "s_equals": func.ST_Equals}
_COMPARE = {"=": "__eq__", "<>": "__ne__", "<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__"}
_ORDERED = {"string", "number", "date", "datetime"}


@dataclass(frozen=True)
class Queryable:
    """A property a client may filter and sort by: its name in the API and the SQL expression behind it."""

    name: str               # the property name in the API
    column: Any             # SQLAlchemy column expression (or a callable returning one)
    type: str               # "string" | "integer" | "number" | "date" | "datetime" | "boolean" | "geometry-…"
    title: str
    description: str = ""
    enum: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in SCALAR_TYPES + GEOMETRY_TYPES:
            raise ValueError(f"queryable {self.name!r}: unknown type {self.type!r}")

    def expression(self) -> Any:
        return self.column() if callable(self.column) else self.column


def queryables_document(collection_url: str, title: str, queryables: Sequence[Queryable]) -> dict[str, Any]:
    """The collection's ``/queryables`` (OGC API - Features Part 3): a JSON Schema 2020-12 object whose properties
    are the queryables, in the given order."""
    props: dict[str, Any] = {}
    for q in queryables:
        if q.type in GEOMETRY_TYPES:
            schema: dict[str, Any] = {"format": q.type, "x-ogc-role": "primary-geometry"}
        elif q.type in ("date", "datetime"):
            schema = {"type": "string", "format": "date" if q.type == "date" else "date-time"}
        else:
            schema = {"type": q.type}
        schema["title"] = q.title
        if q.description:
            schema["description"] = q.description
        if q.enum is not None:
            schema["enum"] = list(q.enum)
        props[q.name] = schema
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": collection_url.rstrip("/") + "/queryables",
            "type": "object", "title": title, "properties": props, "additionalProperties": False}


# --- CQL2 text grammar ---------------------------------------------------------------------------------------------
# After the CQL2 BNF (OGC 21-065r2, annex B). Keywords are case-insensitive; functions, including DATE, TIMESTAMP,
# CASEI, BBOX and the S_… predicates, are one rule (name + arguments) and are told apart when translated, so that
# an unknown function is a clear error rather than a syntax error. WKT is only delimited here; GEOS reads it.
GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr | or_expr OR and_expr -> or_
?and_expr: not_expr | and_expr AND not_expr -> and_
?not_expr: primary | NOT not_expr -> not_
?primary: "(" or_expr ")" | predicate
predicate: scalar COMP scalar -> compare
    | scalar [NOT] LIKE scalar -> like
    | scalar [NOT] BETWEEN scalar AND scalar -> between
    | scalar [NOT] IN "(" scalar ("," scalar)* ")" -> in_
    | scalar IS [NOT] NULL -> isnull
    | scalar -> truth
?scalar: IDENT -> prop
    | QIDENT -> prop
    | STRING -> string
    | NUMBER -> number
    | TRUE -> boolean
    | FALSE -> boolean
    | function
    | geometry
function: IDENT "(" [scalar ("," scalar)*] ")"
geometry: GEOM wkt_body
wkt_body: EMPTY | "(" wkt_part ("," wkt_part)* ")"
?wkt_part: wkt_body | coord | geometry
coord: NUMBER NUMBER [NUMBER [NUMBER]]
OR: "OR"i
AND: "AND"i
NOT: "NOT"i
LIKE: "LIKE"i
BETWEEN: "BETWEEN"i
IN: "IN"i
IS: "IS"i
NULL: "NULL"i
TRUE: "TRUE"i
FALSE: "FALSE"i
EMPTY: "EMPTY"i
GEOM: /(POINT|LINESTRING|POLYGON|MULTIPOINT|MULTILINESTRING|MULTIPOLYGON|GEOMETRYCOLLECTION)(\s*(ZM|Z|M))?(?![\w:.])/i
COMP: "<>" | "<=" | ">=" | "=" | "<" | ">"
IDENT: /[A-Za-z_][A-Za-z0-9_:.]*/
QIDENT: /"(?:[^"]|"")*"/
STRING: /'(?:[^']|'')*'/
NUMBER: /[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/
%ignore /[ \t\r\n]+/
"""
_PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=True)


# --- values ----------------------------------------------------------------------------------------------------------

@dataclass
class _Value:
    """A typed operand: its SQL expression, its CQL2 type and how to name it in an error."""

    sql: Any
    type: str                     # a SCALAR_TYPE, "geometry", or "function" (a predicate used as a value)
    label: str
    prop: str | None = None       # the property, when the operand is one
    literal: Any = None           # the Python value, when the operand is a literal
    enum: tuple[str, ...] | None = None    # the property's fixed values


def _inline(prop: _Value, other: _Value) -> _Value:
    """``other`` written into the SQL when it is one of ``prop``'s enum values (ours, not the client's text: a
    member of the whitelist): a status compared with constants lets the planner prove the predicate of a partial
    index (``ix_cases_open_due``: the open statuses), which a bound parameter of a prepared statement's generic plan
    cannot. Anything else stays a bound parameter."""
    if prop.enum is not None and isinstance(other.sql, BindParameter) and other.literal in prop.enum:
        value = next(v for v in prop.enum if v == other.literal)
        return _Value(bindparam(None, value, type_=String(), literal_execute=True), "string", other.label,
                      literal=value)
    return other


def _kind(t: str) -> str:
    return "number" if t in ("integer", "number") else t


def _a(t: str) -> str:
    return {"integer": "an integer", "number": "a number", "date": "a date", "datetime": "a timestamp",
            "string": "a string", "boolean": "a boolean", "geometry": "a geometry"}.get(t, t)


class _Compiler:
    def __init__(self, queryables: Mapping[str, Queryable], geometry: Any, filter_crs: str | None,
                 storage_srid: int | None, text: str) -> None:
        self.queryables = queryables
        self.geometry = geometry
        self.text = text
        self.src_srid, self.flip = _filter_crs(filter_crs)
        if storage_srid is None and geometry is not None:
            storage_srid = getattr(getattr(geometry, "type", None), "srid", None)
        self.dst_srid = storage_srid if storage_srid and storage_srid > 0 else 4326

    def fail(self, detail: str, prop: str | None = None, **extra: Any):
        fields = {"parameter": "filter", **({"property": prop} if prop else {}), **extra}
        return BadParameter(f"filter: {detail}", **fields)

    # properties and literals -------------------------------------------------------------------------------------
    def prop(self, name: str) -> _Value:
        q = self.queryables.get(name)
        if q is not None:
            t = "geometry" if q.type in GEOMETRY_TYPES else q.type
            return _Value(q.expression(), t, f"property {name!r}", prop=name, enum=q.enum)
        if name == "geometry" and self.geometry is not None:
            return _Value(self.geometry, "geometry", "property 'geometry'", prop=name)
        names = sorted(self.queryables) + (["geometry"] if self.geometry is not None and
                                           "geometry" not in self.queryables else [])
        raise self.fail(f"unknown property {name!r}; the queryables are {', '.join(names)}", prop=name)

    def literal(self, value: Any) -> _Value:
        if isinstance(value, bool):
            t = "boolean"
        elif isinstance(value, int):
            t = "integer"
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise self.fail(f"{value!r} is not a finite number")
            t = "number"
        elif isinstance(value, str):
            if "\x00" in value:
                raise self.fail("a string may not contain the character NUL")
            t = "string"
        elif isinstance(value, datetime):
            t = "datetime"
        elif isinstance(value, date):
            t = "date"
        else:                                           # pragma: no cover - the readers give only the above
            raise self.fail(f"unsupported value {value!r}")
        shown = f"TIMESTAMP('{value.isoformat()}')" if t == "datetime" else \
            f"DATE('{value.isoformat()}')" if t == "date" else repr(value)
        return _Value(bindparam(None, value, type_=_SQL_TYPES[t]), t, shown, literal=value)

    def date_literal(self, raw: Any, kind: str) -> _Value:
        if not isinstance(raw, str):
            raise self.fail(f"{kind.upper()}(…) takes a quoted string")
        if kind == "date":
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
                raise self.fail(f"DATE({raw!r}): a date YYYY-MM-DD expected")
            try:
                return self.literal(date.fromisoformat(raw))
            except ValueError:
                raise self.fail(f"DATE({raw!r}) is not a calendar date") from None
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", raw, re.I):
            raise self.fail(f"TIMESTAMP({raw!r}): an RFC 3339 instant with its time zone expected, "
                            "e.g. TIMESTAMP('2027-03-01T08:00:00Z')")
        try:
            return self.literal(datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1] in "zZ" else raw))
        except ValueError:
            raise self.fail(f"TIMESTAMP({raw!r}) is not a valid instant") from None

    def geometry_literal(self, geom: Any, shown: str) -> _Value:
        """A geometry in filter-crs → the storage CRS, checked (finite, valid, within the CRS's range)."""
        if geom.is_empty:
            raise self.fail(f"{shown}: an empty geometry matches nothing; give coordinates")
        geom = shapely.force_2d(geom)
        if self.flip:
            geom = shapely.transform(geom, lambda xy: xy[:, ::-1])
        xy = shapely.get_coordinates(geom)
        if not xy.size or not bool(shapely.is_valid(geom)) or not all(map(math.isfinite, xy.ravel())):
            reason = shapely.is_valid_reason(geom) if xy.size else "no coordinates"
            raise self.fail(f"{shown}: not a valid geometry ({reason})")
        if crs_of(self.src_srid).is_geographic and (abs(xy[:, 0]).max() > 180 or abs(xy[:, 1]).max() > 90):
            order = "latitude, longitude" if self.flip else "longitude, latitude"
            raise self.fail(f"{shown}: coordinates outside ±180/±90 in {order} order (filter-crs)")
        try:
            out = transform_geometry(geom, self.src_srid, self.dst_srid)
        except Exception as exc:  # noqa: BLE001 - any failure of the transformation is the input's: 400
            raise self.fail(f"{shown}: cannot be transformed into the storage CRS ({exc})") from None
        if not all(map(math.isfinite, shapely.get_coordinates(out).ravel())):
            raise self.fail(f"{shown}: lies outside the area of filter-crs EPSG:{self.src_srid}")
        sql = func.ST_GeomFromWKB(bindparam(None, shapely.to_wkb(out), type_=LargeBinary()), self.dst_srid)
        return _Value(sql, "geometry", shown, literal=out)

    def bbox(self, numbers: list[Any], shown: str) -> _Value:
        if len(numbers) not in (4, 6) or not all(isinstance(n, (int, float)) and not isinstance(n, bool)
                                                 for n in numbers):
            raise self.fail(f"{shown}: BBOX takes 4 numbers (or 6 of a 3D box)")
        x0, y0, x1, y1 = (numbers[0], numbers[1], numbers[3], numbers[4]) if len(numbers) == 6 else numbers
        if x0 > x1 or y0 > y1:
            raise self.fail(f"{shown}: the minimum comes first")
        return self.geometry_literal(shapely.box(x0, y0, x1, y1), shown)

    # functions --------------------------------------------------------------------------------------------------
    def function(self, name: str, args: list[Any], values: Callable[[], list[_Value]]) -> _Value:
        """``args`` raw (for DATE/TIMESTAMP/BBOX, whose arguments are literals), ``values`` compiles them."""
        low = name.lower()
        if low in ("date", "timestamp"):
            if len(args) != 1:
                raise self.fail(f"{name.upper()}(…) takes one quoted string")
            return self.date_literal(args[0], low)
        if low == "bbox":
            return self.bbox(args, f"BBOX({', '.join(map(str, args))})")
        if low == "casei":
            [v] = self.arity(name, values(), 1)
            if v.type != "string":
                raise self.fail(f"CASEI takes a string; {v.label} is {_a(v.type)}", prop=v.prop)
            return _Value(func.lower(v.sql), "string", f"CASEI({v.label})", prop=v.prop, literal=v.literal)
        if low in _SPATIAL:
            a, b = self.arity(name, values(), 2)
            for v in (a, b):
                if v.type != "geometry":
                    raise self.fail(f"{name.upper()} compares geometries; {v.label} is {_a(v.type)}", prop=v.prop)
            return _Value(_SPATIAL[low](a.sql, b.sql), "function", f"{name.upper()}(…)")
        if low.startswith("t_"):
            raise self.fail(f"temporal functions ({name.upper()}) are not supported; compare dates and timestamps "
                            "with <, <=, >, >= or BETWEEN")
        if low == "accenti":
            raise self.fail("ACCENTI is not supported")
        if low.startswith("a_"):
            raise self.fail(f"array functions ({name.upper()}) are not supported")
        raise self.fail(f"unknown function {name!r}; supported are CASEI, DATE, TIMESTAMP, BBOX and "
                        + ", ".join(k.upper() for k in _SPATIAL))

    def arity(self, name: str, values: list[_Value], n: int) -> list[_Value]:
        if len(values) != n:
            raise self.fail(f"{name.upper()} takes {n} argument{'s' if n > 1 else ''}, not {len(values)}")
        return values

    # predicates -------------------------------------------------------------------------------------------------
    def compare(self, op: str, a: _Value, b: _Value) -> ColumnElement[bool]:
        self.same(a, b, op)
        if a.type in ("geometry", "boolean") and op not in ("=", "<>"):
            raise self.fail(f"{op} does not order {_a(a.type)}s", prop=a.prop or b.prop)
        if a.type == "geometry":
            raise self.fail("geometries are compared with S_EQUALS, not =", prop=a.prop or b.prop)
        a, b = _inline(b, a), _inline(a, b)
        return getattr(a.sql, _COMPARE[op])(b.sql)

    def same(self, a: _Value, b: _Value, what: str) -> None:
        for v in (a, b):
            if v.type == "function":
                raise self.fail(f"{v.label} is a condition, not a value")
        if _kind(a.type) != _kind(b.type):
            prop = a.prop or b.prop
            hint = ""
            if {a.type, b.type} == {"date", "string"}:
                hint = "; write a date as DATE('YYYY-MM-DD')"
            elif {a.type, b.type} == {"datetime", "string"} or {a.type, b.type} == {"datetime", "date"}:
                hint = "; write an instant as TIMESTAMP('YYYY-MM-DDThh:mm:ssZ')"
            raise self.fail(f"{what}: {a.label} is {_a(a.type)} but {b.label} is {_a(b.type)}{hint}", prop=prop)

    def like(self, a: _Value, pattern: _Value, negated: bool) -> ColumnElement[bool]:
        if a.type != "string":
            raise self.fail(f"LIKE compares strings; {a.label} is {_a(a.type)}", prop=a.prop)
        self.same(a, pattern, "LIKE")
        raw = pattern.literal
        if not isinstance(raw, str) or pattern.prop is not None:
            # a property as the pattern: its escape characters could not be checked before the query runs
            raise self.fail("the pattern of LIKE must be a string literal (or CASEI of one)", prop=a.prop)
        if re.search(r"(?<!\\)(\\\\)*\\$", raw):
            raise self.fail(f"LIKE pattern {raw!r} ends in its escape character \\; write \\\\ for a backslash",
                            prop=a.prop)
        expr = a.sql.like(pattern.sql, escape="\\")
        return not_(expr) if negated else expr

    def between(self, a: _Value, low: _Value, high: _Value, negated: bool) -> ColumnElement[bool]:
        self.same(a, low, "BETWEEN")
        self.same(a, high, "BETWEEN")
        if _kind(a.type) not in _ORDERED:
            raise self.fail(f"BETWEEN needs ordered values; {a.label} is {_a(a.type)}", prop=a.prop)
        expr = a.sql.between(low.sql, high.sql)
        return not_(expr) if negated else expr

    def in_(self, a: _Value, items: list[_Value], negated: bool) -> ColumnElement[bool]:
        if a.type == "geometry":
            raise self.fail("IN does not take geometries", prop=a.prop)
        for item in items:
            self.same(a, item, "IN")
        expr = a.sql.in_([_inline(a, i).sql for i in items])
        return not_(expr) if negated else expr

    def isnull(self, a: _Value, negated: bool) -> ColumnElement[bool]:
        if a.type == "function" or a.prop is None and a.literal is None:
            raise self.fail(f"IS NULL takes a property; {a.label} is not one")
        return a.sql.is_not(None) if negated else a.sql.is_(None)

    def truth(self, a: _Value) -> ColumnElement[bool]:
        if a.type == "function":
            return a.sql
        if a.type == "boolean":
            return a.sql if a.prop is not None else (true() if a.literal else false())
        raise self.fail(f"{a.label} is {_a(a.type)}, not a condition; compare it (=, <, LIKE, IN, …)", prop=a.prop)


def _filter_crs(filter_crs: str | None) -> tuple[int, bool]:
    """(EPSG code, whether the first axis is north/south) of filter-crs; CRS84 (longitude first) by default."""
    if filter_crs is None or filter_crs.strip() in _CRS84_NAMES:
        return 4326, False
    try:
        epsg = parse_crs(filter_crs, field="filter-crs")
    except UnprocessableEntity:
        raise BadParameter(f"filter-crs={filter_crs!r}: an EPSG CRS such as "
                           "http://www.opengis.net/def/crs/EPSG/0/25832, or CRS84", parameter="filter-crs") from None
    axes = crs_of(epsg).axis_info
    return epsg, bool(axes) and axes[0].direction.lower() in ("north", "south")


# --- CQL2 text -------------------------------------------------------------------------------------------------------

def _unquote(token: str, quote: str) -> str:
    return token[1:-1].replace(quote + quote, quote)


def _number(raw: str) -> int | float:
    return int(raw) if re.fullmatch(r"[+-]?\d+", raw) else float(raw)


class _Text:
    """Walks the Lark tree of a CQL2 text filter."""

    def __init__(self, c: _Compiler) -> None:
        self.c = c

    def condition(self, node: Any, depth: int = 0) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise self.c.fail(f"nested more than {MAX_DEPTH} levels deep")
        if node.data in ("and_", "or_"):
            parts, stack = [], [node]          # a long chain is one flat AND/OR, walked without recursion
            while stack:
                n = stack.pop()
                if isinstance(n, Tree) and n.data == node.data:
                    stack.extend(reversed([ch for ch in n.children if isinstance(ch, Tree)]))
                else:
                    parts.append(self.condition(n, depth + 1))
            return and_(*parts) if node.data == "and_" else or_(*parts)
        if node.data == "not_":
            return not_(self.condition(node.children[1], depth + 1))
        ch = node.children
        if node.data == "compare":
            return self.c.compare(str(ch[1]), self.value(ch[0], depth), self.value(ch[2], depth))
        if node.data == "like":
            return self.c.like(self.value(ch[0], depth), self.value(ch[3], depth), ch[1] is not None)
        if node.data == "between":
            return self.c.between(self.value(ch[0], depth), self.value(ch[3], depth), self.value(ch[5], depth),
                                  ch[1] is not None)
        if node.data == "in_":
            return self.c.in_(self.value(ch[0], depth), [self.value(v, depth) for v in ch[3:]], ch[1] is not None)
        if node.data == "isnull":
            return self.c.isnull(self.value(ch[0], depth), ch[2] is not None)
        if node.data == "truth":
            return self.c.truth(self.value(ch[0], depth))
        raise AssertionError(node.data)            # pragma: no cover - the grammar has no other condition

    def value(self, node: Any, depth: int) -> _Value:
        if depth > MAX_DEPTH:
            raise self.c.fail(f"nested more than {MAX_DEPTH} levels deep")
        kind, ch = node.data, node.children
        if kind == "prop":
            tok = ch[0]
            return self.c.prop(_unquote(tok, '"') if tok.type == "QIDENT" else str(tok))
        if kind == "string":
            return self.c.literal(_unquote(ch[0], "'"))
        if kind == "number":
            return self.c.literal(_number(ch[0]))
        if kind == "boolean":
            return self.c.literal(str(ch[0]).lower() == "true")
        if kind == "geometry":
            wkt = self.c.text[node.meta.start_pos:node.meta.end_pos]
            try:
                geom = shapely.from_wkt(wkt)
            except shapely.errors.GEOSException as exc:
                raise self.c.fail(f"{wkt[:60]!r} is not valid WKT ({exc})", position=node.meta.start_pos + 1) \
                    from None
            return self.c.geometry_literal(geom, wkt if len(wkt) <= 60 else wkt[:57] + "…")
        if kind == "function":
            name, args = str(ch[0]), [a for a in ch[1:] if a is not None]
            return self.c.function(name, [self.raw(a) for a in args],
                                   lambda: [self.value(a, depth + 1) for a in args])
        raise AssertionError(kind)                 # pragma: no cover

    def raw(self, node: Any) -> Any:
        """A literal argument as its Python value (DATE, TIMESTAMP and BBOX take literals only)."""
        if node.data == "string":
            return _unquote(node.children[0], "'")
        if node.data == "number":
            return _number(node.children[0])
        return None


def _syntax_error(text: str, exc: UnexpectedInput) -> BadParameter:
    pos = getattr(exc, "pos_in_stream", None)
    if isinstance(exc, UnexpectedToken):
        pos = exc.token.start_pos if exc.token.type != "$END" else len(text)
        found = "the end of the filter" if exc.token.type == "$END" else repr(str(exc.token))
    elif isinstance(exc, UnexpectedCharacters):
        found = repr(text[exc.pos_in_stream])
    elif isinstance(exc, UnexpectedEOF):
        pos, found = len(text), "the end of the filter"
    else:                                           # pragma: no cover
        found = "this"
    pos = len(text) if pos is None else pos
    context = text[max(0, pos - 20):pos + 20]
    return BadParameter(f"filter: syntax error at character {pos + 1}: unexpected {found} (near {context!r})",
                        parameter="filter", position=pos + 1)


# --- CQL2 JSON -------------------------------------------------------------------------------------------------------

_JSON_COMPARE = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class _Json:
    """Walks a CQL2 JSON filter (OGC 21-065r2, annex B's JSON schema)."""

    def __init__(self, c: _Compiler) -> None:
        self.c = c

    def condition(self, node: Any, depth: int = 0) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise self.c.fail(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, bool):
            return true() if node else false()
        if not isinstance(node, dict) or "op" not in node:
            if isinstance(node, dict) and "property" in node:
                return self.c.truth(self.value(node, depth))
            raise self.c.fail(f"a condition ({{\"op\": …, \"args\": […]}}) expected, not {_short(node)}")
        op, args = node.get("op"), node.get("args")
        if not isinstance(op, str) or not isinstance(args, list):
            raise self.c.fail(f"{_short(node)}: \"op\" must be a string and \"args\" a list")
        op = op.lower()
        if op in ("and", "or"):
            if len(args) < 2:
                raise self.c.fail(f"{op} takes at least two conditions")
            parts = [self.condition(a, depth + 1) for a in args]
            return and_(*parts) if op == "and" else or_(*parts)
        if op == "not":
            [a] = self.n(op, args, 1)
            return not_(self.condition(a, depth + 1))
        if op in _JSON_COMPARE:
            a, b = self.n(op, args, 2)
            return self.c.compare(_JSON_COMPARE[op], self.value(a, depth), self.value(b, depth))
        if op == "like":
            a, b = self.n(op, args, 2)
            return self.c.like(self.value(a, depth), self.value(b, depth), False)
        if op == "between":
            a, lo, hi = self.n(op, args, 3)
            return self.c.between(self.value(a, depth), self.value(lo, depth), self.value(hi, depth), False)
        if op == "in":
            a, items = self.n(op, args, 2)
            if not isinstance(items, list) or not items:
                raise self.c.fail("in takes a property and a non-empty list of values")
            return self.c.in_(self.value(a, depth), [self.value(i, depth + 1) for i in items], False)
        if op == "isnull":
            [a] = self.n(op, args, 1)
            return self.c.isnull(self.value(a, depth), False)
        return self.c.truth(self.value(node, depth))

    def n(self, op: str, args: list[Any], n: int) -> list[Any]:
        if len(args) != n:
            raise self.c.fail(f"{op} takes {n} argument{'s' if n > 1 else ''}, not {len(args)}")
        return args

    def value(self, node: Any, depth: int) -> _Value:
        if depth > MAX_DEPTH:
            raise self.c.fail(f"nested more than {MAX_DEPTH} levels deep")
        if node is None or isinstance(node, list):
            raise self.c.fail(f"{_short(node)} is not a value here")
        if not isinstance(node, dict):
            return self.c.literal(node)
        if set(node) == {"property"} and isinstance(node["property"], str):
            return self.c.prop(node["property"])
        if set(node) == {"date"}:
            return self.c.date_literal(node["date"], "date")
        if set(node) == {"timestamp"}:
            return self.c.date_literal(node["timestamp"], "timestamp")
        if set(node) == {"bbox"} and isinstance(node["bbox"], list):
            return self.c.bbox(node["bbox"], f"bbox {node['bbox']}")
        if "type" in node and ("coordinates" in node or "geometries" in node):
            try:
                geom = shapely.geometry.shape(node)
            except Exception as exc:  # noqa: BLE001 - whatever shapely finds wrong with client GeoJSON: 400
                raise self.c.fail(f"{_short(node)} is not a GeoJSON geometry ({exc})") from None
            return self.c.geometry_literal(geom, _short(node))
        if isinstance(node.get("op"), str) and isinstance(node.get("args"), list):
            args = node["args"]
            return self.c.function(node["op"], args, lambda: [self.value(a, depth + 1) for a in args])
        raise self.c.fail(f"{_short(node)} is not a value (property, literal, date, timestamp, bbox, geometry or "
                          "function)")


def _short(node: Any) -> str:
    text = json.dumps(node, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "…"


# --- the entry points ----------------------------------------------------------------------------------------------

def parse_filter(text: str, lang: str | None, queryables: Mapping[str, Queryable], geometry: Any = None,
                 filter_crs: str | None = None, storage_srid: int | None = None) -> ColumnElement[bool]:
    """The WHERE clause of a CQL2 filter (``lang`` cql2-text, the default, or cql2-json) over ``queryables`` (by
    API name); ``geometry`` is the column of the property ``geometry`` (unless a geometry queryable names another),
    ``filter_crs`` the CRS of geometry literals (default CRS84) and ``storage_srid`` the column's (default: its
    type's SRID). Raises ``BadParameter`` (400) for anything it cannot translate exactly."""
    if lang is not None and lang not in LANGUAGES:
        raise BadParameter(f"filter-lang={lang!r}: cql2-text (the default) or cql2-json", parameter="filter-lang")
    if not text or not text.strip():
        raise BadParameter("filter is empty", parameter="filter")
    if len(text) > MAX_LENGTH:
        raise BadParameter(f"filter is {len(text):,} characters long; at most {MAX_LENGTH:,}", parameter="filter")
    if "\x00" in text:
        raise BadParameter("filter contains the character NUL", parameter="filter", position=text.index("\x00") + 1)
    compiler = _Compiler(queryables, geometry, filter_crs, storage_srid, text)
    if lang == "cql2-json":
        try:
            node = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise BadParameter(f"filter is not JSON: {exc}", parameter="filter",
                               **({"position": exc.pos + 1} if isinstance(exc, json.JSONDecodeError) else {})) \
                from None
        return _Json(compiler).condition(node)
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    return _Text(compiler).condition(tree)


def parse_sortby(text: str, queryables: Mapping[str, Queryable]) -> list:
    """``+a,-b`` (``a`` alone is ascending) → ORDER BY clauses over the queryables. Geometries do not sort."""
    clauses, seen = [], set()
    for raw in text.split(","):
        key = raw.strip()
        if raw.startswith(" ") and key and key[0] not in "+-":
            key = "+" + key                   # an unencoded '+' in a URL arrives as a space
        direction, name = ("-", key[1:]) if key.startswith("-") else ("+", key[1:] if key.startswith("+") else key)
        name = name.strip()
        if not name:
            raise BadParameter(f"sortby={text!r}: an empty sort key; give +name or -name, separated by commas",
                               parameter="sortby")
        q = queryables.get(name)
        if q is None:
            raise BadParameter(f"sortby: unknown property {name!r}; the sortable properties are "
                               + ", ".join(sorted(n for n, v in queryables.items() if v.type in SCALAR_TYPES)),
                               parameter="sortby", property=name)
        if q.type not in SCALAR_TYPES:
            raise BadParameter(f"sortby: {name!r} is a geometry and does not sort", parameter="sortby",
                               property=name)
        if name in seen:
            raise BadParameter(f"sortby: {name!r} is given twice", parameter="sortby", property=name)
        seen.add(name)
        col = q.expression()
        clauses.append(col.desc() if direction == "-" else col.asc())
    return clauses
