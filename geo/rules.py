"""Per-tenant rules for the resolution, given as a TOML file (see data/tenants/he.toml for the commented format).

Thresholds, prefixes and agency assignments differ per state: they are configuration, not code.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from breitband.errors import UnprocessableEntity

AuthorityKind = Literal["autobahn", "bund", "land", "kreis", "gemeinde", "other"]
ClassKind = Literal["autobahn", "bund", "land", "kreis", "gemeinde"]

DEFAULT_EXCLUDED_HIGHWAYS = [
    "proposed", "construction", "abandoned", "disused", "razed", "platform", "raceway", "bus_stop", "elevator",
    "emergency_bay", "rest_area", "services", "corridor", "via_ferrata", "escape",
]


class Ortsdurchfahrt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bund: int | None = None
    land: int | None = None
    kreis: int | None = None


class KreisAgency(BaseModel):
    """Kreise whose Kreisstraßen the state agency administers (the Kreis stays responsible)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    kreise: list[str] = Field(default_factory=list)


class Limits(BaseModel):
    """Limits of one route, wherever a route comes in: drafts (create, edit), submission, supplements, the
    as-built route and ``POST /resolve``. Counted on the GeoJSON before any geometry is built (features,
    vertices), the length after the transformation into the tenant's metric CRS. Over a limit → 422 problem+json
    naming the limit, the actual value and the feature."""

    model_config = ConfigDict(extra="forbid")
    max_vertices: int = Field(100_000, gt=0)        # all coordinates of all features together
    max_length_km: float = Field(200.0, gt=0)       # all lines together
    max_features: int = Field(10_000, gt=0)         # features (sections, pits, areas) of one route


class TenantRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    name: str
    state_key: str = Field(pattern=r"^\d{2}$")
    crs: str
    tolerance_m: float = Field(20.0, gt=0, le=200)
    road_classes: dict[str, ClassKind]
    highway_classes: dict[str, ClassKind] = Field(default_factory=lambda: {"motorway": "autobahn"})
    excluded_highways: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDED_HIGHWAYS))
    private_access: list[str] = Field(default_factory=lambda: ["private", "no"])
    ortsdurchfahrt: Ortsdurchfahrt = Field(default_factory=Ortsdurchfahrt)
    ortsdurchfahrt_opt_in: Ortsdurchfahrt = Field(default_factory=Ortsdurchfahrt)
    agencies: dict[ClassKind, str] = Field(default_factory=dict)
    kreis_agency: KreisAgency | None = None
    limits: Limits = Field(default_factory=Limits)
    # Legal basis named in explanations, per class (e.g. land = "HStrG § 41").
    laws: dict[str, str] = Field(default_factory=dict)
    # Resolution tuning: the route is cut into pieces of at most step_m for matching; separately mapped footways
    # and cycleways count path_penalty_m farther away than they are, so that a sidewalk along a classified road
    # goes with that road; a point within boundary_gap_m of a Gemeinde (gaps of simplified boundaries) belongs to it.
    step_m: float = Field(10.0, gt=0, le=100)
    path_penalty_m: float = Field(8.0, ge=0, le=100)
    boundary_gap_m: float = Field(150.0, ge=0, le=1000)

    @field_validator("road_classes")
    @classmethod
    def _prefixes(cls, value: dict[str, str]) -> dict[str, str]:
        for prefix in value:
            if not prefix or " " in prefix:
                raise ValueError(f"road class prefix {prefix!r} must be one token such as 'B' or 'St'")
        return value


def parse_rules(data: dict[str, Any], key: str | None = None) -> TenantRules:
    try:
        rules = TenantRules.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise UnprocessableEntity(f"Invalid rules: {problems}", type="invalid-rules") from None
    if key is not None and rules.key != key:
        raise UnprocessableEntity(f"The rules file is for tenant {rules.key!r}, not {key!r}", type="invalid-rules")
    return rules


def validate_rules(data: dict[str, Any], key: str) -> dict[str, Any]:
    return parse_rules(data, key).model_dump(mode="json")
