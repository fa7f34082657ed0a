"""`breitband import ...`: geo data imports per tenant (boundaries, roads, Ortsdurchfahrten).

Each command replaces that tenant's layer in one transaction, shows a progress bar on stderr (unless --quiet),
prints a summary (counts, skipped features with reasons) on stdout, and on a bad file prints one line
`error: <file>: <what is wrong>` and exits non-zero (2), leaving the previous layer in place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from breitband.db import get_database
from geo.importers import format_summary, import_boundaries, import_ortsdurchfahrten, import_roads

import_app = typer.Typer(help="Import geodata into a tenant: boundaries, roads, Ortsdurchfahrten. Each import "
                              "replaces that tenant's layer atomically.", no_args_is_help=True)

TENANT = typer.Option(..., "--tenant", help="Tenant key, e.g. he")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar")
AS_JSON = typer.Option(False, "--json", help="Print the summary as JSON instead of text")


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    else:
        typer.echo(format_summary(summary))


@import_app.command("boundaries")
def boundaries(files: list[Path] = typer.Argument(..., help="BKG VG250/VG5000 layers (GeoJSON or Shapefile, any "
                                                             "CRS), e.g. Gemeinden, Kreise and Land together"),
               tenant: str = TENANT,
               population: Optional[Path] = typer.Option(None, "--population", help="destatis Gemeindeverzeichnis "
                                                         "as JSON keyed by the 12-digit RS (when the files have no "
                                                         "EWZ)"),
               quiet: bool = QUIET, as_json: bool = AS_JSON) -> None:
    """Import administrative boundaries and create/update the authorities (one per Gemeinde and Kreis, plus the
    agencies named in the tenant's rules)."""
    with get_database().transaction() as session:
        summary = import_boundaries(session, tenant, files, population=population, progress_bar=not quiet)
    _print(summary, as_json)


@import_app.command("roads")
def roads(files: list[Path] = typer.Argument(..., help="OpenStreetMap .osm.pbf/.osm/.osm.gz, or GeoJSON/GeoPackage "
                                                        "lines with OSM tags as properties"),
          tenant: str = TENANT, quiet: bool = QUIET, as_json: bool = AS_JSON) -> None:
    """Import the road network (ways with a highway tag), classified by the tenant's rules."""
    with get_database().transaction() as session:
        summary = import_roads(session, tenant, files, progress_bar=not quiet)
    _print(summary, as_json)


@import_app.command("ortsdurchfahrten")
def ortsdurchfahrten(file: Path = typer.Argument(..., help="Polygons or lines (any GIS file GDAL reads, any CRS); "
                                                           "optional attributes road_ref/ref, gemeinde_ags/ags, name"),
                     tenant: str = TENANT, quiet: bool = QUIET, as_json: bool = AS_JSON) -> None:
    """Import the Ortsdurchfahrt stretches fixed by the authorities."""
    with get_database().transaction() as session:
        summary = import_ortsdurchfahrten(session, tenant, file, progress_bar=not quiet)
    _print(summary, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
