"""The demo data set loaded by scripts/run: tenant Hessen, its organisations and one user per role, and the Hessen
geodata (VG250 Gemeinden, Kreise and Land; every OSM extract in data/roads/hessen/ as roads and as the base map).

Idempotent: running it again keeps what exists, gives every demo user a fresh random password and issues fresh demo
tokens (the previous ones are revoked; each expires after the setting token_default_expiry_days, like every token made
without an explicit lifetime); both are printed. A geo layer is imported again only when its files changed (compared
with the LayerImport record by SHA-256).
"""

from __future__ import annotations

import json
import secrets
import tempfile
import tomllib
from pathlib import Path

from sqlalchemy import select, update

from accounts import local
from accounts.events import Origin
from breitband import clock, identity
from breitband.db import get_database
from breitband.models import ApiToken, Organisation, OrgKind, Role, User
from breitband.settings import PROJECT_ROOT, get_settings
from geo.importers import import_basemap, import_boundaries, import_roads, same_sources
from geo.rules import validate_rules
from permits.cases.catalogue import load_catalogue_file
from permits.documents.keys import ensure_key
from permits.documents.service import load_letterheads
from permits.participation import service as participation
from permits.participation.importer import import_areas

DATA = PROJECT_ROOT / "data"
DEMO_TOKEN_NAME = "demo"

DEMO_ORGS = [
    (OrgKind.operating_office, "Breitband-Servicestelle Hessen", "servicestelle@breitband-hessen.example"),
    (OrgKind.operator, "Glasfaser Rhein-Main GmbH", "planung@glasfaser-rhein-main.example"),
    (OrgKind.road_authority, "Hessen Mobil", "genehmigungen@hessen-mobil.example"),
]

DEMO_JOB_TITLES = {      # the official's function printed under the name in decision documents
    "pruefer@hessen-mobil.example": "Sachbearbeiterin Straßenbenutzung",
    "leitung@hessen-mobil.example": "Leiter Dezernat Straßenbetrieb",
}
DEMO_USERS = [
    ("admin@breitband-hessen.example", "Petra Admin", Role.tenant_admin, "Breitband-Servicestelle Hessen"),
    ("planer@glasfaser-rhein-main.example", "Olaf Planer", Role.operator_member, "Glasfaser Rhein-Main GmbH"),
    ("leitung@glasfaser-rhein-main.example", "Greta Netzleitung", Role.operator_admin, "Glasfaser Rhein-Main GmbH"),
    ("pruefer@hessen-mobil.example", "Rita Prüfer", Role.authority_reviewer, "Hessen Mobil"),
    ("leitung@hessen-mobil.example", "Anton Leitung", Role.authority_admin, "Hessen Mobil"),
]


# Bodies to be heard (§ 127 (5) TKG) with their role and place (participation_bodies); the demo user of the first
# answers statement requests.
DEMO_BODIES = [
    ("Straßenverkehrsbehörde Stadt Neu-Isenburg", "svb@neu-isenburg.example", "traffic", "06438009"),
    ("Straßenverkehrsbehörde Kreis Offenbach", "svb@kreis-offenbach.example", "traffic", "06438"),
    ("Straßenverkehrsbehörde Stadt Frankfurt am Main", "svb@frankfurt.example", "traffic", "06412000"),
    ("Straßenverkehrsbehörde Wissenschaftsstadt Darmstadt", "svb@darmstadt.example", "traffic", "06411000"),
    ("Untere Wasserbehörde Kreis Offenbach", "uwb@kreis-offenbach.example", "water", "06438"),
    ("Untere Naturschutzbehörde Kreis Offenbach", "unb@kreis-offenbach.example", "nature", "06438"),
    ("Untere Wasserbehörde Stadt Frankfurt am Main", "uwb@frankfurt.example", "water", "06412"),
    ("Landesamt für Denkmalpflege Hessen", "denkmal@lfd-hessen.example", "monument", None),
]
DEMO_BODY_USER = ("pruefung@neu-isenburg.example", "Sven Verkehr", "Straßenverkehrsbehörde Stadt Neu-Isenburg")
MONUMENT_BODY = "Landesamt für Denkmalpflege Hessen"


