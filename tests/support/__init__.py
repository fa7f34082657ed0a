"""Fixtures and helpers the test directories share, one module per topic.

How they are found. ``tests`` is a package (tests/__init__.py) and pytest puts the project root on ``sys.path``
(``pythonpath = ["."]`` in pyproject.toml), so a test module imports a helper by its full name:

    from tests.support.api import PROBLEM, collection, trench

and never ``from conftest import ...``: every test directory has a module called conftest, and which one such an import
meets depends on the order pytest imported them. The fixtures of these modules are registered once, for the whole suite,
by ``pytest_plugins`` in tests/conftest.py (pytest accepts it in the root conftest, not in a directory's); a test asks
for them by name as for any fixture, without importing them. A directory's conftest.py keeps only what belongs to that
directory (tests/faults: the private stack; tests/web: the server, the browser and its people; tests/notifications:
committed people for the tests with real workers).

Modules:
    hessen     the real data of tenant "he" (he_data), its authorities, routes along real roads (lines)
    people     people of tenant "he" with tokens (Person, He, build_he, the he fixture)
    api        request bodies (trench, collection, draft_body), PROBLEM, the Api helper and the api fixture
    clock      the API's clock, set by the test (Clock, the clock fixture)
    workers    Celery: tasks in the test process on the test's database (task_db), a real worker (worker)
    mail       a real SMTP server (SmtpServer, the smtp fixture)
    webhooks   a real HTTP server receiving webhooks (WebhookReceiver, the receiver fixture)
    documents  a granted decision with its signed document (issue, the granted fixture)
    oidc       a real OpenID Provider (Node, tests/support/oidc/) for OIDC sign-in (the oidc_provider fixture, use_oidc)
    waiting    wait_for (a condition, never a fixed time) and free_port
    faults     the private stack of the fault tests (Stack and what the tests ask it); no fixtures
    markers    the markers browser, worker and slow, and the check that tests using those fixtures carry them
"""
