"""Everything spatial: CRS, geometry validation, boundaries, road network, authorities, resolution."""
