"""A seeded maker of Korean clinical test notes with gold identifier spans.

The format is the one the synthetic-data generator writes (agreed between the layers):

- notes CSV: ``note_id,person_id,note_date,note_title,note_text`` (UTF-8);
- spans CSV: ``note_id,start,end,type,text``, Python code-point offsets into note_text,
  end exclusive, type one of RRN, FRN, PHONE, EMAIL, ADDRESS, MRN, NAME, DATE.

Notes mix identifier sentences in varied surface forms (hyphenated or bare registration
numbers of both formats, mobile, landline and international phones, road and lot
addresses with or without the province, several record-number labels, seven date styles)
with clinical filler full of look-alikes: doses, lab values, ICD codes, times, words that
start with a surname syllable.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pmhub.privacy.text.patterns import WEIGHTS

NOTE_COLUMNS = ("note_id", "person_id", "note_date", "note_title", "note_text")
SPAN_COLUMNS = ("note_id", "start", "end", "type", "text")

SURNAMES = (
    ["김"] * 8
    + ["이"] * 6
    + ["박"] * 4
    + list("최정강조윤장임한오서신권황안송류홍전고문양손배백허")
)
SURNAMES += ["남궁", "황보", "제갈", "선우"]
GIVEN_NAMES = [
    "민준",
    "서연",
    "지훈",
    "하은",
    "도윤",
    "수빈",
    "예준",
    "지우",
    "현우",
    "서윤",
    "영수",
    "영희",
    "철수",
    "정숙",
    "순자",
    "미경",
    "상훈",
    "성민",
    "은정",
    "혜진",
    "동현",
    "지영",
    "경희",
    "재원",
    "태호",
    "윤서",
    "주원",
    "하준",
    "시우",
    "지민",
    "수아",
    "채원",
    "승민",
    "유진",
    "민서",
    "준호",
    "성호",
    "미란",
    "경자",
    "옥순",
    "말순",
    "판석",
    "갑수",
    "끝순",
    "봉수",
    "두리",
    "보람",
    "나래",
    "한결",
    "다인",
]
ROADS = [
    "백령로",
    "중앙로",
    "테헤란로",
    "세종대로",
    "효자로",
    "공지로",
    "석사로",
    "퇴계로",
    "경춘로",
    "해안로",
    "동부순환로",
    "중앙로12번길",
    "강변로",
    "시청로",
    "솔밭로",
]
LOTS = [
    "효자동",
    "석사동",
    "후평동",
    "신사동",
    "역삼동",
    "교동",
    "옥천동",
    "주문진읍 교항리",
    "사북읍 사북리",
    "남면 가정리",
    "퇴계동",
]
PLACES = [
    ("강원특별자치도", "춘천시"),
    ("강원특별자치도", "강릉시"),
    ("강원특별자치도", "정선군"),
    ("강원특별자치도", "원주시"),
    ("서울특별시", "강남구"),
    ("서울특별시", "종로구"),
    ("경기도", "수원시"),
    ("부산광역시", "해운대구"),
    ("강원도", "춘천시"),
]
DOMAINS = ["naver.com", "daum.net", "gmail.com", "hanmail.net", "kakao.com", "hospital.or.kr"]
DEPARTMENTS = ["내분비내과", "순환기내과", "가정의학과", "신경과", "호흡기내과", "소화기내과"]
TITLES = ["외래 경과기록", "입원 기록", "퇴원 요약", "간호 기록", "협진 의뢰서", "응급실 기록"]

FILLER = [
    "고혈압 환자로 암로디핀 5mg 복용 중이며 혈압은 130/80 mmHg로 조절되고 있다.",
    "이번 방문에서 체중 65.3kg, BMI 24.1로 측정되었다.",
    "정상 범위 내 소견으로 추적 관찰 예정.",
    "진단: E11.9 제2형 당뇨병, I10 본태성 고혈압.",
    "다음 외래는 3개월 후로 예약함.",
    "신규 환자 교육을 시행함.",
    "주로 야간에 증상이 심해진다고 함.",
    "HbA1c 7.2%, 공복혈당 142 mg/dL, LDL 98 mg/dL.",
    "메트포르민 500mg 1일 2회 경구 투여 유지.",
    "오후 2시 30분 채혈 시행.",
    "흉부 X선상 특이 소견 없음.",
    "조영제 알레르기 병력 없음.",
    "장기간 흡연력 20갑년, 현재 금연 중.",
    "고위험 환자로 분류하여 2주 후 재방문 안내.",
    "정상적인 활동 가능하며 운동 30분 권고.",
    "심전도: 동성리듬, 심박수 72회/분.",
    "처방 변경 없이 같은 용량으로 유지.",
    "안정적인 상태로 퇴원 가능.",
    "경로 변경 없이 경구 투약 지속.",
    "인슐린 글라진 10단위 취침 전 피하주사.",
]


@dataclass
class NoteBuilder:
    parts: list[str] = field(default_factory=list)
    spans: list[tuple[int, int, str, str]] = field(default_factory=list)
    length: int = 0

    def text(self, value: str) -> NoteBuilder:
        self.parts.append(value)
        self.length += len(value)
        return self

    def pii(self, kind: str, value: str) -> NoteBuilder:
        self.spans.append((self.length, self.length + len(value), kind, value))
        return self.text(value)

    def build(self) -> str:
        return "".join(self.parts)


def rrn_digits(rng: random.Random, born: dt.date, foreign: bool, new_format: bool) -> str:
    digits = ("56", "78") if foreign else ("12", "34")
    sex = digits[0 if born.year < 2000 else 1][0 if rng.random() < 0.5 else 1]
    body = f"{born:%y%m%d}{sex}" + "".join(str(rng.randrange(10)) for _ in range(5))
    if new_format:
        return body + str(rng.randrange(10))
    total = sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True))
    check = ((13 if foreign else 11) - total % 11) % 10
    return body + str(check)


@dataclass
class Person:
    person_id: str
    name: str
    born: dt.date
    foreign: bool


class Maker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def name(self) -> str:
        return self.rng.choice(SURNAMES) + self.rng.choice(GIVEN_NAMES)

    def rrn(self, born: dt.date, foreign: bool = False) -> str:
        new = born >= dt.date(2020, 10, 1) or self.rng.random() < 0.25
        digits = rrn_digits(self.rng, born, foreign, new)
        style = self.rng.random()
        if style < 0.8:
            return f"{digits[:6]}-{digits[6:]}"
        if style < 0.9:
            return f"{digits[:6]} - {digits[6:]}"
        return digits

    def phone(self) -> str:
        r = self.rng
        a, b = r.randrange(1000, 10000), r.randrange(1000, 10000)
        forms = [
            f"010-{a}-{b}",
            f"010 {a} {b}",
            f"010.{a}.{b}",
            f"010{a}{b}",
            f"+82-10-{a}-{b}",
            f"02-{r.randrange(100, 1000)}-{b}",
            f"033-{r.randrange(100, 1000)}-{b}",
            f"(033) {r.randrange(100, 1000)}-{b}",
            f"1588-{b}",
            f"031-{a}-{b}",
        ]
        return r.choice(forms)

    def email(self) -> str:
        user = self.rng.choice(["kim", "lee", "park", "choi", "jh", "minsu", "sy.han", "dr_ko"])
        return f"{user}{self.rng.randrange(1, 999)}@{self.rng.choice(DOMAINS)}"

    def address(self) -> str:
        r = self.rng
        sido, sgg = r.choice(PLACES)
        if r.random() < 0.6:
            base = f"{r.choice(ROADS)} {r.randrange(1, 400)}"
        else:
            base = f"{r.choice(LOTS)} {r.randrange(1, 900)}-{r.randrange(1, 30)}"
        head = f"{sido} {sgg}" if r.random() < 0.6 else sgg
        tail = r.choice(
            [
                "",
                "",
                f", {r.randrange(101, 120)}동 {r.randrange(101, 1500)}호",
                f" {r.randrange(101, 999)}호",
            ]
        )
        return f"{head} {base}{tail}"

    def mrn(self) -> str:
        r = self.rng
        return r.choice(
            [
                f"{r.randrange(10**7, 10**8)}",
                f"H-{r.randrange(10**6, 10**7)}",
                f"A{r.randrange(10**7, 10**8)}",
                f"{r.randrange(10**9, 10**10)}",
            ]
        )

    def date(self, when: dt.date) -> str:
        forms = [
            f"{when:%Y-%m-%d}",
            f"{when:%Y.%m.%d}",
            f"{when.year}. {when.month}. {when.day}.",
            f"{when:%Y/%m/%d}",
            f"{when.year}년 {when.month}월 {when.day}일",
            f"{when.month}월 {when.day}일",
            f"{when:%y.%m.%d}",
        ]
        return self.rng.choice(forms)


Sentence = Callable[[Maker, NoteBuilder, Person, dt.date], None]


def _intro(m: Maker, b: NoteBuilder, who: Person, day: dt.date) -> None:
    age = day.year - who.born.year
    b.text(m.rng.choice(["환자 ", "환자명: ", "성명 : "])).pii("NAME", who.name)
    b.text(f"({age}세)는 ").pii("DATE", m.date(day)).text(
        f" {m.rng.choice(DEPARTMENTS)} 외래에 내원하였다. "
    )


def _registration(m: Maker, b: NoteBuilder, who: Person, day: dt.date) -> None:
    if who.foreign:
        b.text("외국인등록번호 ").pii("FRN", m.rrn(who.born, foreign=True)).text(". ")
    else:
        b.text(m.rng.choice(["주민등록번호 ", "주민번호: ", "RRN "])).pii("RRN", m.rrn(who.born))
        b.text(". ")


def _contact(m: Maker, b: NoteBuilder, who: Person, day: dt.date) -> None:
    b.text(m.rng.choice(["연락처 ", "휴대전화: ", "전화 ", "본인 연락처는 "])).pii(
        "PHONE", m.phone()
    )
    b.text(m.rng.choice([". ", "이며 통화 가능. ", " (본인). "]))


def _guardian(m: Maker, b: NoteBuilder, who: Person, day: dt.date) -> None:
    relation = m.rng.choice(["딸", "아들", "배우자", "며느리"])
    b.text("보호자 ").pii("NAME", m.name()).text(f"({relation}) 연락처: ").pii("PHONE", m.phone())
    b.text(". ")


def _address(m: Maker, b: NoteBuilder, who: Person, day: dt.date) -> None:
    if m.rng.random() < 0.5:
        b.text("주소: ").pii("ADDRESS", m.address()).text(". ")
    else:
        b.pii("ADDRESS", m.address()).text("에 거주하며 독거 중. ")


def _record(m: Maker, b: NoteBuilder, who: Person, day: dt.date) -> None:
    label = m.rng.choice(["등록번호 ", "환자번호: ", "병록번호 ", "MRN ", "차트번호 #"])
    b.text(label).pii("MRN", m.mrn()).text(f" / 진료과 {m.rng.choice(DEPARTMENTS)}. ")


def _email(m: Maker, b: NoteBuilder, who: Person, day: dt.date) -> None:
    b.text("검사 결과는 이메일 ").pii("EMAIL", m.email()).text("로 안내 요청함. ")


def _staff(m: Maker, b: NoteBuilder, who: Person, day: dt.date) -> None:
    b.text("담당의 ").pii("NAME", m.name()).text(" 교수, 간호사 ").pii("NAME", m.name()).text(". ")


def _followup(m: Maker, b: NoteBuilder, who: Person, day: dt.date) -> None:
    b.pii("NAME", who.name).text(m.rng.choice([" 씨는 ", "님은 ", " 환자는 "]))
    earlier = day - dt.timedelta(days=m.rng.randrange(30, 900))
    b.pii("DATE", m.date(earlier)).text("부터 메트포르민 500mg 1일 2회 복용 중. ")


def _labs(m: Maker, b: NoteBuilder, who: Person, day: dt.date) -> None:
    earlier = day - dt.timedelta(days=m.rng.randrange(1, 60))
    b.pii("DATE", m.date(earlier)).text(" 시행한 검사에서 HbA1c 7.4%, eGFR 68 mL/min/1.73m2. ")


SENTENCES: tuple[Sentence, ...] = (
    _registration,
    _contact,
    _guardian,
    _address,
    _record,
    _email,
    _staff,
    _followup,
    _labs,
)


def make_note(m: Maker, who: Person, day: dt.date) -> NoteBuilder:
    b = NoteBuilder()
    _intro(m, b, who, day)
    chosen = m.rng.sample(SENTENCES, k=m.rng.randrange(3, 7))
    for sentence in chosen:
        sentence(m, b, who, day)
        if m.rng.random() < 0.6:
            b.text(m.rng.choice(FILLER) + " ")
    b.text(m.rng.choice(FILLER))
    return b


def make_notes(count: int, seed: int) -> tuple[list[dict[str, str]], list[dict[str, object]]]:
    m = Maker(seed)
    notes: list[dict[str, str]] = []
    spans: list[dict[str, object]] = []
    people = [
        Person(
            f"{i + 1}",
            m.name(),
            dt.date(1935, 1, 1) + dt.timedelta(days=m.rng.randrange(0, 32000)),
            m.rng.random() < 0.1,
        )
        for i in range(max(1, count // 3))
    ]
    for i in range(count):
        who = m.rng.choice(people)
        day = dt.date(2019, 1, 1) + dt.timedelta(days=m.rng.randrange(0, 2000))
        built = make_note(m, who, day)
        note_id = f"N{i + 1:06d}"
        notes.append(
            {
                "note_id": note_id,
                "person_id": who.person_id,
                "note_date": f"{day}",
                "note_title": m.rng.choice(TITLES),
                "note_text": built.build(),
            }
        )
        for start, end, kind, text in built.spans:
            spans.append(
                {"note_id": note_id, "start": start, "end": end, "type": kind, "text": text}
            )
    return notes, spans


def write_notes(folder: Path, count: int, seed: int) -> tuple[Path, Path]:
    """notes.csv and spans.csv in ``folder``; the same seed gives the same bytes."""
    notes, spans = make_notes(count, seed)
    folder.mkdir(parents=True, exist_ok=True)
    notes_path, spans_path = folder / "notes.csv", folder / "spans.csv"
    for path, rows, columns in (
        (notes_path, notes, NOTE_COLUMNS),
        (spans_path, spans, SPAN_COLUMNS),
    ):
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return notes_path, spans_path
