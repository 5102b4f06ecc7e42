"""Korean clinical notes written from each patient's recorded facts, with a gold-standard
file of every identifier in them (for judging de-identification).

Notes: admission notes and discharge summaries for inpatient stays, emergency notes, and
outpatient progress notes (at diagnoses and a sample of follow-ups), in varied templates.
Spans: ``note_id,start,end,type,text`` with Python code-point offsets into ``note_text``,
end exclusive; type is one of RRN, FRN, PHONE, EMAIL, ADDRESS, MRN, NAME (patients,
relatives and staff), DATE.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from pmhub.synth import refdata
from pmhub.synth.chunk import ID_BLOCK, Chunk
from pmhub.synth.config import SynthConfig
from pmhub.synth.model import DAYS_PER_YEAR, Arr
from pmhub.synth.omop import staff
from pmhub.synth.records import COND_KEYS, DRUG_KEYS, ER, IP, MEAS_KEYS, OP, PROC_KEYS

SPAN_TYPES = ("RRN", "FRN", "PHONE", "EMAIL", "ADDRESS", "MRN", "NAME", "DATE")
NOTE_COLUMNS = ("note_id", "person_id", "note_date", "note_title", "note_text")
SPAN_COLUMNS = ("note_id", "start", "end", "type", "text")
OUTPATIENT_SAMPLE = 0.02  # share of follow-up visits with a written progress note
EMERGENCY_SAMPLE = 0.6  # share of emergency visits with a note in the extract
COMPLAINT = {
    "mi": "흉통",
    "isch_stroke": "우측 편마비와 구음장애",
    "haem_stroke": "갑작스러운 두통과 의식저하",
    "hf": "호흡곤란과 하지부종",
    "af": "두근거림",
    "gi_bleed": "흑색변",
    "hypoglycaemia": "식은땀과 의식저하",
    "pregnancy": "규칙적인 진통",
    "pharyngitis": "인후통",
    "bronchitis": "기침과 가래",
    "sinusitis": "코막힘",
    "back_pain": "허리 통증",
    "knee_oa": "무릎 통증",
    "uti": "배뇨통",
    "headache": "두통",
    "anaemia": "어지러움",
    "pneumonia": "발열과 기침",
    "hip_fracture": "낙상 후 고관절 통증",
    "cholecystitis": "우상복부 통증",
}
RELATIVES = ("아들", "딸", "배우자", "며느리", "사위")
TITLES = {
    "admission": "입원기록",
    "discharge": "퇴원요약",
    "emergency": "응급실 기록",
    "outpatient": "외래 경과기록",
}


class Note:
    """A note under construction: text pieces, and spans with their offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[tuple[int, int, str, str]] = []

    def say(self, text: str) -> Note:
        self.parts.append(text)
        self.length += len(text)
        return self

    def mark(self, text: str, kind: str) -> Note:
        if text:
            self.spans.append((self.length, self.length + len(text), kind, text))
        return self.say(text)

    def text(self) -> str:
        return "".join(self.parts)


@dataclass
class NoteRows:
    note_id: list[int] = field(default_factory=list)
    person_id: list[int] = field(default_factory=list)
    person: list[int] = field(default_factory=list)  # chunk person index
    day: list[int] = field(default_factory=list)
    sec: list[int] = field(default_factory=list)
    title: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    provider_id: list[int] = field(default_factory=list)
    visit_id: list[int] = field(default_factory=list)
    spans: list[tuple[int, int, int, str, str]] = field(default_factory=list)


EPOCH = dt.date(1970, 1, 1)


def date_text(day: int, style: int) -> str:
    d = EPOCH + dt.timedelta(days=int(day))
    y, m, dd = d.year, d.month, d.day
    return (
        f"{y}-{m:02d}-{dd:02d}",
        f"{y}.{m:02d}.{dd:02d}",
        f"{y}년 {m}월 {dd}일",
        f"{y % 100:02d}/{m:02d}/{dd:02d}",
        f"{y}/{m}/{dd}",
    )[style % 5]


