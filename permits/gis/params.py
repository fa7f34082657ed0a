"""What the GIS endpoints and their filter module share about query parameters: the one problem type for an invalid
or unknown query parameter (OGC API - Features /req/core/query-param-invalid and /query-param-unknown, Part 3
filters), so that ``endpoints.py`` and ``cql.py`` raise the same 400 without importing each other."""

from __future__ import annotations

from breitband.errors import ProblemError


class BadParameter(ProblemError):
    """400 ``invalid-parameter``; raise it with ``parameter=`` (the query parameter's name) and, where it helps, the
    ``property`` of a filter or sort key and the ``position`` (1-based character) of a syntax error."""

    status, type, title = 400, "invalid-parameter", "Invalid query parameter"
