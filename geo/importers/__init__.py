"""GIS imports per tenant: boundaries (and the authority directory), road network, Ortsdurchfahrten.

Public API (none of these commits; the caller does, e.g. the CLI ``breitband import ...`` or the demo loader):

- :func:`import_boundaries` (session, tenant_key, paths, population=None) -> summary dict
- :func:`import_roads` (session, tenant_key, paths, mapping=None) -> summary dict; ``mapping``: a
  :class:`RoadMapping` (:func:`load_mapping`) for road databases' files (ATKIS, a state's road information system)
- :func:`import_ortsdurchfahrten` (session, tenant_key, path) -> summary dict
- :func:`import_basemap` (session, tenant_key, paths) -> summary dict: land use, water, buildings, railways,
  places, house numbers from OSM files, and road labels from the tenant's road network
- :func:`load_road_segments` (session, tenant_key, ways) -> counts: the fast loader behind import_roads, for callers
  with already-parsed ways (a :class:`WayArrays` or an iterable of :class:`Way`), e.g. the benchmark.

Each import replaces that tenant's layer inside the caller's transaction and records a LayerImport row with the
sources and the summary; a bad file raises breitband.errors.UnprocessableEntity naming the file.
"""

from geo.importers.basemap import import_basemap
from geo.importers.boundaries import import_boundaries, load_population, parse_number
from geo.importers.common import Summary, format_summary, same_sources
from geo.importers.ortsdurchfahrten import import_ortsdurchfahrten
from geo.importers.road_mapping import RoadMapping, load_mapping
from geo.importers.roads import (
                                 Classifier,
                                 finish_road_segments,
                                 import_roads,
                                 load_road_segments,
                                 propagate_link_classes,
                                 split_ways,
)
from geo.importers.ways import Way, WayArrays, read_osm, read_road_files

__all__ = [
    "Classifier", "Summary", "Way", "WayArrays", "finish_road_segments", "format_summary", "import_basemap",
    "import_boundaries",
    "import_ortsdurchfahrten", "import_roads", "load_mapping", "load_population", "load_road_segments",
    "parse_number", "propagate_link_classes", "RoadMapping", "read_osm", "read_road_files", "same_sources",
    "split_ways",
]
