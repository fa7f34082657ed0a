"""Per-tenant rules for the resolution, given as a TOML file (see data/tenants/he.toml for the commented format).

Thresholds, prefixes and agency assignments differ per state: they are configuration, not code.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from typing import Any, Literal
from urllib.parse import urlsplit

import holidays as holiday_data
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from breitband.errors import UnprocessableEntity
from breitband.models import Role

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


ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")
# Issuers over plain http are refused but for the developer's own machine (a test or local IdP).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class OidcSignIn(BaseModel):
    """Sign-in through the tenant's OpenID Provider (accounts/oidc.py): which IdP, which client, and how the IdP's
    claims become an organisation, a role and an allowed address. Claim values the maps do not name are refused
    at sign-in (nobody is provisioned into a guessed organisation or role)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)        # on the button "Anmelden mit …"
    issuer: str = Field(min_length=1, max_length=500)
    client_id: str = Field(min_length=1, max_length=255)
    # The secret is read from this environment variable at sign-in (it stays out of the database); client_secret
    # in the file itself is possible but discouraged.
    client_secret_env: str | None = None
    client_secret: str | None = Field(None, min_length=1)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    organisation_claim: str = Field("org", min_length=1)
    role_claim: str = Field("role", min_length=1)
    organisations: dict[str, str] = Field(default_factory=dict)   # claim value → organisation name or id
    roles: dict[str, Role] = Field(default_factory=dict)          # claim value → role
    allowed_domains: list[str] = Field(min_length=1)
    provision: bool = False

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        local = parts.scheme == "http" and parts.hostname in LOCAL_HOSTS
        if not (parts.scheme == "https" or local) or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"issuer {value!r} must be an https URL without query or fragment (plain http only "
                             "for localhost or 127.0.0.1)")
        return value

    @field_validator("client_secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError(f"client_secret_env {value!r} must name an environment variable (A-Z, 0-9, _), "
                             "such as BREITBAND_OIDC_HE_CLIENT_SECRET")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        if "openid" not in value or any(not s or " " in s for s in value):
            raise ValueError("scopes must contain 'openid' and be single words")
        return value

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        domains = [d.strip().lower().removeprefix("@") for d in value]
        for domain in domains:
            if not DOMAIN.match(domain):
                raise ValueError(f"{domain!r} is not a domain such as 'hessen-mobil.de'")
        return domains

    @model_validator(mode="after")
    def _one_secret(self) -> "OidcSignIn":
        if (self.client_secret_env is None) == (self.client_secret is None):
            raise ValueError("give exactly one of client_secret_env (recommended) and client_secret")
        if not self.organisations or not self.roles:
            raise ValueError("organisations and roles must each map at least one claim value")
        return self


class SignIn(BaseModel):
    """How people of the tenant sign in: roles that need a second factor, and the optional OpenID Provider."""

    model_config = ConfigDict(extra="forbid")
    totp_required_roles: list[Role] = Field(default_factory=list)
    oidc: OidcSignIn | None = None


# An origin as a browser sends it: scheme://host[:port], lower case, no default port, no path.
_ORIGIN_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_DEFAULT_PORTS = {"https": 443, "http": 80}


def normalise_origin(value: str) -> str:
    """``https://GeoPortal.Hessen.de:443`` → ``https://geoportal.hessen.de``; refuses what a browser never sends as
    an ``Origin`` (a path, even ``/``; query, fragment, user info; ``*``; ``null``) and plain http except for the
    developer's own machine, with a message that says how to write it."""
    raw = value.strip()
    if raw in ("*", "null") or "*" in raw:
        raise ValueError(f"{value!r} is not allowed: name each origin of a GIS portal, such as "
                         "'https://geoportal.hessen.de' (no wildcards)")
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if scheme not in _DEFAULT_PORTS or not host or not parts.netloc:
        raise ValueError(f"{value!r} is not an origin: write scheme://host[:port], such as "
                         "'https://geoportal.hessen.de'")
    shown = f"{scheme}://{f'[{host}]' if ':' in host else host}" + (
        "" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}")
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc or raw.endswith(("?", "#")):
        raise ValueError(f"{value!r} is not an origin: an origin has no path (not even '/'), query, fragment or user "
                         f"name; write {shown!r}")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r}: {host!r} is not an IPv6 address") from None
    elif not host.isascii() or not _ORIGIN_HOST.match(host):
        raise ValueError(f"{value!r}: the host must be written in ASCII as browsers send it (an internationalised "
                         "domain name in its xn-- form)")
    if scheme == "http" and host not in LOCAL_HOSTS:
        raise ValueError(f"{value!r}: only https origins are allowed (plain http only for localhost or 127.0.0.1)")
    return shown


