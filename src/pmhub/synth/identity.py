"""Korean identifiers: resident registration numbers, phones, names, addresses, record
numbers. They exist so that the privacy layer has realistic identifiers to find and remove.

Resident registration number (주민등록번호), ``YYMMDD-GNNNNNC``: G is the sex/century digit
(1/2 born 1900-1999, 3/4 born 2000-2099, 9/0 born 1800-1899; odd = male), C the check digit.
The five digits between are random, as for numbers issued since October 2020 (before that
they held a region code). Check digit: with weights 2,3,4,5,6,7,8,9,2,3,4,5 over the first
12 digits and S their weighted sum, C = (11 - S mod 11) mod 10.
Foreign registration number (외국인등록번호) has the same layout with G = 5/6 (born
1900-1999) or 7/8 (born 2000-), and the check digit C = (13 - S mod 11) mod 10.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt

from pmhub.synth import refdata

Arr = npt.NDArray[Any]
WEIGHTS = np.array([2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5])
RRN_PATTERN = re.compile(r"(\d{6})-(\d{7})")
EPOCH = np.datetime64("1970-01-01", "D")
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")


def check_digit(first12: str, *, foreign: bool = False) -> int:
    total = sum(int(d) * int(w) for d, w in zip(first12, WEIGHTS, strict=True))
    return ((13 if foreign else 11) - total % 11) % 10


def is_valid_rrn(value: str) -> bool:
    """True when ``value`` is a well-formed resident or foreign registration number."""
    match = RRN_PATTERN.fullmatch(value)
    if not match:
        return False
    digits = match.group(1) + match.group(2)
    gender = digits[6]
    century = {"9": 1800, "0": 1800, "1": 1900, "2": 1900, "5": 1900, "6": 1900}.get(gender, 2000)
    try:
        np.datetime64(f"{century + int(digits[:2]):04d}-{digits[2:4]}-{digits[4:6]}", "D")
    except ValueError:
        return False
    foreign = gender in "5678"
    return check_digit(digits[:12], foreign=foreign) == int(digits[12])


def _digits(values: Arr, width: int) -> Arr:
    """Each integer as ``width`` decimal digits, most significant first: shape (n, width)."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    result: Arr = (values.astype(np.int64)[:, None] // powers) % 10
    return result


def _join_digits(digits: Arr) -> Arr:
    """Rows of digits as strings (vectorised through a byte view)."""
    chars = (digits.astype(np.uint8) + ord("0")).astype(np.uint8)
    flat = np.ascontiguousarray(chars).view(f"S{digits.shape[1]}").ravel()
    result: Arr = flat.astype(str)
    return result


def registration_numbers(birth: Arr, male: Arr, foreign: Arr, rng: np.random.Generator) -> Arr:
    """RRN (or FRN for foreign residents) for each person, as ``YYMMDD-GNNNNNC`` strings."""
    dates = (EPOCH + birth.astype("timedelta64[D]")).astype("datetime64[D]")
    year = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    yymmdd = (year % 100) * 10_000 + month * 100 + day
    female = ~male.astype(bool)
    g = np.where(year >= 2000, 3, np.where(year >= 1900, 1, 9)) + female
    g = np.where(year < 1900, np.where(female, 0, 9), g)
    g = np.where(foreign, np.where(year >= 2000, 7, 5) + female, g)
    serial = rng.integers(0, 100_000, size=len(birth))
    first12 = np.concatenate([_digits(yymmdd, 6), g[:, None], _digits(serial, 5)], axis=1)
    total = first12 @ WEIGHTS
    check = np.where(foreign, (13 - total % 11) % 10, (11 - total % 11) % 10)
    text = _join_digits(np.concatenate([first12, check[:, None]], axis=1))
    return np.array([f"{t[:6]}-{t[6:]}" for t in text.tolist()])


def mobile_phones(n: int, rng: np.random.Generator) -> Arr:
    middle = rng.integers(2000, 10_000, size=n)
    last = rng.integers(0, 10_000, size=n)
    return np.array([f"010-{m:04d}-{x:04d}" for m, x in zip(middle, last, strict=True)])


