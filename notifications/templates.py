"""Per-tenant templates (Jinja2): ``<templates_root>/<tenant>/templates/…`` first, then
``<templates_root>/default/templates/…``. Another state changes the wording of its e-mails and decision documents
by putting its own files there; no code changes. Texts are German first, English second."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from breitband.dates import BERLIN
from breitband.settings import get_settings


def de_date(value: Any) -> str:
    """2026-04-15 / an ISO instant → 15.04.2026 (instants on the Europe/Berlin calendar)."""
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        text = value.replace("Z", "+00:00")
        value = datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
    if isinstance(value, datetime):
        value = value.astimezone(BERLIN).date() if value.tzinfo else value.date()
    return value.strftime("%d.%m.%Y")


def de_datetime(value: Any) -> str:
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(BERLIN).strftime("%d.%m.%Y, %H:%M Uhr")


def de_number(value: Any, digits: int = 1) -> str:
    if value is None:
        return ""
    return f"{float(value):,.{digits}f}".replace(",", "\u2009").replace(".", ",")


def search_path(tenant_key: str, root: Path | None = None) -> list[Path]:
    root = root or get_settings().templates_root
    return [root / tenant_key / "templates", root / "default" / "templates"]


@lru_cache(maxsize=32)
def _environment(paths: tuple[str, ...]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(paths)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.filters.update(de_date=de_date, de_datetime=de_datetime, de_number=de_number)
    return env


def environment(tenant_key: str) -> jinja2.Environment:
    return _environment(tuple(str(p) for p in search_path(tenant_key)))


def select(tenant_key: str, names: list[str]) -> jinja2.Template:
    return environment(tenant_key).select_template(names)
