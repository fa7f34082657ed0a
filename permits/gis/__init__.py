"""Permit data for GIS tools: OGC API - Features and the applications tile layer."""
