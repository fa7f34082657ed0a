"""The password policy and Argon2id storage (accounts/passwords.py): no database needed."""

from __future__ import annotations

import time

import pytest

from accounts import passwords
from accounts.passwords import PasswordRejected


def rejected(password: str, **kw) -> str:
    with pytest.raises(PasswordRejected) as exc:
        passwords.check(password, **kw)
    assert exc.value.status == 422
    return exc.value.type


def test_length_bounds():
    assert rejected("short-pass1") == "password-too-short"          # 11 characters
    passwords.check("grün-meadow-7")                                # 13: fine
    passwords.check("x" * 5 + "Lantern ferry moss " * 13)           # long, not repetitive as a whole
    assert rejected("Ab1 " * 65) == "password-too-long"              # 260


def test_listed_passwords_are_refused_case_insensitively():
    assert rejected("password1234") == "password-common"
    assert rejected("QWERTYUIOP123") in ("password-common",)
    assert rejected("1Qaz2Wsx3Edc") == "password-common"
    # full-width letters fold to the listed ones (NFKC)
    assert rejected("ｐａｓｓｗｏｒｄ１２３４") == "password-common"


@pytest.mark.parametrize("password", ["monkeymonkey", "DragonDragon", "abcabcabcabc", "aaaaaaaaaaaaaa",
                                      "dragon123456", "!!password2024", "Sunshine-2024!", "12345678901234"])
def test_repeated_and_padded_common_words_are_refused(password):
    assert rejected(password) == "password-common"


@pytest.mark.parametrize("password", ["correct horse battery staple", "Trassenplan-Kreuz-4711",
                                      "monkey-lantern-harbour", "zweiKatzen imFenster"])
def test_passphrases_pass(password):
    passwords.check(password, email="anna.schmidt@hessen-mobil.example", name="Anna Schmidt")


@pytest.mark.parametrize("password", ["anna.schmidt2026!", "Schmidt-Fiber-Route", "AnnaSchmidt!!xx",
                                      "my-SCHMIDT-password-x"])
def test_personal_information_is_refused(password):
    assert rejected(password, email="anna.schmidt@hessen-mobil.example", name="Anna Schmidt") \
        == "password-personal"


def test_short_name_parts_do_not_block_passwords():
    # "Li" and "al" are too short to forbid: they appear in countless unrelated words
    passwords.check("alpine-lilac-harbour", email="al@example.org", name="Li Wu")


def test_problem_names_the_field():
    with pytest.raises(PasswordRejected) as exc:
        passwords.check("short", field="new_password")
    problem = exc.value.to_problem()
    assert problem["field"] == "new_password"
    assert problem["type"].endswith("/password-too-short")
    assert "at least 12" in problem["detail"]


def test_shipped_list_is_loaded_and_normalised():
    listed = passwords.common_passwords()
    assert len(listed) > 10_000
    assert "password1234" in listed and "qwerty" in listed
    assert all(p == p.strip().casefold() for p in list(listed)[:500])


def test_hash_verify_and_rehash():
    stored = passwords.hash_password("lantern ferry moss")
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, "lantern ferry moss")
    assert not passwords.verify(stored, "Lantern ferry moss")
    assert not passwords.verify(None, "lantern ferry moss")
    assert not passwords.verify("not-a-hash", "x")
    assert not passwords.needs_rehash(stored)
    weaker = "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$" + "A" * 43
    assert passwords.needs_rehash(weaker)
    assert passwords.needs_rehash("garbage")


def test_unknown_account_costs_a_verification():
    stored = passwords.hash_password("lantern ferry moss")
    passwords.verify_dummy("warm-up")
    t0 = time.perf_counter()
    passwords.verify(stored, "wrong guess here")
    known = time.perf_counter() - t0
    t0 = time.perf_counter()
    passwords.verify(None, "wrong guess here")
    unknown = time.perf_counter() - t0
    assert unknown > known / 3          # same work (one Argon2id verification), allowing for a busy machine