def ensure_bodies(session, tenant_key: str) -> dict[str, Organisation]:
    now = clock.now()
    orgs = {}
    for name, email, role, ags in DEMO_BODIES:
        org = ensure_org(session, tenant_key, OrgKind.participating_body, name, email)
        participation.add_body(session, tenant_key, org, role, ags, now)
        orgs[name] = org
    participation.store_rules(session, tenant_key, participation.read_rules_file(
        DATA / "tenants" / "he_participation.toml"), "data/tenants/he_participation.toml", now)
    return orgs


def ensure_monuments(session, tenant_key: str, echo=print) -> None:
    """Listed buildings and ensembles (OSM ``heritage``, Kulturdenkmäler) from the demo's OSM extracts as the
    monument layer: real data, read from the same files as the roads."""
    import osmium  # deferred: only the demo's monument layer reads OSM here; not on every command line start

    features = []
    seen = set()
    factory = osmium.geom.GeoJSONFactory()
    for path in demo_roads():
        for obj in osmium.FileProcessor(str(path)).with_areas().with_filter(osmium.filter.KeyFilter("heritage")):
            if not obj.is_area() or obj.id in seen:
                continue
            seen.add(obj.id)
            try:
                geometry = json.loads(factory.create_multipolygon(obj))
            except RuntimeError:
                continue
            features.append({"type": "Feature", "geometry": geometry, "properties": {
                "name": obj.tags.get("name") or "Kulturdenkmal", "designation": f"heritage={obj.tags['heritage']}",
                "ref": f"osm:{'way' if obj.from_way() else 'relation'}/{obj.orig_id()}"}})
    if not features:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kulturdenkmaeler_osm.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        summary = import_areas(session, tenant_key, "monument", path, body=MONUMENT_BODY)
    echo(f"Imported {summary['counts']['areas']} monuments (OSM heritage) as participation areas.")


def ensure_tenant(session, rules_path=DATA / "tenants" / "he.toml"):
    with open(rules_path, "rb") as fh:
        raw = tomllib.load(fh)
    rules = validate_rules(raw, raw["key"])
    tenant = session.get(identity.Tenant, raw["key"])
    if tenant is None:
        tenant = identity.create_tenant(session, raw["key"], raw["name"], raw["crs"], rules)
    else:
        identity.update_tenant(session, raw["key"], name=raw["name"], crs=raw["crs"], rules=rules)
    return tenant


def ensure_org(session, tenant_key: str, kind: OrgKind, name: str, email: str) -> Organisation:
    org = session.scalar(select(Organisation).where(Organisation.tenant_key == tenant_key,
                                                    Organisation.name == name).limit(1))
    return org or identity.create_organisation(session, tenant_key, kind, name, email=email)


DEMO_BOUNDARIES = [DATA / "boundaries" / name for name in (
    "hessen_gemeinden_vg250_2018_sim200.geojson", "hessen_kreise_vg250_2018_sim200.geojson",
    "hessen_land_vg250_2018_sim20.geojson")]


def demo_roads() -> list:
    """Every Hessen OSM extract (the .osm.pbf files; the GeoJSON twin of the Frankfurter Kreuz is left out)."""
    return sorted((DATA / "roads" / "hessen").glob("*.osm.pbf"))