class Facts:
    """Lookups from a chunk for note writing: what was recorded at each visit."""

    def __init__(self, chunk: Chunk, site: int) -> None:
        self.c = chunk
        self.site = site
        t = chunk.tables
        self.by_visit = {
            name: _groups(t[name]["visit"])
            for name in ("conditions", "drugs", "measurements", "procedures")
        }
        self.conds = refdata.conditions()
        self.drugs = refdata.drugs()
        self.procs = refdata.procedures()

    def rows(self, table: str, visit: int) -> Arr:
        order, starts, keys = self.by_visit[table]
        i = np.searchsorted(keys, visit)
        if i >= len(keys) or keys[i] != visit:
            return np.zeros(0, dtype=np.int64)
        result: Arr = order[starts[i] : starts[i + 1]]
        return result

    def diagnoses(self, visit: int) -> list[tuple[str, str, str]]:
        """(key, Korean name, KCD-7 code) of the visit's diagnoses, without repeats."""
        seen: list[tuple[str, str, str]] = []
        for row in self.rows("conditions", visit).tolist():
            key = COND_KEYS[int(self.c.tables["conditions"]["cond"][row])]
            item = (key, self.conds[key].name_ko, self.conds[key].kcd7)
            if item not in seen:
                seen.append(item)
        return seen

    def medicines(self, visit: int) -> list[str]:
        names: list[str] = []
        for row in self.rows("drugs", visit).tolist():
            name = self.drugs[DRUG_KEYS[int(self.c.tables["drugs"]["drug"][row])]].name_ko
            if name not in names:
                names.append(name)
        return names

    def vitals(self, visit: int) -> dict[str, float]:
        m = self.c.tables["measurements"]
        result: dict[str, float] = {}
        for row in self.rows("measurements", visit).tolist():
            key = MEAS_KEYS[int(m["measure"][row])]
            if key in ("sbp", "dbp", "hr", "hba1c", "ldl", "egfr") and not np.isnan(
                m["value"][row]
            ):
                result[key] = float(m["value"][row])
        return result

    def operations(self, visit: int) -> list[str]:
        rows = self.rows("procedures", visit).tolist()
        return [
            self.procs[PROC_KEYS[int(self.c.tables["procedures"]["proc"][r])]].name_ko for r in rows
        ]


@cache
def _cumulative() -> Arr:
    result: Arr = np.cumsum(refdata.names().surname_p)
    result[-1] = 1.0
    return result


def _groups(visit: Arr) -> tuple[Arr, Arr, Arr]:
    order = np.argsort(visit, kind="stable")
    keys, starts = np.unique(visit[order], return_index=True)
    return order, np.append(starts, len(order)), keys


def select_visits(chunk: Chunk, site: int, rng: np.random.Generator) -> list[tuple[int, str]]:
    """(visit, kind of note) for the notes of a site, in visit order."""
    v = chunk.tables["visits"]
    here = v["site"] == site
    u = rng.random(len(here))
    # diagnosis visits (not the routine prenatal ones) always get a note
    diagnosis = (v["event"] >= 0) & (v["event"] != COND_KEYS.index("pregnancy"))
    inpatient = here & (v["kind"] == IP)
    emergency = here & (v["kind"] == ER) & (u < EMERGENCY_SAMPLE)
    outpatient = here & (v["kind"] == OP) & (diagnosis | (u < OUTPATIENT_SAMPLE))
    chosen: list[tuple[int, str]] = []
    kinds = np.select([inpatient, emergency, outpatient], [1, 2, 3], 0)
    for visit in np.flatnonzero(kinds).tolist():
        kind = int(kinds[visit])
        if kind == 1:
            chosen.append((visit, "admission"))
            chosen.append((visit, "discharge"))
        else:
            chosen.append((visit, "emergency" if kind == 2 else "outpatient"))
    return chosen


