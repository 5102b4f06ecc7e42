"""Korean free-text de-identification: rules, evaluation, and the notes release."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from pmhub.privacy.errors import NotesFormatError, OutputExistsError
from pmhub.privacy.keys import KeyStore, ProjectKey
from pmhub.privacy.text import patterns, synth
from pmhub.privacy.text.detect import detect
from pmhub.privacy.text.evaluate import evaluate_deid
from pmhub.privacy.text.notes import deidentify_notes, read_notes, shift_date_text
from pmhub.privacy.transforms import DATE_SHIFT
from pmhub.settings import load_settings


def with_check_digit(first12: str, foreign: bool = False) -> str:
    total = sum(int(d) * w for d, w in zip(first12, patterns.WEIGHTS, strict=True))
    return first12 + str(((13 if foreign else 11) - total % 11) % 10)


def kinds(text: str, names: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    return [(s.type, s.text) for s in detect(text, names)]


def test_check_digit_of_a_pre_2020_number():
    number = with_check_digit("850315123456")
    assert patterns.check_digit_ok(number)
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert not patterns.check_digit_ok(wrong)


def test_bare_13_digits_need_the_check_digit_a_cue_or_the_new_format():
    valid = with_check_digit("850315123456")
    invalid = valid[:-1] + str((int(valid[-1]) + 1) % 10)
    assert kinds(f"번호 {valid} 확인") == [("RRN", valid)]
    assert kinds(f"코드 {invalid} 확인") == []  # could be any 13-digit number
    assert kinds(f"주민번호 {invalid} 확인") == [("RRN", invalid)]
    assert kinds(f"값 {invalid[:6]}-{invalid[6:]}") == [("RRN", f"{invalid[:6]}-{invalid[6:]}")]
    newborn = "2111154" + "839201"  # born 2021-11-15, random digits since October 2020
    assert kinds(f"신생아 {newborn} 확인") == [("RRN", newborn)]


def test_impossible_birth_dates_are_not_registration_numbers():
    assert kinds("lot 851345-1234567 and 850230-1234567") == []


def test_foreigners_numbers_are_frn():
    number = with_check_digit("900101512345", foreign=True)
    assert kinds(f"외국인등록번호 {number[:6]}-{number[6:]}") == [
        ("FRN", f"{number[:6]}-{number[6:]}")
    ]


@pytest.mark.parametrize(
    "phone",
    [
        "010-1234-5678",
        "010 1234 5678",
        "010.1234.5678",
        "01012345678",
        "+82-10-1234-5678",
        "02-123-4567",
        "033-250-1234",
        "(033) 250-1234",
        "1588-1234",
        "070-8765-4321",
    ],
)
def test_phone_forms(phone):
    assert kinds(f"연락처 {phone}, 확인함") == [("PHONE", phone)]


@pytest.mark.parametrize(
    "text",
    [
        "혈압 130/80 mmHg",
        "HbA1c 7.2%",
        "E11.9 제2형 당뇨병",
        "오후 2시 30분",
        "체중 65.3kg",
        "메트포르민 500mg 1일 2회",
        "이번 방문에서 신규 환자 교육",
        "고혈압 환자로 분류",
        "경로 변경 없이 유지",
        "주로 야간에 3회 깸",
        "운동 30분 권고",
        "정상적인 활동 가능",
        "장기간 흡연력 20갑년",
    ],
)
def test_clinical_look_alikes_are_left_alone(text):
    assert kinds(text) == []


def test_known_names_are_found_everywhere_and_cued_names_propagate():
    text = "환자명: 홍길동. 오늘 홍길동은 기침을 호소. 보호자 김영희(딸)에게 설명함. 김영희 연락됨."
    found = kinds(text)
    assert found.count(("NAME", "홍길동")) == 2
    assert found.count(("NAME", "김영희")) == 2
    assert kinds("오늘 박아무개가 왔다", ("박아무개",)) == [("NAME", "박아무개")]


# Hand-written notes in phrasings the generator does not use, with their gold spans.
HAND_WRITTEN = [
    (
        "71세 남환 최광수 님 외래 f/u. 집 전화 (02) 555-0192, 딸 휴대폰 010-2233-4455.",
        [("NAME", "최광수"), ("PHONE", "(02) 555-0192"), ("PHONE", "010-2233-4455")],
    ),
    (
        "주소지 서울특별시 마포구 월드컵북로 396, 응급연락 02-300-1234",
        [("ADDRESS", "서울특별시 마포구 월드컵북로 396"), ("PHONE", "02-300-1234")],
    ),
    (
        "원주시 단구동 1234-5 거주, 병록번호: 2023-004512",
        [("ADDRESS", "원주시 단구동 1234-5"), ("MRN", "2023-004512")],
    ),
    (
        "작성자: 정하늘 / 2024.03.05 작성 / 문의 jh.kim@hallym.or.kr",
        [("NAME", "정하늘"), ("DATE", "2024.03.05"), ("EMAIL", "jh.kim@hallym.or.kr")],
    ),
    (
        "Patient ID A20231102, 내원일 2023년 11월 2일, 다음 예약 12월 7일",
        [("MRN", "A20231102"), ("DATE", "2023년 11월 2일"), ("DATE", "12월 7일")],
    ),
    (
        "간호사 윤지혜 님이 혈당 측정함. 강릉시 교동 12-3 자택.",
        [("NAME", "윤지혜"), ("ADDRESS", "강릉시 교동 12-3")],
    ),
    (
        "생년월일 19520817, 춘천시 효자동 거주, 검체번호 없음",
        [("DATE", "19520817"), ("ADDRESS", "춘천시 효자동")],
    ),
]


def test_hand_written_notes(tmp_path):
    notes, spans = tmp_path / "notes.csv", tmp_path / "spans.csv"
    with (
        notes.open("w", encoding="utf-8", newline="") as n,
        spans.open("w", encoding="utf-8", newline="") as s,
    ):
        nw, sw = csv.writer(n), csv.writer(s)
        nw.writerow(synth.NOTE_COLUMNS)
        sw.writerow(synth.SPAN_COLUMNS)
        for i, (text, gold) in enumerate(HAND_WRITTEN):
            nw.writerow([f"H{i}", "1", "2024-01-01", "경과기록", text])
            for kind, value in gold:
                start = text.index(value)
                sw.writerow([f"H{i}", start, start + len(value), kind, value])
    scores = evaluate_deid(notes, spans)
    assert scores["ALL"]["recall"] == 1.0
    assert scores["ALL"]["precision"] == 1.0


def test_generated_notes_meet_the_targets(tmp_path):
    notes, spans = synth.write_notes(tmp_path, 300, seed=11)
    scores = evaluate_deid(notes, spans)
    for kind in ("RRN", "FRN", "PHONE", "EMAIL", "MRN"):
        assert scores[kind]["recall"] >= 0.99, (kind, scores[kind])
    for kind in ("NAME", "ADDRESS"):
        assert scores[kind]["recall"] >= 0.95, (kind, scores[kind])
    for kind, score in scores.items():
        assert score["precision"] >= 0.90, (kind, score)


def test_the_note_maker_is_deterministic(tmp_path):
    first = synth.write_notes(tmp_path / "a", 30, seed=5)
    second = synth.write_notes(tmp_path / "b", 30, seed=5)
    other = synth.write_notes(tmp_path / "c", 30, seed=6)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert first[0].read_bytes() != other[0].read_bytes()
    for note in read_notes(first[0]):
        assert note.text  # gold offsets index the text as written
    with first[1].open(encoding="utf-8") as handle:
        texts = {n.note_id: n.text for n in read_notes(first[0])}
        for row in csv.DictReader(handle):
            assert texts[row["note_id"]][int(row["start"]) : int(row["end"])] == row["text"]


@pytest.mark.parametrize(
    ("text", "days", "expected"),
    [
        ("2023-05-04", 3, "2023-05-07"),
        ("2023.5.4", -4, "2023.4.30"),
        ("2023. 5. 4.", 30, "2023. 6. 3."),
        ("2023년 5월 4일", 1, "2023년 5월 5일"),
        ("23.12.31", 1, "24.01.01"),
        ("5월 4일", 28, "6월 1일"),
        ("20231231", 1, "20240101"),
        ("2023/02/29", 1, None),
    ],
)
def test_dates_shift_in_their_own_style(text, days, expected):
    assert shift_date_text(text, days, dt.date(2023, 1, 1)) == expected


@pytest.fixture
def key() -> ProjectKey:
    store = KeyStore(load_settings())
    store.create("notes")
    return store.get("notes")


@pytest.mark.parametrize("mode", ["tag", "surrogate"])
def test_released_notes_hold_no_gold_identifier(tmp_path, key, mode):
    notes, spans = synth.write_notes(tmp_path / "in", 60, seed=3)
    release = deidentify_notes(notes, tmp_path / "out", key, mode=mode)
    assert release.notes == 60
    released = [n.text for n in read_notes(tmp_path / "out" / "notes.csv")]
    originals = [n.note_id for n in read_notes(notes)]
    by_id = dict(zip(originals, released, strict=True))
    with spans.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["type"] != "DATE":  # a shifted date may equal some other real date
                assert row["text"] not in by_id[row["note_id"]], row
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["notes"] == 60
    assert "notes" in summary["project"]


def test_note_dates_move_with_the_persons_structured_offset(tmp_path, key):
    notes = tmp_path / "notes.csv"
    notes.write_text(
        "note_id,person_id,note_date,note_title,note_text\nn1,P9,2024-02-10,기록,2024-02-10 내원\n",
        encoding="utf-8",
    )
    deidentify_notes(notes, tmp_path / "out", key)
    row = next(read_notes(tmp_path / "out" / "notes.csv"))
    days = key.offset(DATE_SHIFT, "P9", 30)
    moved = dt.date(2024, 2, 10) + dt.timedelta(days=days)
    assert row.note_date == f"{moved}"
    assert row.text == f"{moved} 내원"
    assert row.person_id == key.pseudonym("person_id", "P9")


@pytest.mark.parametrize(
    "content",
    [
        b"note_id,text\n1,x\n",
        b"\xff\xfe\x00garbage",
        b"note_id,person_id,note_date,note_title,note_text\n1,2,3\n",
    ],
)
def test_malformed_notes_write_nothing(tmp_path, key, content):
    notes = tmp_path / "notes.csv"
    notes.write_bytes(content)
    with pytest.raises(NotesFormatError):
        deidentify_notes(notes, tmp_path / "out", key)
    assert not (tmp_path / "out").exists()


def test_notes_output_is_never_overwritten(tmp_path, key):
    notes, _ = synth.write_notes(tmp_path / "in", 3, seed=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep")
    with pytest.raises(OutputExistsError):
        deidentify_notes(notes, tmp_path / "out", key)


def test_huge_hostile_note_is_handled(tmp_path, key):
    notes = tmp_path / "notes.csv"
    hostile = ("010-" * 5000) + ("가" * 20000) + ("@" * 3000) + "<script>alert(1)</script>"
    with notes.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(synth.NOTE_COLUMNS)
        writer.writerow(["1", "2", "2024-01-01", "t", hostile])
    release = deidentify_notes(notes, tmp_path / "out", key)
    assert release.notes == 1


# Clinical sentences without identifiers: nothing may be detected (a precision guard).
NO_IDENTIFIERS = [
    "환자는 어제부터 발열과 오한을 호소하였다.",
    "이전의 검사 결과와 비교하여 큰 변화는 없다.",
    "우측 하지의 부종이 관찰되어 도플러 검사를 시행하였다.",
    "방사선 검사상 폐렴 소견은 보이지 않는다.",
    "한의원에서 침 치료를 받은 적이 있다고 한다.",
    "정상인과 비교하여 혈당 변동 폭이 크다.",
    "주사제 투여 후 이상반응은 없었다.",
    "신장기능은 eGFR 54로 감소되어 있다.",
    "심전도에서 ST 분절 변화는 없다.",
    "구강 내 궤양이 2개 있다.",
    "이번 주에 시행한 흉부 CT에서 결절은 크기 변화 없음.",
    "고혈당이 지속되어 인슐린 용량을 조정함.",
    "안정된 상태로 일반 병동으로 전동함.",
    "조영술 후 합병증 없이 퇴원함.",
    "장기적인 추적 관찰이 필요하다.",
    "주기적으로 혈압을 측정하도록 교육함.",
    "하루 종일 어지러움을 호소함.",
    "추후에 재평가할 예정이다.",
    "좌측 유방에 종괴가 만져진다.",
    "우선은 보존적 치료를 유지한다.",
    "보호자에게 수술 위험성에 대해 설명함.",
    "주치의와 상의 후 항생제를 변경함.",
    "간호사가 활력징후를 2시간마다 측정함.",
    "정신과 협진을 의뢰하였다.",
    "가정간호 서비스 연계를 안내함.",
    "전원 의뢰서를 작성하였다.",
    "수면 중 무호흡 증상이 있다.",
    "혈액배양 결과 음성이다.",
    "기침과 가래가 2주째 지속된다.",
    "오전 중 금식 후 내시경 예정.",
    "하지 근력은 5등급으로 정상이다.",
    "유전자 검사 결과를 설명하였다.",
    "문진상 가족력은 없다.",
    "성인 예방접종 일정을 안내함.",
    "임상적으로 패혈증은 의심되지 않는다.",
    "진료 의뢰서 회신을 받았다.",
    "상기 환자는 당뇨병성 신증으로 추적 중이다.",
    "지난번 처방과 동일하게 유지한다.",
    "정규 외래에서 재평가 예정.",
    "신경학적 검사상 이상 소견 없음.",
]


@pytest.mark.parametrize("sentence", NO_IDENTIFIERS)
def test_sentences_without_identifiers(sentence):
    assert kinds(sentence) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("김민준(45세, 남)은 흉통으로 내원.", [("NAME", "김민준")]),
        ("오늘 박서연이 보호자와 함께 왔다.", [("NAME", "박서연")]),
        ("성명: Nguyen Van An, 국적 베트남", [("NAME", "Nguyen Van An")]),
        ("주민번호 850315-1******", [("RRN", "850315-1******")]),
        ("수진자번호 00123456", [("MRN", "00123456")]),
        ("visit 05/04/2023", [("DATE", "05/04/2023")]),
        ("진료일: 21/10/06", [("DATE", "21/10/06")]),
        ("작성: 내분비내과 김창수 / 2021-05-26", [("NAME", "김창수"), ("DATE", "2021-05-26")]),
        ("보호자: 배우자 박진호 (010-2222-3333)", [("NAME", "박진호"), ("PHONE", "010-2222-3333")]),
        ("보호자: 아들 쩐현우 (010-2222-3333)", [("NAME", "쩐현우"), ("PHONE", "010-2222-3333")]),
        ("성명: 응우티 흐엉 (여/55세)", [("NAME", "응우티 흐엉")]),
        ("[외래 경과기록]\n호세가르시아 (M/54)", [("NAME", "호세가르시아")]),
        ("이름: 최지후 (남/8세)", [("NAME", "최지후")]),
    ],
)
def test_more_surface_forms(text, expected):
    assert kinds(text) == expected


def test_targets_on_the_synthetic_data_generators_notes(tmp_path):
    """The independent generator (pmhub.synth, another layer) with its own gold spans."""
    service = pytest.importorskip("pmhub.synth.service", reason="pmhub.synth is not merged here")
    service.generate(tmp_path / "net", sites=1, patients=300, years=3, seed=11, workers=1)
    notes = sorted((tmp_path / "net").glob("*/notes.csv"))
    assert notes, "the generator wrote no notes.csv"
    scores = evaluate_deid(notes[0], notes[0].parent / "note_spans.csv")
    assert scores["ALL"]["gold"] > 100
    for kind, score in scores.items():
        target = 0.95 if kind in ("NAME", "ADDRESS", "DATE", "ALL") else 0.99
        assert score["recall"] >= target, (kind, score)
        assert score["precision"] >= 0.90, (kind, score)
