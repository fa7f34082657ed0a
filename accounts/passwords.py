"""The password policy and how passwords are stored.

Policy (NIST SP 800-63B 3.1.1.2 in spirit: length and a blocklist, no composition rules, no forced rotation):

- at least 12 and at most 256 characters (``password-too-short`` / ``password-too-long``); the upper bound only keeps
  a request from making the server hash megabytes;
- not a commonly used password (``password-common``), compared case-insensitively after Unicode NFKC, against the
  list shipped in ``data/passwords/common-passwords.txt`` (see its README for source and licence). A password of
  12 or more characters is refused when it *is* a listed password, when it is a listed (or a very short) word
  repeated ("monkeymonkey", "abcabcabcabc"), or when it is a listed word padded with digits and punctuation only
  ("dragon123456", "!!password2024") — the padding people add to reach a minimum length;
- not built on the user's own e-mail address or name (``password-personal``): the whole local part, the name without
  spaces, or any part of either of four or more characters.

Hashing: Argon2id with argon2-cffi's ``PasswordHasher`` defaults (RFC 9106's second recommended option: 64 MiB,
3 passes, 4 lanes). Measured on the project's 2-core machine: about 0.19 s per hash or verification (the same under
the tests' load) — slow enough to make guessing from a stolen table expensive, fast enough for a sign-in. When the
defaults change with a library upgrade, ``needs_rehash`` tells the sign-in to store a fresh hash.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from breitband.errors import UnprocessableEntity
from breitband.settings import PROJECT_ROOT

MIN_LENGTH = 12
MAX_LENGTH = 256
COMMON_PASSWORDS = PROJECT_ROOT / "data" / "passwords" / "common-passwords.txt"
# Listed words shorter than this are not used to find padded passwords ("abc" + 9 digits is caught as digits anyway).
MIN_PADDED_WORD = 4
# Listed words longer than this are not looked for inside a password (the list's longest padded-worth entry is ~20).
MAX_PADDED_WORD = 32
# Repeated units this short are refused whatever they are ("ababababab12" is not, "abababababab" is).
TRIVIAL_UNIT = 3
_PADDING = re.compile(r"^[\d\W_]*$")
_SPLIT = re.compile(r"[\s._+\-@]+")

_hasher = PasswordHasher()


class PasswordRejected(UnprocessableEntity):
    """A password the policy refuses; ``type`` says why, ``field`` names the input."""

    title = "Password not accepted"


def normalise(password: str) -> str:
    """What is compared: NFKC (full-width and composed forms fold to their plain letters), lower case."""
    return unicodedata.normalize("NFKC", password).casefold()


@functools.cache
def common_passwords(path: Path = COMMON_PASSWORDS) -> frozenset[str]:
    """The shipped list, one password a line, already normalised (read once per process)."""
    with open(path, encoding="utf-8") as fh:
        return frozenset(normalise(line.strip()) for line in fh if line.strip() and not line.startswith("#"))


def check(password: str, *, email: str | None = None, name: str | None = None, field: str = "password") -> None:
    """Raise ``PasswordRejected`` (422 problem) when ``password`` does not meet the policy; the detail says what to
    do instead. ``email`` and ``name`` are the account's, for the personal-information rule."""
    if len(password) < MIN_LENGTH:
        raise PasswordRejected(f"The password has {len(password)} characters; use at least {MIN_LENGTH}. A few "
                               "unrelated words make a long password that is easy to remember",
                               type="password-too-short", field=field, min_length=MIN_LENGTH)
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"The password has {len(password)} characters; use at most {MAX_LENGTH}",
                               type="password-too-long", field=field, max_length=MAX_LENGTH)
    folded = normalise(password)
    if is_common(folded):
        raise PasswordRejected("This password is among the most commonly used ones (or one of them repeated or "
                               "padded with digits and symbols), so it is among the first an attacker tries; "
                               "choose another", type="password-common", field=field)
    if _personal(folded, email, name):
        raise PasswordRejected("The password contains your e-mail address or your name, which others know or can "
                               "guess; choose one without them", type="password-personal", field=field)


def is_common(folded: str) -> bool:
    """Listed, a listed or trivial unit repeated, or a listed word with only digits and symbols around it."""
    common = common_passwords()
    if folded in common:
        return True
    unit = _repeated_unit(folded)
    if unit is not None and (len(unit) <= TRIVIAL_UNIT or unit in common):
        return True
    return any(_padded(folded, word) for word in _listed_words_in(folded, common))


def _repeated_unit(folded: str) -> str | None:
    """The shortest unit the whole password repeats ("abcabc" → "abc"), or None."""
    n = len(folded)
    for size in range(1, n // 2 + 1):
        if n % size == 0 and folded[:size] * (n // size) == folded:
            return folded[:size]
    return None


def _listed_words_in(folded: str, common: frozenset[str]) -> set[str]:
    # Every substring of MIN_PADDED_WORD..MAX_PADDED_WORD characters that is listed: at most 256 × 29 set lookups.
    n = len(folded)
    return {folded[i:j] for i in range(n) for j in range(i + MIN_PADDED_WORD, min(n, i + MAX_PADDED_WORD) + 1)
            if folded[i:j] in common}


def _padded(folded: str, word: str) -> bool:
    start = folded.find(word)
    while start >= 0:
        if _PADDING.match(folded[:start]) and _PADDING.match(folded[start + len(word):]):
            return True
        start = folded.find(word, start + 1)
    return False


def _personal(folded: str, email: str | None, name: str | None) -> bool:
    local = normalise(email or "").partition("@")[0]
    whole_name = re.sub(r"\s+", "", normalise(name or ""))
    pieces = {p for p in _SPLIT.split(local) + _SPLIT.split(normalise(name or "")) if len(p) >= 4}
    wholes = {w for w in (local, whole_name) if len(w) >= 3}
    return any(p in folded for p in pieces | wholes)


# --- storing and checking -----------------------------------------------------------------------------------------

def hash_password(password: str) -> str:
    """The Argon2id hash to store (PHC string with its parameters and salt)."""
    return _hasher.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the stored hash; a missing or unreadable hash matches nothing (and still costs
    one verification, so the answer takes as long either way)."""
    if not stored:
        verify_dummy(password)
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether the hash was made with other parameters than today's (store a new one after a successful sign-in)."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password of anyone: only timed")


def verify_dummy(password: str) -> None:
    """Spend the time of one verification: for an unknown address, so that its answer takes as long as a known
    one's and timing does not tell whether an account exists."""
    try:
        _hasher.verify(_dummy_hash(), password)
    except VerificationError:
        pass