def ensure_geodata(session, tenant_key: str, echo=print) -> None:
    """Import the demo boundaries (which also makes the existing "Hessen Mobil" the state agency's authority), roads
    and base map, unless the layer was already imported from the same files."""
    if same_sources(session, tenant_key, "boundaries", DEMO_BOUNDARIES):
        echo("Boundaries already imported from the same files.")
    else:
        summary = import_boundaries(session, tenant_key, DEMO_BOUNDARIES)
        c = summary["counts"]
        echo(f"Imported boundaries: {c['gemeinde']} Gemeinden, {c['kreis']} Kreise, {c['land']} Land; "
             f"authorities {c['authorities']}.")
    roads = demo_roads()
    roads_changed = not same_sources(session, tenant_key, "roads", roads)
    if not roads_changed:
        echo("Roads already imported from the same files.")
    else:
        summary = import_roads(session, tenant_key, roads)
        echo(f"Imported roads: {summary['counts']['segments']} segments of {summary['counts']['ways']} ways "
             f"from {len(roads)} OSM extracts.")
    # the base map from the same extracts, after the roads (its street names and road numbers are theirs); again
    # when the roads were imported again
    if same_sources(session, tenant_key, "basemap", roads) and not roads_changed:
        echo("Base map already imported from the same files.")
    else:
        summary = import_basemap(session, tenant_key, roads)
        c = summary["counts"]
        echo(f"Imported the base map: {sum(c['areas'].values())} areas, {sum(c['lines'].values())} lines "
             f"(road labels included), {sum(c['points'].values())} points from {len(roads)} OSM extracts.")


def demo_password() -> str:
    """A random password of 16 characters for a demo user (printed once, like a token); never one the password
    policy refuses."""
    return secrets.token_urlsafe(12)


def load_demo(issue_tokens: bool = True, echo=print) -> dict[str, str]:
    tokens: dict[str, str] = {}
    people_out: list[tuple[str, str, str]] = []
    with get_database().transaction() as session:
        tenant = ensure_tenant(session)
        orgs = {name: ensure_org(session, tenant.key, kind, name, email) for kind, name, email in DEMO_ORGS}
        ensure_geodata(session, tenant.key, echo)
        load_catalogue_file(session, tenant.key, DATA / "tenants" / "he_conditions.toml")
        bodies = ensure_bodies(session, tenant.key)
        ensure_monuments(session, tenant.key, echo)
        letterheads = tomllib.loads((DATA / "tenants" / "he_authorities.toml").read_text())["authority"]
        load_letterheads(session, tenant.key, letterheads)     # real public addresses of the authorities
        ensure_key(tenant.key, tenant.name)       # development: the tenant's self-signed signing key
        people = [(email, name, role, orgs[org_name], role.value) for email, name, role, org_name in DEMO_USERS]
        email, name, org_name = DEMO_BODY_USER
        people.append((email, name, Role.authority_reviewer, bodies[org_name], "participating_body"))
        for email, name, role, org, label in people:
            user = session.scalar(select(User).where(User.tenant_key == tenant.key, User.email == email))
            if user is None:
                user = identity.create_user(session, org, email, name, role)
            user.job_title = user.job_title or DEMO_JOB_TITLES.get(email)
            if issue_tokens:
                password = demo_password()
                local.set_password(session, user, password, actor_id=None, client=Origin.cli(), how="demo")
                session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.name == DEMO_TOKEN_NAME,
                                                       ApiToken.revoked_at.is_(None))
                                .values(revoked_at=clock.now()))
                _, secret = identity.create_token(session, user, DEMO_TOKEN_NAME)
                tokens[label] = secret
                people_out.append((label, email, password))
    if issue_tokens:
        base = get_settings().public_base_url
        echo(f"Demo tenant 'he' (Hessen) loaded. API: {base}  docs: {base}/docs")
        echo(f"Sign in at {base}/#/login (new passwords on every load):")
        for label, email, password in people_out:
            echo(f"  {label:<20} {email:<40} {password}")
        days = get_settings().token_default_expiry_days
        echo(f"Demo tokens (Authorization: Bearer <token>), valid for {days} days "
             "(BREITBAND_TOKEN_DEFAULT_EXPIRY_DAYS):")
        for role, secret in tokens.items():
            echo(f"  {role:<20} {secret}")
        echo("Example: curl -H 'Authorization: Bearer " + tokens.get("operator_member", "") + f"' {base}/api/v1/me")
    return tokens


def dump(tokens: dict[str, str]) -> str:
    return json.dumps(tokens)
