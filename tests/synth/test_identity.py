from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.synth import identity


def test_check_digit_of_a_hand_computed_number() -> None:
    # 9*2+0*3+0*4+1*5+0*6+1*7+1*8+2*9+3*2+4*3+5*4+6*5 = 124; 124 % 11 = 3; 11 - 3 = 8
    assert identity.check_digit("900101123456") == 8
    assert identity.is_valid_rrn("900101-1234568")
    assert not identity.is_valid_rrn("900101-1234567")


def test_foreign_numbers_use_their_own_check_digit() -> None:
    # gender digit 5 instead of 1 adds 4 * 8: 156; 156 % 11 = 2; (13 - 2) % 10 = 1
    assert identity.check_digit("900101523456", foreign=True) == 1
    assert identity.is_valid_rrn("900101-5234561")
    assert not identity.is_valid_rrn("900101-5234568")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "9001011234568",
        "900101-123456",
        "901301-1234568",
        "900230-1234565",
        "abcdef-1234567",
        "900101-1234568 ",
    ],
)
def test_malformed_numbers_are_invalid(bad: str) -> None:
    assert not identity.is_valid_rrn(bad)


@settings(max_examples=60, deadline=None)
@given(
    births=st.lists(st.integers(min_value=-60_000, max_value=20_000), min_size=1, max_size=40),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_every_generated_number_is_valid(births: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = len(births)
    male = rng.random(n) < 0.5
    foreign = rng.random(n) < 0.3
    numbers = identity.registration_numbers(np.array(births), male, foreign, rng)
    for number, is_male, is_foreign, birth in zip(numbers, male, foreign, births, strict=True):
        assert identity.is_valid_rrn(number), number
        date = np.datetime64("1970-01-01") + np.timedelta64(birth, "D")
        year = int(str(date)[:4])
        assert number[7] == _gender_digit(year, bool(is_male), bool(is_foreign))
        assert number[:6] == str(date).replace("-", "")[2:]


def _gender_digit(year: int, male: bool, foreign: bool) -> str:
    if foreign:
        return str((7 if year >= 2000 else 5) + (0 if male else 1))
    if year < 1900:
        return "9" if male else "0"
    return str((3 if year >= 2000 else 1) + (0 if male else 1))


def test_record_numbers_are_unique_per_site_and_differ_between_sites() -> None:
    keys = np.arange(50_000)
    first = identity.record_numbers(keys, 0, 8)
    second = identity.record_numbers(keys, 1, 7)
    assert len(set(first)) == len(keys)
    assert len(set(second)) == len(keys)
    assert all(len(x) == 8 for x in first[:100])
    assert (first[:1000] != np.char.zfill(second[:1000], 8)).all()


def test_phones_and_emails_have_korean_and_reserved_formats() -> None:
    rng = np.random.default_rng(3)
    for phone in identity.mobile_phones(100, rng):
        assert phone.startswith("010-")
        assert len(phone) == 13
    for phone in identity.landline_phones(100, rng):
        assert phone.startswith("033-")
        assert len(phone) == 12
    for email in identity.emails(np.array(["Kim"] * 50), rng):
        assert email.split("@")[1] in identity.EMAIL_DOMAINS


def test_names_follow_surname_frequencies() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    family, given_names = identity.korean_names(
        rng.random(n) < 0.5, rng.integers(1930, 2020, n), np.zeros(n, dtype=bool), rng
    )
    share_kim = (family == "김").mean()
    share_lee = (family == "이").mean()
    assert 0.19 < share_kim < 0.24  # census: 21.6 % of the population
    assert 0.13 < share_lee < 0.165
    assert all(1 <= len(g) <= 3 for g in given_names[:200])
