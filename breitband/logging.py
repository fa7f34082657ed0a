"""Structured JSON logs (one object per line) with request id, method, path, status and duration, scrubbed of
secrets and personal data.

Scrubbing (``scrub``): every record's message (after its arguments are filled in), its extra fields (nested too),
its exception text and stack are rewritten before any handler writes them:

* our API tokens (``bb_`` + 43 characters, ``breitband.identity.create_token``) → ``bb_***``; webhook signing
  secrets ``whsec_...`` → ``whsec_***``; ``Authorization: Bearer ...`` / ``Basic ...`` → ``Bearer ***``;
* passwords in URLs (``postgresql://user:secret@host`` → ``postgresql://user:***@host``) and in ``key=value`` or
  ``"key": "value"`` pairs whose key says password, passphrase, secret or API key; extra fields with such names;
* the configured secrets themselves wherever they appear (``configure_logging`` registers the SMTP password, the
  signing key passphrase and the passwords of the database, replica, broker and result backend URLs);
* e-mail addresses are personal data: the local part is masked and the domain kept (``***@neu-isenburg.example``),
  which still tells which organisation a failed notice was for.

The step is a ``logging.Filter`` on the handler ``configure_logging`` installs (the API, the worker through
Celery's ``setup_logging`` signal in ``breitband.celery``, the CLI) and is repeated by ``JsonFormatter`` itself, so
a record that reaches the formatter some other way is scrubbed as well.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import make_url

from breitband.settings import get_settings

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

MASK = "***"
_KEY = r"(?:password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?token|refresh[_-]?token|client[_-]?secret)"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host → scheme://user:***@host (database, broker, SMTP URLs)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+@"), r"\1" + MASK + "@"),
    # webhook signing secrets (notifications.webhooks.new_secret)
    (re.compile(r"whsec_[A-Za-z0-9_\-]+"), "whsec_" + MASK),
    # API tokens: breitband.identity.TOKEN_PREFIX "bb_" + secrets.token_urlsafe(32)
    (re.compile(r"(?<![A-Za-z0-9_\-])bb_[A-Za-z0-9_\-]{20,}"), "bb_" + MASK),
    # Authorization header values
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/\-]+=*"), r"\1\2" + MASK),
    # password=..., "passphrase": "...", secret: ..., api_key=...
    (re.compile(r"(?i)(" + _KEY + r"[\"']?\s*[=:]\s*)(?:\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s\"',;&)}\]]+)"),
     r"\1" + MASK),
    # e-mail addresses: personal data; the domain is kept
    (re.compile(r"(?<![\w.%+\-])[\w.%+\-]+@((?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,})\b"), MASK + r"@\1"),
]
_SECRET_KEY = re.compile(r"(?i)" + _KEY + r"|authorization|^token$|_token$|^secret")
_known: set[str] = set()


def add_known_secret(value: str | None) -> None:
    """Mask this value wherever it appears in a log line (values shorter than 4 characters are ignored: masking
    them would garble every line)."""
    if value and len(value) >= 4:
        _known.add(value)


def scrub(text: str, *, personal_data: bool = True) -> str:
    """``text`` without secrets and (unless ``personal_data`` is False, e.g. for a CLI error shown to the operator
    who typed the address) without the local parts of e-mail addresses."""
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS if personal_data else _PATTERNS[:-1]:
        text = pattern.sub(replacement, text)
    return text


def scrub_value(value: Any, key: str | None = None, _depth: int = 0) -> Any:
    """``value`` with every string in it scrubbed; the whole value masked when its key names a secret."""
    if key is not None and isinstance(value, (str, bytes)) and _SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str):
        return scrub(value)
    if value is None or isinstance(value, (bool, int, float)) or _depth > 8:
        return value
    if isinstance(value, dict):
        return {k: scrub_value(v, str(k), _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [scrub_value(v, None, _depth + 1) for v in value]
    return scrub(str(value))


class ScrubFilter(logging.Filter):
    """Rewrites the record in place (so every later handler and formatter sees the scrubbed form): the message with
    its arguments filled in, the extra fields, the exception and stack text. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_scrubbed", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not lose the record
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = scrub(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _RESERVED and not key.startswith("_"):
                record.__dict__[key] = scrub_value(value, key)
        if record.exc_info and not record.exc_text:
            # Formatters print exc_text when it is set rather than rendering exc_info again.
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        record._scrubbed = True
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ScrubFilter().filter(record)
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, default=lambda v: scrub(str(v)), ensure_ascii=False)


class TextFormatter(JsonFormatter):
    """One readable line per record for a person at a terminal (BREITBAND_LOG_FORMAT=text): time, level, logger,
    message, then the same fields as the JSON lines as key=value; scrubbed like them."""

    def format(self, record: logging.LogRecord) -> str:
        data = json.loads(super().format(record))
        head = (f"{data.pop('ts')[11:23]} {data.pop('level').upper():7} {data.pop('logger')}: {data.pop('msg')}")
        exc, stack = data.pop("exc", None), data.pop("stack", None)
        fields = " ".join(f"{k}={v if isinstance(v, str | int | float) else json.dumps(v, ensure_ascii=False)}"
                          for k, v in data.items() if k != "color_message")
        return "\n".join(part for part in (f"{head}  {fields}" if fields else head, exc, stack) if part)


def configured_secrets(settings: Any) -> Iterable[str]:
    """The secret values in the settings: SMTP password, signing key passphrase, passwords in the service URLs."""
    for name in ("smtp_password", "signing_key_passphrase"):
        yield getattr(settings, name, None)
    for name in ("database_url", "database_readonly_url", "broker_url", "result_backend", "limits_redis_url"):
        url = getattr(settings, name, None)
        if not url:
            continue
        try:
            yield make_url(str(url)).password
        except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads; the URL pattern still masks it
            continue


def configure_logging(level: str | int = "INFO", *, settings: Any = None, stream: Any = None) -> None:
    """JSON lines on stderr (or ``stream``) through one scrubbing handler on the root logger; uvicorn's and
    Celery's loggers propagate to it. Calling it again only sets the level (and registers the secrets)."""
    try:
        settings = settings or get_settings()
    except ValidationError:             # the command that needs the settings reports what is wrong with them
        settings = None
    for value in configured_secrets(settings) if settings is not None else ():
        add_known_secret(value)
    level = logging.getLevelName(level) if isinstance(level, int) else level.upper()
    root = logging.getLogger()
    if any(getattr(h, "_breitband", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter() if getattr(settings, "log_format", "json") == "text" else JsonFormatter())
    handler.addFilter(ScrubFilter())
    handler._breitband = True  # type: ignore[attr-defined]
    # Replaces the console handlers someone set up before (basicConfig); handlers that write elsewhere (a test
    # runner's capture, a file) stay.
    root.handlers = [h for h in root.handlers if not (type(h) is logging.StreamHandler
                                                      and h.stream in (sys.stderr, sys.stdout))] + [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
    for name in ("uvicorn", "uvicorn.error", "celery"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


def new_request_id() -> str:
    return uuid.uuid4().hex