class Gis(BaseModel):
    """The tenant's GIS endpoints (tiles, TileJSON, style, OGC API, exports) as used by other web applications.

    ``cors_origins``: origins of the tenant's own GIS portals whose scripts may read these endpoints cross-origin
    (CORS, geo/cors.py). Empty (the default): no CORS headers at all; browsers then let no other site read them."""

    model_config = ConfigDict(extra="forbid")
    cors_origins: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(normalise_origin(v) for v in value))


class DocumentRules(BaseModel):
    """The decision document (permits/documents): how long a consent stays valid if works do not start."""
    model_config = ConfigDict(extra="forbid")

    # The consent expires if the works have not started within this many months of its taking effect (0: no limit).
    validity_months: int = Field(24, ge=0, le=120)


class Fees(BaseModel):
    """The fee statement of a decision: free (``free = true``, with the legal basis), or a schedule: a base amount
    plus an amount per metre of the authority's part of the route, within a minimum and maximum."""
    model_config = ConfigDict(extra="forbid")

    free: bool = False
    legal_basis: str = Field(min_length=3, max_length=500)
    base_eur: float = Field(0.0, ge=0)
    per_metre_eur: float = Field(0.0, ge=0)
    min_eur: float = Field(0.0, ge=0)
    max_eur: float | None = Field(None, ge=0)
    refusal_factor: float = Field(1.0, ge=0, le=1)   # share of the fee for a refusal (state fee law often reduces it)
    payment_days: int = Field(30, ge=1, le=365)      # due this many days after the notice is received


_TEMPLATE = re.compile(r"\{([a-z0-9-]+)\}")
_TILE_PLACEHOLDERS = {"z", "x", "y", "-y"}


