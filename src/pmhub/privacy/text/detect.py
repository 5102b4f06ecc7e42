"""Find identifiers in a Korean clinical note: a list of typed, non-overlapping spans.

Rules, not a model: each type has a pattern and a validator (a registration number's birth
date and check digit, a phone's area code, an address's administrative units from the
shipped gazetteer, a name's surname and given-name syllables or its cue: a label such as
'환자명:' before it or a title such as '씨', '교수' after it). A name found once is then found
everywhere in the same note, as are names the caller knows from the record (the patient's,
the staff's). When spans overlap, the more specific type wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pmhub.privacy.text import patterns as p

TYPES = ("RRN", "FRN", "PHONE", "EMAIL", "ADDRESS", "MRN", "NAME", "DATE")
PRIORITY = {
    "RRN": 0,
    "FRN": 0,
    "EMAIL": 1,
    "PHONE": 2,
    "MRN": 3,
    "DATE": 4,
    "ADDRESS": 5,
    "NAME": 6,
}

# Syllables common in Korean given names; a surname followed by two of them is a name
# candidate (cues and record names are still needed to accept it, see below).
GIVEN = frozenset(
    "민서지현수영준우진호연은재성경미정훈희태혜윤아주하예유원승동상철석길순자숙옥남선화란명기용"
    "광한종혁규범환빈채나다린율도건찬결솔별슬람온인일국덕필만복분애임춘례녀금봉병학식택열근홍섭효"
    "신세형창욱웅완익중표휘소의래보숙설혁진강산영재윤하서시두리갑말판끝삼칠돌점이"
)
# Surnames common enough that a bare surname + given-name shape is worth taking.
COMMON_SURNAMES = frozenset(
    "김이박최정강조윤장임한오서신권황안송류유홍전고문양손배백허남심노하곽성차주우구"
)
# Words that look like a surname + two given-name syllables (found by scanning notes).
NOT_NAMES = frozenset(
    [
        "한의원",
        "방사선",
        "정상인",
        "정상적",
        "전신부",
        "이상한",
        "이상은",
        "이번주",
        "고혈당",
        "유방선",
        "하지정",
        "장기적",
        "안정된",
        "주사제",
        "고지혈",
        "조영술",
        "신장기",
        "심전도",
        "구강내",
        "이명이",
        "하루종",
        "오전중",
        "오후중",
        "전주에",
        "한동안",
        "이전의",
        "이후의",
        "이전과",
        "이후로",
        "이전에",
        "이후에",
        "정도의",
        "조기에",
        "주기적",
        "차후에",
        "추후에",
        "우선은",
        "우측은",
        "좌측은",
        "우측의",
        "좌측의",
        "우측에",
        "좌측에",
        "하지의",
        "상지의",
        "안정이",
        "안정을",
        "주의를",
        "주의가",
        "배우자",
        "며느리",
        "어머니",
        "아버지",
        "할머니",
        "할아버지",
        "동거인",
        "보호자",
        "간병인",
        "주치의",
        "전공의",
        "간호사",
        "환자분",
        "남편분",
        "가족들",
        "자녀들",
        "형제들",
    ]
)
VERB_FINAL = frozenset("함음됨임봄줌옴씀짐킴침중전등및적의를을는에로와과며게")
ROAD_STOP = frozenset(
    [
        "이유로",
        "경로",
        "진로",
        "바로",
        "주로",
        "새로",
        "서로",
        "실제로",
        "별도로",
        "추가로",
        "정도로",
        "그대로",
        "스스로",
        "앞으로",
        "뒤로",
        "위로",
        "아래로",
        "처음으로",
        "최대로",
        "최소로",
        "임의로",
        "순서로",
        "대로",
        "절대로",
        "대체로",
        "새로이",
        "동시로",
        "외래로",
        "구두로",
        "환자로",
        "결과로",
        "상태로",
        "치료로",
        "수술로",
        "문제로",
        "의뢰로",
        "진료로",
        "검사로",
        "약물로",
        "주사로",
        "경구로",
        "단위로",
        "자의로",
    ]
)
UNIT_AFTER = re.compile(
    r"\s?(?:mg|mL|ml|kg|g\b|cm|mm|%|회|일|개|시간|분|초|정|알|세|살|주|달|년|cc|IU|단위|병|팩)"
)


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    type: str
    text: str


def detect(text: str, known_names: Iterable[str] = ()) -> list[Span]:
    found: list[Span] = []
    found += registration_numbers(text)
    found += [span(m, "RRN") for m in p.RRN_MASKED.finditer(text)]
    found += [span(m, "PHONE") for m in p.PHONE.finditer(text)]
    found += [span(m, "EMAIL") for m in p.EMAIL.finditer(text)]
    found += [span(m, "MRN", "mrn") for m in p.MRN.finditer(text)]
    found += dates(text)
    found += addresses(text)
    found += names(text, known_names)
    return resolve(found)


def span(match: re.Match[str], kind: str, group: str | int = 0) -> Span:
    start, end = match.span(group)
    return Span(start, end, kind, match.string[start:end])


def registration_numbers(text: str) -> list[Span]:
    out = []
    for match in p.RRN.finditer(text):
        birth, sex, rest = match["birth"], match["sex"], match["rest"]
        born = p.birth_date(birth, sex)
        if born is None:
            continue
        digits = birth + sex + rest
        separator = match["sep"] or ""
        separated = "-" in separator or "–" in separator
        context = p.RRN_CONTEXT.search(text[max(0, match.start() - 20) : match.start()])
        new_format = born >= p.NEW_FORMAT_SINCE
        # Without a hyphen a 13-digit run must also pass the check digit, sit after a cue
        # word, or be recent enough for the random (post-2020) format.
        if not (separated or context or p.check_digit_ok(digits) or new_format):
            continue
        out.append(span(match, "FRN" if sex in "5678" else "RRN"))
    return out


def dates(text: str) -> list[Span]:
    return [span(m, "DATE") for pattern in p.DATE_PATTERNS for m in pattern.finditer(text)]


def addresses(text: str) -> list[Span]:
    out = []
    units = p.known_units()
    for match in p.address_pattern().finditer(text):
        if match["sido2"]:
            out.append(span(match, "ADDRESS"))
            continue
        if match["sgg3"]:
            if match["sgg3"] in units:
                out.append(span(match, "ADDRESS"))
            continue
        sgg = match["sgg"].split()
        lows = match["low"].split()
        road = (match["road"] or "").strip()
        anchored = bool(match["sido"]) or any(s in units for s in sgg)
        if road and not anchored and (road in ROAD_STOP or road.endswith("으로") or len(road) < 3):
            continue
        if not (anchored or road or lows):
            continue
        if not anchored and not road and UNIT_AFTER.match(text, match.end()):
            continue
        if road and not anchored and not lows and UNIT_AFTER.match(text, match.end()):
            continue
        out.append(span(match, "ADDRESS"))
    return out


def names(text: str, known: Iterable[str]) -> list[Span]:
    found: set[str] = {n for n in known if len(n) >= 2}
    for pattern in (p.NAME_AFTER_STRONG, p.NAME_AFTER_DEPARTMENT, p.NAME_BEFORE_PAREN):
        found.update(m["name"] for m in overlapping(pattern, text) if final_ok(m["name"]))
    for pattern in (p.FOREIGN_AFTER_LABEL, p.FOREIGN_AFTER_RELATION, p.FOREIGN_LINE_START):
        found.update(m["name"].strip() for m in pattern.finditer(text) if final_ok(m["name"]))
    for match in overlapping(p.NAME_AFTER_WEAK, text):
        after = text[match.end("name") :].lstrip(" ")[:1]
        if plausible_name(match["name"], strong=after in ("(", ",", "")):
            found.add(match["name"])
    for match in p.NAME_BEFORE_ROLE.finditer(text):
        if plausible_name(match["name"], strong=match["role"] in p.HONORIFIC):
            found.add(match["name"])
    for match in p.NAME_BEFORE_PARTICLE.finditer(text):
        name = match["name"]
        if name[0] in COMMON_SURNAMES and plausible_name(name, False):
            found.add(name)
    found.update(m["name"] for m in p.LATIN_NAME.finditer(text))
    return [Span(at, at + len(name), "NAME", name) for name in found for at in places(text, name)]


def places(text: str, name: str) -> list[int]:
    """Where a name occurs, not inside a longer Hangul word's tail ('김민준' in '이김민준')."""
    found, at = [], text.find(name)
    while at >= 0:
        if at == 0 or not ("가" <= text[at - 1] <= "힣"):
            found.append(at)
        at = text.find(name, at + 1)
    return found


