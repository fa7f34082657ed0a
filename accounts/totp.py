"""The second factor: time-based one-time passwords (RFC 6238) as every authenticator app makes them — 30-second
steps, 6 digits, SHA-1, a random 160-bit secret.

- A code of the step before or after the current one is accepted too (``VALID_WINDOW`` = 1: clocks of phones drift,
  and people type slowly).
- A code is good once: the step it belongs to is kept in ``users.totp_last_step`` and any code of that step or an
  earlier one is refused afterwards (an observed or phished code cannot be replayed within its window).
- Enrolment shows the secret three ways: as text, as an ``otpauth://`` URI, and as that URI in a QR code drawn as an
  inline SVG (``segno``; no image service, nothing leaves the server). The issuer the app shows is
  "Breitband <tenant name>", so that people with accounts in two states can tell them apart.
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime

import pyotp
import segno

from breitband.errors import UnprocessableEntity

INTERVAL_S = 30
DIGITS = 6
VALID_WINDOW = 1
ISSUER = "Breitband"
_CODE = re.compile(rf"^\d{{{DIGITS}}}$")


def new_secret() -> str:
    """A random base32 secret (32 characters: 160 bits, the RFC 4226 recommendation)."""
    return pyotp.random_base32()


def issuer(tenant_name: str) -> str:
    return f"{ISSUER} {tenant_name}".strip()


def otpauth_uri(secret: str, email: str, tenant_name: str) -> str:
    """The URI an authenticator app reads: the account is the e-mail address, the issuer names the tenant."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL_S).provisioning_uri(name=email,
                                                                                 issuer_name=issuer(tenant_name))


def qr_svg(uri: str) -> str:
    """The URI as a QR code, an ``<svg>`` element to put into the page as it is (black on white, so that it scans
    in a dark theme too)."""
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff",
                                                 title="QR code for your authenticator app")


def normalise_code(code: str | None, *, field: str = "totp_code") -> str:
    """The code as typed, without the spaces apps show in its middle ("123 456"); 422 when it cannot be a code."""
    digits = re.sub(r"[\s-]", "", code or "")
    if not _CODE.match(digits):
        raise UnprocessableEntity(f"A code from the authenticator app has {DIGITS} digits", type="totp-malformed",
                                  field=field)
    return digits


def step_of(at: datetime) -> int:
    """The time step (counter) of an instant."""
    return int(at.timestamp()) // INTERVAL_S


def matching_step(secret: str, code: str, *, at: datetime, last_step: int | None) -> int | None:
    """The step whose code ``code`` is — within ``VALID_WINDOW`` steps of ``at`` and later than ``last_step`` (the one
    used last) — or None. Every candidate is compared in constant time."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL_S)
    now = step_of(at)
    found = None
    for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
        expected = totp.generate_otp(step)
        if hmac.compare_digest(expected, code) and (last_step is None or step > last_step):
            found = step
    return found


def code_at(secret: str, at: datetime) -> str:
    """The code of the step of ``at`` (what an app shows then; for tests and the command line)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL_S).generate_otp(step_of(at))