class BaseLayer(BaseModel):
    """An external base layer the map offers as a toggle (never required, off until the user turns it on): a WMS
    (``kind = "wms"``: the service URL and its layer names; the map asks GetMap for EPSG:3857 tiles) or a tile URL
    (``kind = "tiles"``: XYZ or a WMTS in the GoogleMapsCompatible / EPSG:3857 tile matrix set, with ``{z}``,
    ``{x}``, ``{y}`` in the URL). Its origin is allowed by the Content-Security-Policy only while it is configured
    (breitband/headers.py)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")
    name: str = Field(min_length=1, max_length=100)               # German label of the toggle
    name_en: str | None = Field(None, min_length=1, max_length=100)
    kind: Literal["wms", "tiles"]
    url: str = Field(min_length=1, max_length=1000)
    layers: str | None = Field(None, min_length=1, max_length=500)   # wms: LAYERS (comma-separated)
    format: Literal["image/png", "image/jpeg"] = "image/png"
    version: Literal["1.1.1", "1.3.0"] = "1.3.0"                    # wms
    attribution: str = Field(min_length=3, max_length=300)
    tile_size: Literal[256, 512] = 256
    min_zoom: int = Field(0, ge=0, le=22)
    max_zoom: int = Field(19, ge=0, le=22)
    opacity: float = Field(1.0, gt=0, le=1)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        local = parts.scheme == "http" and parts.hostname in LOCAL_HOSTS
        if not (parts.scheme == "https" or local) or not parts.hostname or "@" in parts.netloc or parts.fragment:
            raise ValueError(f"url {value!r} must be an https URL without user name or fragment (plain http only for "
                             "localhost or 127.0.0.1)")
        unknown = set(_TEMPLATE.findall(value)) - _TILE_PLACEHOLDERS
        if unknown:
            raise ValueError(f"url {value!r}: unknown placeholder {{{sorted(unknown)[0]}}}; a tile URL takes {{z}}, "
                             "{x}, {y} (or {-y})")
        return value.strip()

    @model_validator(mode="after")
    def _kind(self) -> "BaseLayer":
        placeholders = set(_TEMPLATE.findall(self.url))
        if self.kind == "tiles" and not {"z", "x"} <= placeholders or self.kind == "tiles" and not (
                placeholders & {"y", "-y"}):
            raise ValueError(f"base layer {self.id!r}: a tile URL needs {{z}}, {{x}} and {{y}} (e.g. "
                             ".../tile/1.0.0/LAYER/default/GLOBAL_WEBMERCATOR/{z}/{y}/{x}.png)")
        if self.kind == "wms" and placeholders:
            raise ValueError(f"base layer {self.id!r}: a WMS URL is the service's address without placeholders; "
                             "the map adds the GetMap parameters")
        if self.kind == "wms" and not self.layers:
            raise ValueError(f"base layer {self.id!r}: a WMS needs 'layers' (the LAYERS to draw)")
        if self.min_zoom > self.max_zoom:
            raise ValueError(f"base layer {self.id!r}: min_zoom is above max_zoom")
        return self

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}".lower()


class MapRules(BaseModel):
    """The web map: optional external base layers (none by default; the map never needs them)."""

    model_config = ConfigDict(extra="forbid")
    base_layers: list[BaseLayer] = Field(default_factory=list, max_length=10)

    @field_validator("base_layers")
    @classmethod
    def _unique(cls, value: list[BaseLayer]) -> list[BaseLayer]:
        ids = [b.id for b in value]
        if len(ids) != len(set(ids)):
            raise ValueError(f"base layer ids must be unique: {ids}")
        return value


# The states' codes of the ``holidays`` package (ISO 3166-2:DE without "DE-") by the AGS prefix of the state.
STATE_BY_AGS = {"01": "SH", "02": "HH", "03": "NI", "04": "HB", "05": "NW", "06": "HE", "07": "RP", "08": "BW",
                "09": "BY", "10": "SL", "11": "BE", "12": "BB", "13": "MV", "14": "SN", "15": "ST", "16": "TH"}
HOLIDAY_CATEGORIES = ("public", "catholic")
_LOCAL_DAY = re.compile(r"^(\d{4}-)?\d{2}-\d{2}$")


class LocalDay(BaseModel):
    """A day off that the ``holidays`` package does not know: ``date`` "YYYY-MM-DD" (once) or "MM-DD" (every year)."""
    model_config = ConfigDict(extra="forbid")
    date: str
    name: str = Field(min_length=1, max_length=100)

    @field_validator("date")
    @classmethod
    def _date(cls, value: str) -> str:
        value = value.strip()
        try:
            if not _LOCAL_DAY.match(value):
                raise ValueError
            date.fromisoformat(value if len(value) == 10 else f"2000-{value}")   # 2000: 29 February is possible
        except ValueError:
            raise ValueError(f"{value!r} is not a day: write 'YYYY-MM-DD' (once) or 'MM-DD' (every year)") from None
        return value


class HolidayPlace(BaseModel):
    """A place inside the state whose calendar differs (Augsburg's Friedensfest, Fronleichnam in the Catholic
    communities of Saxony and Thuringia, Mariä Himmelfahrt in Bavaria's): authorities whose AGS starts with ``ags``
    use this ``subdivision`` of the ``holidays`` package instead of the state, and/or more ``categories``, plus
    ``days`` of their own. The longest matching ``ags`` wins."""
    model_config = ConfigDict(extra="forbid")
    ags: str = Field(pattern=r"^\d{2,8}$")
    name: str | None = Field(None, max_length=200)
    subdivision: str | None = None
    categories: list[str] = Field(default_factory=list)
    days: list[LocalDay] = Field(default_factory=list)

    @field_validator("subdivision")
    @classmethod
    def _subdivision(cls, value: str | None) -> str | None:
        if value is not None and value not in holiday_data.Germany.subdivisions:
            raise ValueError(f"unknown subdivision {value!r}; the holidays package knows "
                             f"{', '.join(holiday_data.Germany.subdivisions)}")
        return value

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        return _check_categories(value)


def _check_categories(value: list[str]) -> list[str]:
    bad = [c for c in value if c not in HOLIDAY_CATEGORIES]
    if bad:
        raise ValueError(f"unknown holiday categories {bad}; allowed: {', '.join(HOLIDAY_CATEGORIES)}")
    return list(dict.fromkeys(value))


class Holidays(BaseModel):
    """The calendar on which statutory periods end (§ 31 (3) VwVfG, § 193 BGB; permits/workdays.py): the public
    holidays of ``state`` (a code of the ``holidays`` package such as "HE"; by default the state of ``state_key``),
    days the tenant adds, and places whose calendar differs. ``holidays = "HE"`` is short for ``[holidays]
    state = "HE"``."""
    model_config = ConfigDict(extra="forbid")
    state: str | None = None
    categories: list[str] = Field(default_factory=lambda: ["public"])
    days: list[LocalDay] = Field(default_factory=list)
    places: list[HolidayPlace] = Field(default_factory=list, max_length=5000)

    @field_validator("state")
    @classmethod
    def _state(cls, value: str | None) -> str | None:
        if value is not None and value not in STATE_BY_AGS.values():
            raise ValueError(f"unknown state {value!r}; use one of {', '.join(sorted(STATE_BY_AGS.values()))}")
        return value

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        return _check_categories(value)


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
    sign_in: SignIn = Field(default_factory=SignIn)
    gis: Gis = Field(default_factory=Gis)
    documents: DocumentRules = Field(default_factory=DocumentRules)
    fees: Fees | None = None                         # none: "the costs are decided separately"
    map: MapRules = Field(default_factory=MapRules)
    holidays: Holidays = Field(default_factory=Holidays)

    @field_validator("holidays", mode="before")
    @classmethod
    def _holidays_short(cls, value: Any) -> Any:
        return {"state": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _holiday_state(self) -> "TenantRules":
        if self.holidays.state is None:
            self.holidays.state = STATE_BY_AGS.get(self.state_key)
            if self.holidays.state is None:
                raise ValueError(f"state_key {self.state_key!r} is no German state: name the state's calendar "
                                 "with holidays = \"HE\" (or another state code)")
        return self

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