def overlapping(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """Matches that may share text: '보호자: 배우자 박진호' holds the label-name pairs
    ('보호자', '배우자') and ('배우자', '박진호'); the first must not hide the second."""
    found, position = [], 0
    while (match := pattern.search(text, position)) is not None:
        found.append(match)
        position = match.start("name") if match.start("name") > match.start() else match.end()
    return found


def final_ok(name: str) -> bool:
    """Note-style verb endings ('설명함', '시행됨') and look-alike words are not names."""
    return name[-1] not in VERB_FINAL and name not in NOT_NAMES


def plausible_name(name: str, strong: bool) -> bool:
    """A strong cue needs only a name-like ending; a weak one common given-name syllables."""
    if not final_ok(name):
        return False
    given = name[2:] if name[:2] in p.SURNAMES_TWO else name[1:]
    return strong or all(syllable in GIVEN for syllable in given)


def resolve(spans: list[Span]) -> list[Span]:
    """Keep non-overlapping spans: the more specific type first, then the longer."""
    chosen: list[Span] = []
    taken: list[tuple[int, int]] = []
    for s in sorted(spans, key=lambda s: (PRIORITY[s.type], -(s.end - s.start), s.start)):
        if s.end <= s.start or any(s.start < e and b < s.end for b, e in taken):
            continue
        chosen.append(s)
        taken.append((s.start, s.end))
    return sorted(chosen)
