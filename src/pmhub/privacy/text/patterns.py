"""Korean identifier patterns and their validators (pure Python; no NLP model needed).

Resident registration numbers (주민등록번호): YYMMDD-GNNNNNN. G is the sex/century digit
(1-4 Koreans, 9/0 born in the 1800s; 5-8 foreigners, whose 외국인등록번호 has the same
shape). Numbers issued before October 2020 end in a check digit (weights 2..9,2..5, then
(11 - sum mod 11) mod 10; foreigners' (13 - sum mod 11) mod 10); since October 2020 the six
digits after G are random, so a failed check digit does not rule a number out.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache

from pmhub.privacy.hierarchy import regions

WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
CENTURY = {
    "1": 1900,
    "2": 1900,
    "3": 2000,
    "4": 2000,
    "5": 1900,
    "6": 1900,
    "7": 2000,
    "8": 2000,
    "9": 1800,
    "0": 1800,
}
NEW_FORMAT_SINCE = dt.date(2020, 10, 1)

RRN = re.compile(
    r"(?<![\d-])(?P<birth>\d{6})(?P<sep>\s?[-–]\s?|\s)?(?P<sex>[0-9])(?P<rest>\d{6})(?![\d-])"
)
# Partly masked numbers ('850315-1******') still show the birth date and sex.
RRN_MASKED = re.compile(r"(?<![\d-])\d{6}\s?-\s?[1-8][*xX●○]{6}(?![\w*])")
RRN_CONTEXT = re.compile(r"(주민|등록\s?번호|외국인|RRN|생년월일|resident)", re.IGNORECASE)

PHONE = re.compile(
    r"(?<![\d\w-])"
    r"(?:(?:\+82|0082)[-.\s]?\(?0?\)?(?:1[016789]|2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70)"
    r"|\(0(?:1[016789]|2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70|50\d)\)"
    r"|0(?:1[016789]|2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70|50\d))"
    r"[-.\s]{0,2}\d{3,4}[-.\s]?\d{4}(?![\d-])"
    r"|(?<![\d-])1[5689]\d{2}-\d{4}(?![\d-])"
)

EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
    r"\.[A-Za-z]{2,}"
)

MRN = re.compile(
    r"(?:(?<!주민)(?<!외국인)(?<!사업자)등록\s?번호|환자\s?번호|병록\s?번호|차트\s?번호|진료\s?번호"
    r"|의무기록\s?번호|병원\s?번호|EMR\s?번호|수진자\s?번호|진료카드\s?번호|MRN"
    r"|Chart\s?(?:No\.?|number)|Patient\s?ID|ID)"
    r"\s*[:：#.]?\s*(?:는|은|:)?\s*"
    r"(?P<mrn>[A-Z]{0,3}[-]?\d{4,10}(?:-\d{1,8})?)(?![\d])",
    re.IGNORECASE,
)

DATE_PATTERNS = (
    # 2023-05-04, 2023.5.4, 2023/05/04, 2023. 5. 4.
    re.compile(
        r"(?<![\d.])(?P<y>(?:19|20)\d{2})(?P<s>[-./]\s?)(?P<m>0?[1-9]|1[0-2])(?P=s)"
        r"(?P<d>0?[1-9]|[12]\d|3[01])(?P<dot>\.)?(?![\d])"
    ),
    # 2023년 5월 4일, 2023년 05월
    re.compile(
        r"(?<!\d)(?P<y>(?:19|20)\d{2})년\s?(?P<m>0?[1-9]|1[0-2])월"
        r"(?:\s?(?P<d>0?[1-9]|[12]\d|3[01])일)?"
    ),
    # 23.05.04, 23/05/04 (two-digit year)
    re.compile(
        r"(?<![\d./])(?P<yy>\d{2})(?P<s>[./])(?P<m>0[1-9]|1[0-2])(?P=s)"
        r"(?P<d>0[1-9]|[12]\d|3[01])(?![\d./])"
    ),
    # 5월 4일 (year from the note's date)
    re.compile(r"(?<![\d년])(?P<m>0?[1-9]|1[0-2])월\s?(?P<d>0?[1-9]|[12]\d|3[01])일"),
    # 05/04/2023 (month first, as in imported English records)
    re.compile(
        r"(?<![\d/])(?P<m>0?[1-9]|1[0-2])/(?P<d>0?[1-9]|[12]\d|3[01])/(?P<y>(?:19|20)\d{2})"
        r"(?![\d/])"
    ),
    # 20230504 (eight digits that make a date; a record number after its label wins)
    re.compile(
        r"(?<![\d-])(?P<y>(?:19|20)\d{2})(?P<m>0[1-9]|1[0-2])(?P<d>0[1-9]|[12]\d|3[01])"
        r"(?![\d-])"
    ),
)

SURNAMES_TWO = ("남궁", "황보", "제갈", "선우", "독고", "사공", "서문", "동방", "망절")
SURNAMES_ONE = (
    "김이박최정강조윤장임한오서신권황안송류유홍전고문양손배백허남심노하곽성차주우구민나진지엄"
    "채원천방공현함변염여추도소석선설마길연위표명기반왕금옥육인맹제모탁국어은편용예경봉사부가"
    "복태목형피두감음빈동온호범좌팽승간상갈견시계"
)
ROLE_AFTER = (
    r"씨|님|환자|선생님|선생|교수님|교수|간호사님|간호사|전공의|레지던트|인턴|과장님|과장|원장님"
    r"|원장|보호자|주치의|여사님|여사|군|양|약사|영양사|사회복지사|치료사|기사|어르신|할머니|할아버지"
)
# A label that says a name follows ("성명: 홍길동") is trusted whatever the syllables; a weaker
# cue ("환자 ..." or a title after) needs a plausible given name as well.
STRONG_LABEL = (
    r"환자명|환자 이름|환자 성명|성명|이름|보호자명|보호자 성명|작성자|기록자|작성의|서명|확인자"
    r"|처방의|판독의|집도의|마취의|의뢰의|담당의|담당 의사|주치의|담당 간호사|담당간호사|Dr\.?|RN"
)
WEAK_LABEL = (
    r"환자|보호자|간호사|의사|교수|전공의|배우자|아들|딸|남편|아내|어머니|아버지|모친|부친|동생|형"
    r"|누나|언니|오빠|며느리|사위|손자|손녀|조카"
)


def _name_pattern() -> str:
    ones = "[" + SURNAMES_ONE + "]"
    twos = "|".join(SURNAMES_TWO)
    return rf"(?:(?:{twos})[가-힣]{{1,2}}|{ones}[가-힣]{{2}})"


NAME = _name_pattern()
NAME_AFTER_STRONG = re.compile(rf"(?:{STRONG_LABEL})\s*[:：]?\s*(?P<name>{NAME})(?![가-힣]{{2}})")
NAME_AFTER_WEAK = re.compile(rf"(?:{WEAK_LABEL})\s*[:：]?\s*(?P<name>{NAME})(?![가-힣]{{2}})")
# Names that are not a Korean surname and given name (transliterated foreign names such as
# '응우옌 반 안', or Korean names of other shapes), taken only where the cue is unmistakable:
# a name label and an age/sex bracket, a guardian's relation and a phone bracket, or a
# line opening with the name and an honorific or sex/age.
FREE_NAME = r"[가-힣]{2,7}(?: [가-힣]{1,4}){0,2}"
FOREIGN_AFTER_LABEL = re.compile(
    rf"(?:환자명|성명|이름)\s*[:：]\s*(?P<name>{FREE_NAME})(?=\s?\((?:남|여|M|F|\d))"
)
FOREIGN_AFTER_RELATION = re.compile(
    rf"보호자\s*[:：]?\s*(?:{WEAK_LABEL})\s(?P<name>{FREE_NAME})(?=\s?\((?:0|\+82))"
)
FOREIGN_LINE_START = re.compile(
    rf"(?m)^(?P<name>{FREE_NAME})(?=\s?님[,\s]|\s환자,|\s?\((?:M|F|남|여)/)"
)
# '작성: 내분비내과 김창수': a signature, the department before the name.
NAME_AFTER_DEPARTMENT = re.compile(
    r"(?:작성|작성자|작성의|서명|기록|담당|주치의|판독|집도)\s*[:：]?\s*[가-힣]{1,8}과\s+"
    rf"(?P<name>{NAME})(?![가-힣]{{2}})"
)
# '김민준(45세, 남)': a name before an age or sex in brackets.
NAME_BEFORE_PAREN = re.compile(
    rf"(?<![가-힣])(?P<name>{NAME})\s?\((?=\s?(?:\d{{1,3}}\s?세|만\s?\d|남|여|M\b|F\b))"
)
# A name before a particle, with no other cue: accepted only with common given-name
# syllables and outside a list of look-alike words.
NAME_BEFORE_PARTICLE = re.compile(
    rf"(?<![가-힣])(?P<name>{NAME})(?:이가|이는|이의|께서|에게|은|는|이|가|을|를|의|와|과)(?=[\s,.])"
)
# Latin-script names after a label ('성명: Nguyen Van An', '환자 John Smith').
LATIN_NAME = re.compile(
    rf"(?:{STRONG_LABEL}|{WEAK_LABEL}|Name|Patient)\s*[:：]?\s*"
    r"(?P<name>[A-Z][a-z]+(?:[ -][A-Z][a-z]+){1,3})"
)
NAME_BEFORE_ROLE = re.compile(
    rf"(?<![가-힣])(?P<name>{NAME})\s?(?P<role>{ROLE_AFTER})(?![가-힣]{{2}})"
)
HONORIFIC = frozenset({"씨", "님", "선생님", "교수님", "여사님", "원장님", "과장님", "간호사님"})


def check_digit_ok(digits: str) -> bool:
    """The pre-October-2020 check digit (Koreans mod 11 from 11, foreigners from 13)."""
    total = sum(int(d) * w for d, w in zip(digits[:12], WEIGHTS, strict=True))
    base = 13 if digits[6] in "5678" else 11
    return (base - total % 11) % 10 == int(digits[12])


def birth_date(birth: str, sex: str) -> dt.date | None:
    try:
        return dt.date(CENTURY[sex] + int(birth[:2]), int(birth[2:4]), int(birth[4:6]))
    except ValueError:
        return None


@cache
def address_pattern() -> re.Pattern[str]:
    known = regions()
    sido = sorted(
        set(known.provinces)
        | set(known.short_names)
        | {
            "강원도",
            "전라북도",
            "제주도",
            "서울시",
            "부산시",
            "대구시",
            "인천시",
            "광주시",
            "대전시",
            "울산시",
            "세종시",
        },
        key=len,
        reverse=True,
    )
    sido_re = "(?:" + "|".join(map(re.escape, sido)) + ")"
    sgg = r"[가-힣]{1,5}(?:시|군|구)"
    low = r"[가-힣]{1,5}\d{0,2}(?:읍|면|동|리|가)"
    road = r"[가-힣A-Za-z0-9]{1,10}(?:로|길)(?:\s?\d{1,3}(?:번)?(?:길|가길))?"
    number = r"(?:산\s?)?\d{1,5}(?:-\d{1,5})?(?:번지)?"
    detail = (
        r"(?:,?\s?(?:[가-힣A-Za-z0-9]{1,12}(?:아파트|빌라|맨션|타워|오피스텔|빌딩)\s?)?"
        r"\d{1,4}동\s?\d{1,5}호|,?\s?\d{1,5}호)?(?:\s?\([가-힣0-9,\s]{1,20}\))?"
    )
    body = (
        rf"(?P<sido>{sido_re}\s)?(?P<sgg>(?:{sgg}\s){{0,2}})(?P<low>(?:{low}\s){{0,2}})"
        rf"(?P<road>{road}\s?)?(?P<num>{number}){detail}"
    )
    bare = rf"(?P<sido2>{sido_re})\s(?P<sgg2>{sgg})(?:\s(?P<low2>{low}))?"
    town = rf"(?P<sgg3>{sgg})\s(?P<low3>{low})"  # '춘천시 효자동': the city must be known
    # A particle may follow ('...156에 거주'); a digit may not.
    return re.compile(rf"(?<![가-힣\d])(?:{body}|{bare}|{town})(?!\d)")


@cache
def known_units() -> frozenset[str]:
    units = {key.split()[-1] for key in regions().province_of}
    return frozenset(units)