def landline_phones(n: int, rng: np.random.Generator, area: str = "033") -> Arr:
    exchange = rng.integers(200, 1000, size=n)
    last = rng.integers(0, 10_000, size=n)
    return np.array([f"{area}-{e:03d}-{x:04d}" for e, x in zip(exchange, last, strict=True)])


def record_numbers(keys: Arr, site_index: int, digits: int) -> Arr:
    """Hospital record numbers (등록번호): a bijection of the patient key per site, so that
    one person has a different number at every hospital and numbers never collide."""
    modulus = 10**digits
    multiplier = (7_919 + 2 * 104_729 * site_index) % modulus
    if multiplier % 2 == 0:
        multiplier += 1
    if multiplier % 5 == 0:
        multiplier += 2
    offset = (1_234_567 * (site_index + 3)) % modulus
    numbers = (keys.astype(np.int64) * multiplier + offset) % modulus
    return np.array([f"{x:0{digits}d}" for x in numbers.tolist()])


def korean_names(
    male: Arr, birth_year: Arr, foreign: Arr, rng: np.random.Generator
) -> tuple[Arr, Arr]:
    """(family name, given name) per person: surnames by their census frequency, given
    names by sex and birth era; foreign residents get transliterated foreign names."""
    ref = refdata.names()
    n = len(male)
    family = np.array(ref.surnames)[rng.choice(len(ref.surnames), size=n, p=ref.surname_p)]
    given = np.empty(n, dtype=object)
    era_index = np.searchsorted(np.array(ref.eras), birth_year, side="right") - 1
    era_index = np.clip(era_index, 0, len(ref.eras) - 1)
    draws = rng.random(n)
    for sex_code, sex in ((True, "M"), (False, "F")):
        for e, era in enumerate(ref.eras):
            mask = (male.astype(bool) == sex_code) & (era_index == e)
            pool = np.array(ref.given[(sex, era)])
            given[mask] = pool[(draws[mask] * len(pool)).astype(int)]
    if foreign.any():
        idx = np.flatnonzero(foreign)
        foreign_pool = ref.foreign
        for i, pick in zip(idx, rng.integers(0, 1_000_000, size=len(idx)), strict=True):
            sex = "M" if male[i] else "F"
            matching = [p for p in foreign_pool if p[0] == sex] or list(foreign_pool)
            chosen = matching[int(pick) % len(matching)]
            family[i], given[i] = chosen[1], chosen[2]
    return family.astype(str), given.astype(str)


def addresses(
    region: Arr, rng: np.random.Generator, *, old_province: bool = False
) -> tuple[Arr, Arr]:
    """(street address, postcode) in road-name style; house numbers are random."""
    regs = refdata.regions()
    province = "강원도" if old_province else "강원특별자치도"
    n = len(region)
    numbers = rng.integers(1, 400, size=n)
    flat = rng.random(n) < 0.35
    dong = rng.integers(101, 115, size=n)
    ho = rng.integers(1, 20, size=n) * 100 + rng.integers(1, 9, size=n)
    road_pick = rng.integers(0, 1_000_000, size=n)
    zip_pick = rng.integers(0, 1_000_000, size=n)
    zip_tail = rng.integers(0, 100, size=n)
    street = []
    postcode = []
    for i in range(n):
        reg = regs[int(region[i])]
        road = reg.roads[int(road_pick[i]) % len(reg.roads)]
        text = f"{province} {reg.name_ko} {road} {numbers[i]}"
        if flat[i]:
            text += f", {dong[i]}동 {ho[i]}호"
        street.append(text)
        prefix = reg.zip_prefixes[int(zip_pick[i]) % len(reg.zip_prefixes)]
        postcode.append(f"{prefix}{zip_tail[i]:02d}")
    return np.array(street), np.array(postcode)


def emails(family_roman: Arr, rng: np.random.Generator) -> Arr:
    numbers = rng.integers(10, 10_000, size=len(family_roman))
    domains = rng.integers(0, len(EMAIL_DOMAINS), size=len(family_roman))
    return np.array(
        [
            f"{f.lower()}{x}@{EMAIL_DOMAINS[d]}"
            for f, x, d in zip(family_roman.tolist(), numbers, domains, strict=True)
        ]
    )
