"""`breitband import ...`: geo data imports per tenant (boundaries, roads, Ortsdurchfahrten, base map).

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
from geo.importers import format_summary, import_basemap, import_boundaries, import_ortsdurchfahrten, import_roads
from geo.importers.road_mapping import load_mapping

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
                                                        "lines with OSM tags as properties; with a mapping: a road "
                                                        "database's lines (Shapefile, GeoPackage, ..., any CRS)"),
          tenant: str = TENANT,
          mapping: Optional[Path] = typer.Option(None, "--mapping", help="Column mapping as a TOML file, e.g. "
                                                 "data/road_mappings/atkis-basis-dlm-ver01_l.toml"),
          map_: Optional[str] = typer.Option(None, "--map", help="Columns of the road database's file: "
                                             "ref=STRNR,class=KLASSE,name=NAME (ref may be a template such as "
                                             "'ref={KLASSE} {STRNR}')"),
          class_map: Optional[str] = typer.Option(None, "--class-map", help="Values of the class column → road "
                                                  "class: 'A=autobahn,B=bund,L=land,K=kreis,G=gemeinde' ('*=…' "
                                                  "for every other value)"),
          skip: Optional[list[str]] = typer.Option(None, "--skip", help="Skip features with these values: "
                                                   "COLUMN=VALUE[,VALUE...], e.g. ZUS=2100,4000 (repeatable)"),
          quiet: bool = QUIET, as_json: bool = AS_JSON) -> None:
    """Import the road network (ways with a highway tag), classified by the tenant's rules; or a road database's
    file (ATKIS Basis-DLM, a state's road information system) through a column mapping (docs/cli.md)."""
    road_mapping = load_mapping(mapping, map_, class_map, skip)
    with get_database().transaction() as session:
        summary = import_roads(session, tenant, files, mapping=road_mapping, progress_bar=not quiet)
    _print(summary, as_json)


@import_app.command("ortsdurchfahrten")
def ortsdurchfahrten(file: Path = typer.Argument(..., help="Polygons or lines (any GIS file GDAL reads, any CRS); "
                                                           "optional attributes road_ref/ref, gemeinde_ags/ags, name"),
                     tenant: str = TENANT, quiet: bool = QUIET, as_json: bool = AS_JSON) -> None:
    """Import the Ortsdurchfahrt stretches fixed by the authorities."""
    with get_database().transaction() as session:
        summary = import_ortsdurchfahrten(session, tenant, file, progress_bar=not quiet)
    _print(summary, as_json)


@import_app.command("basemap")
def basemap(files: list[Path] = typer.Argument(..., help="OpenStreetMap .osm.pbf/.osm/.osm.gz/.osm.bz2, usually "
                                                          "the same extracts as the roads"),
            tenant: str = TENANT, quiet: bool = QUIET, as_json: bool = AS_JSON) -> None:
    """Import the base map: land use and land cover, water, buildings, railways, place names and house numbers
    from the OSM files, plus street names and road numbers along the tenant's roads (import the roads first).
    Replaces the tenant's base map; running it again with the same files gives the same map."""
    with get_database().transaction() as session:
        summary = import_basemap(session, tenant, files, progress_bar=not quiet)
    _print(summary, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
