"""Breitband: the service shell (settings, database, auth, tenants, errors, Celery, CLI)."""

__version__ = "0.1.0"
