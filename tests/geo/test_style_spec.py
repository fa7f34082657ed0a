"""Every MapLibre style the service serves is valid by the MapLibre style specification, checked with its own
validator (`gl-style-validate` of the npm package @maplibre/maplibre-gl-style-spec, a devDependency of web/ that
scripts/setup.sh installs with npm ci).

The styles are fetched through HTTP as a client gets them: the public style of a tenant, and the style with the
caller's layers for each kind of caller (operator, authority, participating body via the tenant admin).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from breitband.settings import PROJECT_ROOT

VALIDATOR = PROJECT_ROOT / "web" / "node_modules" / ".bin" / "gl-style-validate"


def validate(style: dict, tmp_path, name: str) -> list[dict]:
    if not VALIDATOR.exists():
        pytest.fail(f"{VALIDATOR} is missing: scripts/setup.sh installs the web app's npm packages (npm ci in web/), "
                    "among them @maplibre/maplibre-gl-style-spec")
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(style))
    proc = subprocess.run([str(VALIDATOR), "--json", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout or "[]")


def style_routes(client) -> set[str]:
    return {path for path in client.get("/openapi.json").json()["paths"] if path.startswith("/styles/")}


def test_the_validator_finds_errors(tmp_path):
    """The check can fail: a layer on a source the style lacks, and an unknown paint property."""
    errors = validate({"version": 8, "sources": {}, "layers": [
        {"id": "roads", "type": "line", "source": "roads", "source-layer": "roads",
         "paint": {"line-colour": "#000"}}]}, tmp_path, "broken")
    messages = [e["message"] for e in errors]
    assert any('source "roads" not found' in m for m in messages), messages
    assert any("line-colour" in m for m in messages), messages


def test_every_served_style_is_valid(client, he, tmp_path):
    # the service serves this one style; a new style route must be added to the variants below
    assert style_routes(client) == {"/styles/breitband.json"}
    variants = {
        "public": client.get("/styles/breitband.json", params={"tenant": "he"}),
        "operator": client.get("/styles/breitband.json", headers=he.operator.headers),
        "authority": client.get("/styles/breitband.json", headers=he.autobahn.headers),
        "admin": client.get("/styles/breitband.json", headers=he.admin.headers),
        "another-tenant's public style with a token": client.get("/styles/breitband.json", params={"tenant": "he"},
                                                                 headers=he.operator.headers),
    }
    checked = {}
    for name, resp in variants.items():
        assert resp.status_code == 200, (name, resp.text)
        style = resp.json()
        checked[name] = sorted(style["sources"])
        errors = validate(style, tmp_path, name.replace(" ", "-").replace("'", ""))
        assert errors == [], (name, errors)
    base = ["admin_labels", "basemap_areas", "basemap_lines", "basemap_points", "boundaries", "roads"]
    assert checked["public"] == base
    assert checked["operator"] == checked["authority"] == sorted(["applications", *base])
