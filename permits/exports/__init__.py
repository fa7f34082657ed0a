"""Exports of cases and applications as GeoPackage, Shapefile (zip), CSV and GeoJSON."""
