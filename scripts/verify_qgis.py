#!/usr/bin/python3
"""Read the OGC API - Features of a running Breitband with QGIS's own provider ("OAPIF"), headless, the way a GIS
desk adds it in QGIS 3.22: HTTP Basic with any user name and an API token as the password, stored as an
authentication configuration (authcfg) in a throw-away QGIS auth database.

Needs Debian's QGIS Python bindings (``apt-get install python3-qgis``) and runs with the system Python, not the
project's .venv (the bindings are built for it); it imports nothing of the project:

    /usr/bin/python3 scripts/verify_qgis.py http://localhost:8000 <token>

For every collection it prints the layer's geometry type, CRS and feature count as QGIS sees them, checks that every
feature has that one geometry type, and prints the first feature's attributes. Exit status 1 when a layer is invalid
or a feature has another geometry type than its layer. Not part of the test suite (python3-qgis is ~1 GB of
packages); tests/permits/test_ogc_gdal.py checks the same with GDAL in CI.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")          # no display: Qt's offscreen platform
AUTH_DIR = tempfile.mkdtemp(prefix="qgis-auth-")
os.environ["QGIS_AUTH_DB_DIR_PATH"] = AUTH_DIR                  # a fresh auth database, not the user's

from qgis.core import (  # noqa: E402 - after the environment above, which QGIS reads when it loads
    Qgis,
    QgsApplication,
    QgsAuthMethodConfig,
    QgsDataSourceUri,
    QgsVectorLayer,
    QgsWkbTypes,
)


def collections(base: str, token: str) -> list[dict]:
    request = urllib.request.Request(f"{base}/api/v1/ogc/collections", headers={
        "Authorization": "Basic " + base64.b64encode(f"qgis:{token}".encode()).decode()})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["collections"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the service's address, e.g. http://localhost:8000")
    parser.add_argument("token", help="an API token (read-only is enough)")
    args = parser.parse_args()
    base = args.base.rstrip("/")
    try:
        listed = collections(base, args.token)
    except urllib.error.HTTPError as exc:
        print(f"error: {base}/api/v1/ogc/collections answered {exc.code} {exc.reason} (a wrong or expired token?)")
        return 1

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    auth = QgsApplication.authManager()
    auth.setMasterPassword("verify-qgis", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName("Breitband")
    config.setConfig("username", "qgis")
    config.setConfig("password", args.token)
    auth.storeAuthenticationConfig(config)
    print(f"QGIS {Qgis.QGIS_VERSION}, provider OAPIF, Basic authentication (authcfg {config.id()})")

    failed = False
    for coll in listed:
        uri = QgsDataSourceUri()
        uri.setParam("url", f"{base}/api/v1/ogc")
        uri.setParam("typename", coll["id"])
        uri.setAuthConfigId(config.id())
        layer = QgsVectorLayer(uri.uri(False), coll["id"], "OAPIF")
        if not layer.isValid():
            print(f"{coll['id']}: INVALID ({layer.dataProvider().error().summary() if layer.dataProvider() else ''})")
            failed = True
            continue
        kind = QgsWkbTypes.displayString(layer.wkbType())
        found = [f for f in layer.getFeatures()]
        types = {QgsWkbTypes.displayString(f.geometry().wkbType()) for f in found if f.hasGeometry()}
        mixed = types - {kind}
        failed |= bool(mixed)
        # QGIS 3.22 types a layer by its first features: an empty one shows as NoGeometry
        print(f"{coll['id']}: {kind}, {layer.crs().authid()}, {layer.featureCount()} features"
              + (f", OTHER TYPES {sorted(mixed)}" if mixed else ", every feature " + kind if found else ""))
        if found:
            first = found[0]
            shown = {name: first[name] for name in ("reference", "status", "case_status", "road_ref", "length_m",
                                                    "rule", "days_left") if name in first.fields().names()}
            print("    " + json.dumps(shown, ensure_ascii=False, default=str))
    app.exitQgis()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
