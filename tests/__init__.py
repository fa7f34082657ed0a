"""The test suite, a package so that test modules import the shared helpers by one unambiguous name:
``from tests.support.api import collection, trench`` (see tests/support/__init__.py)."""