def site_notes(chunk: Chunk, site: int, config: SynthConfig) -> NoteRows:
    """All notes of one site from one chunk (deterministic in seed, chunk and site)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, chunk.index, 700 + site]))
    facts = Facts(chunk, site)
    doctors = staff(config.seed, site)
    rows = NoteRows()
    v = chunk.tables["visits"]
    for visit, kind in select_visits(chunk, site, rng):
        person = int(v["person"][visit])
        writer = _Writer(chunk, site, facts, doctors, rng, person, visit)
        note = getattr(writer, kind)()
        note_id = chunk.index * ID_BLOCK + len(rows.note_id) + 1
        day = int(v["end"][visit] if kind == "discharge" else v["start"][visit])
        rows.note_id.append(note_id)
        rows.person_id.append(int(chunk.site_person[person, site]))
        rows.person.append(person)
        rows.day.append(day)
        rows.sec.append(int(v["end_sec"][visit] if kind == "discharge" else v["start_sec"][visit]))
        rows.title.append(TITLES[kind])
        rows.text.append(note.text())
        rows.kind.append(kind)
        rows.provider_id.append((site + 1) * 100_000 + int(v["provider"][visit]) + 1)
        rows.visit_id.append(chunk.index * ID_BLOCK + visit + 1)
        rows.spans.extend((note_id, s, e, t, x) for s, e, t, x in note.spans)
    return rows


class _Writer:
    """Writes one note; phrasing, order and date formats vary at random."""

    def __init__(
        self,
        chunk: Chunk,
        site: int,
        facts: Facts,
        doctors: Any,
        rng: np.random.Generator,
        person: int,
        visit: int,
    ) -> None:
        self.c = chunk
        self.site = site
        self.f = facts
        self.rng = rng
        self.p = person
        self.visit = visit
        self.v = chunk.tables["visits"]
        self.doctor = doctors.names[int(self.v["provider"][visit]) % len(doctors.names)]
        self.specialty = doctors.specialty[int(self.v["provider"][visit]) % len(doctors.names)]
        self.date_style = int(rng.integers(0, 5))
        s = chunk.state
        self.people = chunk.at_site(site)
        self.name = f"{self.people['family'][person]}{self.people['given'][person]}"
        self.male = bool(s.male[person])
        self.age = int((int(self.v["start"][visit]) - int(s.birth[person])) / DAYS_PER_YEAR)
        self.foreign = bool(s.foreign[person])

    def pick(self, *options: str) -> str:
        return options[int(self.rng.integers(0, len(options)))]

    def date(self, note: Note, day: int) -> Note:
        return note.mark(date_text(day, self.date_style), "DATE")

    def header(self, note: Note, title: str) -> Note:
        p = self.people
        note.say(f"[{title}]\n")
        note.say(self.pick("환자명: ", "성명: ", "이름: ")).mark(self.name, "NAME")
        note.say(f" ({'남' if self.male else '여'}/{self.age}세)\n")
        note.say(self.pick("등록번호: ", "병록번호: ", "환자번호: ")).mark(
            str(self.c.mrn[self.p, self.site]), "MRN"
        ).say("\n")
        if self.rng.random() < 0.6:
            label = "외국인등록번호: " if self.foreign else "주민등록번호: "
            note.say(label).mark(str(p["rrn"][self.p]), "FRN" if self.foreign else "RRN").say("\n")
        if self.rng.random() < 0.5:
            note.say("주소: ").mark(str(p["street"][self.p]), "ADDRESS").say("\n")
        if self.rng.random() < 0.5:
            note.say("연락처: ").mark(str(p["phone"][self.p]), "PHONE")
            if self.rng.random() < 0.3:
                note.say(" (자택 ").mark(str(p["home_phone"][self.p]), "PHONE").say(")")
            note.say("\n")
        return note

    def guardian(self, note: Note) -> None:
        family = str(self.people["family"][self.p])
        relative = RELATIVES[int(self.rng.integers(0, len(RELATIVES)))]
        male = relative in ("아들", "사위") or (relative == "배우자" and not self.male)
        surname, given = self.someone(male, 1960 + int(self.rng.integers(0, 40)))
        name = (family if relative in ("아들", "딸") else surname) + given
        middle, last = int(self.rng.integers(2000, 10_000)), int(self.rng.integers(0, 10_000))
        phone = f"010-{middle:04d}-{last:04d}"
        note.say(f"보호자: {relative} ").mark(name, "NAME").say(" (").mark(str(phone), "PHONE").say(
            ")\n"
        )

    def someone(self, male: bool, born: int) -> tuple[str, str]:
        """A random relative's or colleague's name (surnames by their frequency)."""
        ref = refdata.names()
        surname = ref.surnames[int(np.searchsorted(_cumulative(), self.rng.random()))]
        era = max(e for e in ref.eras if e <= born) if born >= ref.eras[0] else ref.eras[0]
        pool = ref.given[("M" if male else "F", era)]
        return surname, pool[int(self.rng.integers(0, len(pool)))]

    def history(self, note: Note) -> None:
        dx = self.f.diagnoses(self.visit)
        chronic = [
            d
            for d in dx
            if d[0]
            in (
                "hypertension",
                "t2dm",
                "dyslipidaemia",
                "ckd",
                "af",
                "copd",
                "asthma",
                "dementia",
                "depression",
            )
        ]
        if chronic:
            note.say("과거력: " + ", ".join(f"{name}({code})" for _, name, code in chronic) + "\n")
        else:
            note.say("과거력: 특이사항 없음\n")
        meds = self.f.medicines(self.visit)
        if meds:
            note.say("복용약: " + ", ".join(meds) + "\n")

    def vitals(self, note: Note) -> None:
        vit = self.f.vitals(self.visit)
        if "sbp" in vit and "dbp" in vit:
            note.say(f"활력징후: 혈압 {vit['sbp']:.0f}/{vit['dbp']:.0f} mmHg")
            if "hr" in vit:
                note.say(f", 맥박 {vit['hr']:.0f}회/분")
            note.say("\n")
        labs = [(k, vit[k]) for k in ("hba1c", "ldl", "egfr") if k in vit]
        if labs:
            names = {"hba1c": "당화혈색소", "ldl": "LDL", "egfr": "eGFR"}
            shown = ", ".join(
                f"{names[k]} {value:.{1 if k == 'hba1c' else 0}f}" for k, value in labs
            )
            note.say(f"검사: {shown}\n")

    def main_problem(self) -> tuple[str, str, str]:
        dx = self.f.diagnoses(self.visit)
        event = int(self.v["event"][self.visit])
        if event >= 0:
            key = COND_KEYS[event]
            info = refdata.conditions()[key]
            return key, info.name_ko, info.kcd7
        return dx[0] if dx else ("checkup", "건강검진", "Z00.0")

    def signature(self, note: Note, day: int) -> None:
        note.say(f"\n작성: {self.specialty} ").mark(self.doctor, "NAME").say(" / ")
        self.date(note, day).say("\n")

    def admission(self) -> Note:
        note = self.header(Note(), "입원기록")
        start = int(self.v["start"][self.visit])
        note.say("입원일: ")
        self.date(note, start).say("\n")
        key, name, code = self.main_problem()
        complaint = COMPLAINT.get(key, "정밀 검사 및 치료")
        note.say(f"주호소: {complaint}\n")
        note.say(
            self.pick(
                f"현병력: {self.age}세 {'남자' if self.male else '여자'} 환자로 ",
                f"현병력: 상기 {self.age}세 환자는 ",
            )
        )
        self.date(note, start).say(f" {complaint}(으)로 내원하여 {name} 의심 하에 입원함.\n")
        self.history(note)
        self.vitals(note)
        if self.rng.random() < 0.5:
            self.guardian(note)
        note.say(f"진단: {name} ({code})\n")
        note.say(
            "계획: "
            + self.pick("입원 치료 및 경과 관찰", "추가 검사 후 치료 방침 결정", "전문과 협진 예정")
            + "\n"
        )
        self.signature(note, start)
        return note

    def discharge(self) -> Note:
        note = self.header(Note(), "퇴원요약")
        start, end = int(self.v["start"][self.visit]), int(self.v["end"][self.visit])
        note.say("입원기간: ")
        self.date(note, start).say(" ~ ")
        self.date(note, end).say("\n")
        _, name, code = self.main_problem()
        note.say(f"주진단: {name} ({code})\n")
        ops = self.f.operations(self.visit)
        if ops:
            note.say("시행한 처치: " + ", ".join(ops) + "\n")
        meds = self.f.medicines(self.visit)
        if self.v["died"][self.visit]:
            note.say("퇴원형태: 사망\n사망일시: ")
            self.date(note, end).say("\n")
        else:
            note.say(
                "퇴원형태: " + self.pick("자택 퇴원", "외래 추적 예정", "요양병원 전원") + "\n"
            )
            if meds:
                note.say("퇴원약: " + ", ".join(meds) + "\n")
            note.say("외래 예약: ")
            self.date(note, end + 14 + int(self.rng.integers(0, 14))).say(f" {self.specialty}\n")
        if self.rng.random() < 0.3:
            nurse = "".join(self.someone(False, 1990))
            note.say("담당간호사: ").mark(nurse, "NAME").say("\n")
        self.signature(note, end)
        return note

    def emergency(self) -> Note:
        note = self.header(Note(), "응급실 기록")
        start = int(self.v["start"][self.visit])
        sec = int(self.v["start_sec"][self.visit])
        note.say("내원일시: ")
        self.date(note, start).say(f" {sec // 3600:02d}:{sec % 3600 // 60:02d}\n")
        key, name, code = self.main_problem()
        note.say(f"주증상: {COMPLAINT.get(key, '복통')}\n")
        self.vitals(note)
        note.say(f"인상: {name} ({code})\n")
        note.say(
            "처치 및 결과: "
            + self.pick("입원 결정", "증상 호전되어 귀가", "외래 추적 권유", "관찰 후 퇴실")
            + "\n"
        )
        if self.rng.random() < 0.4:
            self.guardian(note)
        self.signature(note, start)
        return note

    def outpatient(self) -> Note:
        note = Note()
        note.say("[외래 경과기록]\n")
        note.mark(self.name, "NAME").say(self.pick(" 님, ", " 환자, ", " ("))
        note.say(f"{'M' if self.male else 'F'}/{self.age}").say(
            ")" if note.parts[-2] == " (" else ""
        ).say("\n")
        note.say("ID: ").mark(str(self.c.mrn[self.p, self.site]), "MRN").say("\n")
        start = int(self.v["start"][self.visit])
        note.say("진료일: ")
        self.date(note, start).say("\n")
        key, name, code = self.main_problem()
        note.say(f"S) {COMPLAINT.get(key, '정기 추적 관찰')}\n")
        note.say("O) ")
        self.vitals(note)
        note.say(f"A) {name} ({code})\n")
        meds = self.f.medicines(self.visit)
        plan = "P) " + (", ".join(meds) + " 처방 유지" if meds else "경과 관찰")
        note.say(plan + ", 다음 진료 ")
        self.date(note, start + 30 * int(self.rng.integers(1, 4))).say("\n")
        if self.rng.random() < 0.15:
            note.say("검사 결과 이메일 안내 요청: ").mark(
                str(self.people["email"][self.p]), "EMAIL"
            ).say("\n")
        if self.rng.random() < 0.2:
            note.say("문자 안내: ").mark(str(self.people["phone"][self.p]), "PHONE").say("\n")
        self.signature(note, start)
        return note


def tables(rows: NoteRows, person_ids: list[Any]) -> tuple[Any, Any]:
    """The notes file and the gold-standard spans file of a site, as Arrow tables."""
    import pyarrow as pa

    notes = pa.table(
        {
            "note_id": pa.array(rows.note_id, pa.int64()),
            "person_id": pa.array([person_ids[p] for p in rows.person]),
            "note_date": pa.array(rows.day, pa.int32()).cast(pa.date32()),
            "note_title": pa.array(rows.title, pa.string()),
            "note_text": pa.array(rows.text, pa.string()),
        }
    )
    spans = pa.table(
        {
            "note_id": pa.array([s[0] for s in rows.spans], pa.int64()),
            "start": pa.array([s[1] for s in rows.spans], pa.int64()),
            "end": pa.array([s[2] for s in rows.spans], pa.int64()),
            "type": pa.array([s[3] for s in rows.spans], pa.string()),
            "text": pa.array([s[4] for s in rows.spans], pa.string()),
        }
    )
    return notes, spans
