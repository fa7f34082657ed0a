"""TOTP codes, the replay guard, the enrolment URI and QR code (accounts/totp.py)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

from accounts import totp
from breitband.dates import parse_instant
from breitband.errors import UnprocessableEntity

AT = parse_instant("2026-01-15T10:00:10+01:00")


def test_code_of_now_and_neighbouring_steps_match():
    secret = totp.new_secret()
    assert len(secret) == 32
    step = totp.step_of(AT)
    assert totp.matching_step(secret, totp.code_at(secret, AT), at=AT, last_step=None) == step
    before = totp.code_at(secret, AT - timedelta(seconds=30))
    after = totp.code_at(secret, AT + timedelta(seconds=30))
    assert totp.matching_step(secret, before, at=AT, last_step=None) == step - 1
    assert totp.matching_step(secret, after, at=AT, last_step=None) == step + 1
    too_old = totp.code_at(secret, AT - timedelta(seconds=65))
    assert totp.matching_step(secret, too_old, at=AT, last_step=None) is None


def test_a_used_step_cannot_be_replayed():
    secret = totp.new_secret()
    code = totp.code_at(secret, AT)
    step = totp.matching_step(secret, code, at=AT, last_step=None)
    assert totp.matching_step(secret, code, at=AT, last_step=step) is None
    earlier = totp.code_at(secret, AT - timedelta(seconds=30))
    assert totp.matching_step(secret, earlier, at=AT, last_step=step) is None
    later = totp.code_at(secret, AT + timedelta(seconds=30))
    assert totp.matching_step(secret, later, at=AT + timedelta(seconds=30), last_step=step) == step + 1


def test_the_same_codes_as_an_authenticator_app():
    secret = totp.new_secret()
    assert totp.code_at(secret, AT) == pyotp.TOTP(secret).at(AT)


def test_codes_are_normalised_or_refused():
    assert totp.normalise_code(" 123 456 ") == "123456"
    assert totp.normalise_code("123-456") == "123456"
    for bad in ("", None, "12345", "1234567", "abcdef"):
        with pytest.raises(UnprocessableEntity) as exc:
            totp.normalise_code(bad)
        assert exc.value.type == "totp-malformed" and exc.value.extra["field"] == "totp_code"


def test_uri_names_the_tenant_and_the_account():
    secret = totp.new_secret()
    uri = totp.otpauth_uri(secret, "anna@hessen-mobil.example", "Hessen")
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp"
    query = parse_qs(parsed.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["Breitband Hessen"]
    assert "anna%40hessen-mobil.example" in parsed.path or "anna@hessen-mobil.example" in parsed.path


def test_qr_code_is_inline_svg():
    svg = totp.qr_svg(totp.otpauth_uri(totp.new_secret(), "anna@example.org", "Hessen"))
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<title>" in svg and "<script" not in svg
