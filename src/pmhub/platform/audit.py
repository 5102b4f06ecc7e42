"""The tamper-evident audit trail: a hash chain with signed checkpoints.

Entry ``n`` stores ``hash_n = SHA-256(canonical(seq, at, actor, action, target, outcome,
details, hash_{n-1}))``. Every ``checkpoint_every`` entries, and on demand, the head
``(seq, hash)`` is signed with the home's Ed25519 key; the newest signed head is also
written to ``PMHUB_HOME/audit-head.json`` so that cutting entries off the end of the
database shows. See README.md for the threat model.

Details hold only the keys of :data:`DETAIL_KEYS`, each of a fixed type: no free-form
payload, so no patient-level value or secret can be logged by accident.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pmhub.platform import keys, policy
from pmhub.platform.core import Platform
from pmhub.platform.db import WRITE_OPTION, after_commit, is_postgres
from pmhub.platform.errors import (
    AuditIntegrityError,
    AuditKeyError,
    ConflictError,
    Forbidden,
    PlatformInputError,
)
from pmhub.platform.models import AuditCheckpoint, AuditEntry
from pmhub.platform.roles import Principal

GENESIS = "0" * 64
HEAD_FILE = "audit-head.json"
CHECKPOINT_DOMAIN = b"pmhub audit checkpoint v1\n"
MAX_TEXT = 500
MAX_REASON = 2000
MAX_LIST = 50
MAX_PROBLEMS = 100
HEAD = "signed head"

# The only keys details may hold, and the type of each. Identifiers, states, counts and
# digests; never a row value, a query text (log its sql_sha256) or a secret.
DETAIL_KEYS: dict[str, type] = {
    "reason": str,
    "rule": str,
    "role": str,
    "scope": str,
    "site": str,
    "sites": list,
    "project_id": str,
    "application_id": int,
    "workspace_id": int,
    "output_id": int,
    "job_id": int,
    "token_id": int,
    "token_name": str,
    "username": str,
    "organisation": str,
    "kind": str,
    "state": str,
    "from_state": str,
    "to_state": str,
    "decision": str,
    "flags": list,
    "file": str,
    "sha256": str,
    "sql_sha256": str,
    "count": int,
    "seq": int,
    "entries": int,
    "checkpoints": int,
    "problems": int,
    "attempts": int,
    "external": bool,
    "represents_data_subjects": bool,
    "expires_at": str,
    "locked_until": str,
    "source": str,
}
# Things that must never reach the log even under an allowed key: our bearer tokens,
# password hashes, PEM keys.
SECRET_SHAPES = re.compile(r"pmh_[A-Za-z0-9_-]{16,}|\$argon2|-----BEGIN")


def _detail_value(key: str, value: object) -> str | int | bool | list[str]:
    kind = DETAIL_KEYS.get(key)
    if kind is None:
        raise PlatformInputError(f"audit details may not hold {key!r} (not an allowed key)")
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        limit = MAX_REASON if key == "reason" else MAX_TEXT
        if len(value) > limit:
            raise PlatformInputError(f"audit detail {key!r} is longer than {limit} characters")
        if SECRET_SHAPES.search(value):
            raise PlatformInputError(f"audit detail {key!r} looks like it holds a secret")
        return value
    if kind is list and isinstance(value, list | tuple):
        if len(value) > MAX_LIST:
            raise PlatformInputError(f"audit detail {key!r} has more than {MAX_LIST} items")
        return [str(_detail_value_item(key, item)) for item in value]
    raise PlatformInputError(f"audit detail {key!r} must be {kind.__name__}, not {value!r:.40}")


def _detail_value_item(key: str, item: object) -> str:
    if not isinstance(item, str) or len(item) > MAX_TEXT or SECRET_SHAPES.search(item):
        raise PlatformInputError(f"audit detail {key!r} must be a list of short texts")
    return item


def clean_details(details: Mapping[str, object] | None) -> dict[str, Any]:
    """The details as they will be stored, or a typed error naming the offending key."""
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise PlatformInputError("audit details must be a mapping of allowed keys")
    unknown = sorted(str(k) for k in details if k not in DETAIL_KEYS)
    if unknown:
        raise PlatformInputError(f"audit details may not hold {unknown[0]!r} (not an allowed key)")
    return {str(k): _detail_value(str(k), v) for k, v in details.items() if v is not None}


def canonical(value: object) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8 (details hold no floats)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class Entry:
    """An entry as the verifier sees it, from the database or from an export."""

    seq: int
    at: str
    actor: str
    action: str
    target: str
    outcome: str
    details: str
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        try:
            details = json.loads(self.details)
        except ValueError:
            return ""  # unparseable details cannot be what was hashed
        body = {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "details": details,
            "prev": self.prev_hash,
        }
        return hashlib.sha256(canonical(body)).hexdigest()

    @classmethod
    def of(cls, row: AuditEntry) -> Entry:
        return cls(
            row.seq,
            iso(row.at),
            row.actor,
            row.action,
            row.target,
            row.outcome,
            row.details,
            row.prev_hash,
            row.hash,
        )

    def as_json(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields["details"] = json.loads(self.details)
        return fields


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    key_id: str
    signature: str

    def message(self) -> bytes:
        return CHECKPOINT_DOMAIN + canonical({"seq": self.seq, "hash": self.hash, "at": self.at})

    @classmethod
    def of(cls, row: AuditCheckpoint) -> Checkpoint:
        return cls(row.seq, row.hash, iso(row.at), row.key_id, row.signature)


# --- appending -------------------------------------------------------------------------


def append(
    pf: Platform,
    session: Session,
    *,
    actor: str,
    action: str,
    target: str,
    outcome: str = "allowed",
    details: Mapping[str, object] | None = None,
) -> int:
    """Append one entry inside the caller's ``pf.db.write()`` transaction; returns its seq."""
    if not session.connection().get_execution_options().get(WRITE_OPTION):
        # Only a write transaction holds the lock that keeps the chain from forking.
        raise RuntimeError("audit.append needs a session from pf.db.write()")
    stored = canonical(clean_details(details)).decode()
    _check_field("actor", actor, 80)
    _check_field("action", action, 60)
    _check_field("target", target, 200)
    if outcome not in ("allowed", "denied"):
        raise PlatformInputError(f"audit outcome must be allowed or denied, not {outcome!r}")
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    at = pf.now()
    entry = Entry(seq, iso(at), actor, action, target, outcome, stored, prev, "")
    digest = entry.computed_hash()
    session.add(
        AuditEntry(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            target=target,
            outcome=outcome,
            details=stored,
            prev_hash=prev,
            hash=digest,
        )
    )
    session.flush()
    if seq % pf.checkpoint_every == 0:
        _sign(pf, session, seq, digest)
    return seq


def _check_field(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise PlatformInputError(f"audit {name} must be a text of 1-{limit} characters")
    if SECRET_SHAPES.search(value):
        raise PlatformInputError(f"audit {name} looks like it holds a secret")


def record(
    pf: Platform,
    *,
    actor: str,
    action: str,
    target: str,
    outcome: str = "allowed",
    details: Mapping[str, object] | None = None,
) -> int:
    """Append one entry in a transaction of its own (e.g. a denied attempt)."""
    with pf.db.write() as session:
        return append(
            pf, session, actor=actor, action=action, target=target, outcome=outcome, details=details
        )


def authorize(
    pf: Platform,
    name: str,
    principal: Principal,
    ctx: policy.Context | None,
    *,
    target: str,
) -> None:
    """:func:`policy.require`, and a denied entry on the record when it refuses."""
    if not isinstance(principal, Principal):
        raise PlatformInputError(f"the caller must be a principal, not {type(principal).__name__}")
    try:
        policy.require(name, principal, ctx)
    except Forbidden:
        record(
            pf,
            actor=principal.actor,
            action=name,
            target=target,
            outcome="denied",
            details={"rule": name},
        )
        raise


# --- checkpoints -----------------------------------------------------------------------


def _signer(pf: Platform, session: Session) -> keys.Signer:
    if keys.signing_key_exists(pf.home):
        return keys.load_signer(pf.home)
    signed_before = session.scalar(select(func.count()).select_from(AuditCheckpoint))
    if signed_before:
        # A new key now would hide that the old one is gone; the operator must restore it.
        raise AuditKeyError(f"the audit signing key in {keys.key_dir(pf.home)} is missing")
    return keys.create_signing_key(pf.home)


def ensure_signing_key(pf: Platform) -> keys.Verifier:
    """The home's key, made now if the trail has no checkpoint yet."""
    with pf.db.read() as session:
        return _signer(pf, session).verifier


def _sign(pf: Platform, session: Session, seq: int, digest: str) -> Checkpoint:
    signer = _signer(pf, session)
    now = pf.now()  # both backends keep microseconds: iso(now) is what a reader recomputes
    unsigned = Checkpoint(seq, digest, iso(now), signer.verifier.key_id, "")
    signed = dataclasses.replace(unsigned, signature=signer.sign(unsigned.message()))
    session.add(
        AuditCheckpoint(
            seq=seq, hash=digest, at=now, key_id=signed.key_id, signature=signed.signature
        )
    )
    session.flush()
    after_commit(session, lambda: _publish(pf, signed))
    return signed


def _publish(pf: Platform, head: Checkpoint) -> None:
    # The head file must never name an entry that a power loss could still take back.
    pf.db.sync()
    write_head(pf.home, head)


def checkpoint(pf: Platform, by: Principal) -> Checkpoint:
    """Sign the head now (an entry saying so is the head that gets signed)."""
    authorize(pf, "audit.checkpoint", by, None, target="audit")
    with pf.db.write() as session:
        seq = append(pf, session, actor=by.actor, action="audit.checkpoint", target="audit")
        existing = session.get(AuditCheckpoint, seq)
        if existing is not None:  # the append made the periodic one already
            return Checkpoint.of(existing)
        return _sign(pf, session, seq, session.get_one(AuditEntry, seq).hash)


@contextmanager
def _head_lock(home: Path) -> Iterator[None]:
    with open(home / f"{HEAD_FILE}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_head(home: Path) -> Checkpoint | None:
    path = home / HEAD_FILE
    if not path.exists():
        return None
    try:
        return _checkpoint_from(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuditIntegrityError(f"the signed audit head {path} is unreadable: {exc}") from exc


def write_head(home: Path, head: Checkpoint) -> None:
    """Replace the head file atomically, and only by a newer head: processes that commit
    checkpoints in one order may get here in the other."""
    with _head_lock(home):
        current = read_head(home)
        if current is not None and current.seq >= head.seq:
            return
        fd, tmp = tempfile.mkstemp(dir=home, prefix=".audit-head.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dataclasses.asdict(head), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, home / HEAD_FILE)


def _checkpoint_from(raw: Mapping[str, Any]) -> Checkpoint:
    return Checkpoint(
        int(raw["seq"]), str(raw["hash"]), str(raw["at"]), str(raw["key_id"]), str(raw["signature"])
    )


# --- verifying -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Problem:
    """One way the trail fails to verify, at the entry (seq) where it shows."""

    kind: str  # altered | missing | chain_broken | out_of_order | rewritten | truncated | ...
    seq: int | None
    message: str


@dataclasses.dataclass(frozen=True)
class Verification:
    entries: int
    checkpoints: int
    last_seq: int
    head_seq: int | None
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_broken(self) -> None:
        if self.problems:
            first = self.problems[0]
            more = (
                f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
            )
            raise AuditIntegrityError(f"the audit trail does not verify: {first.message}{more}")


class _Chain:
    """Walks entries in order, noting where the chain breaks."""

    def __init__(self, wanted: set[int]) -> None:
        self.expected = 1
        self.prev = GENESIS
        self.count = 0
        self.wanted = wanted  # seqs whose hash a checkpoint vouches for
        self.hashes: dict[int, str] = {}
        self.problems: list[Problem] = []

    def add(self, e: Entry) -> None:
        self.count += 1
        if e.seq < self.expected:
            self._note(
                "out_of_order", e.seq, f"entry {e.seq} comes after entry {self.expected - 1}"
            )
        elif e.seq > self.expected:
            gone = (
                f"{self.expected}" if e.seq == self.expected + 1 else f"{self.expected}-{e.seq - 1}"
            )
            self._note("missing", self.expected, f"entries {gone} are missing (deleted)")
        if e.computed_hash() != e.hash:
            self._note("altered", e.seq, f"entry {e.seq} was changed after it was written")
        elif e.prev_hash != self.prev:
            self._note(
                "chain_broken",
                e.seq,
                f"entry {e.seq} does not follow the entry before it (one was removed, "
                "inserted or moved)",
            )
        if e.seq in self.wanted:
            self.hashes[e.seq] = e.hash
        self.prev = e.hash
        self.expected = max(self.expected, e.seq + 1)

    def _note(self, kind: str, seq: int | None, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(kind, seq, message))


def _check_signed(
    chain: _Chain, cp: Checkpoint, verifier: keys.Verifier, label: str
) -> Problem | None:
    last = chain.expected - 1
    if cp.key_id != verifier.key_id or not verifier.verify(cp.signature, cp.message()):
        return Problem(
            "bad_signature", cp.seq, f"the {label} at entry {cp.seq} is not signed by the key"
        )
    if cp.seq > last:
        return Problem(
            "truncated",
            last + 1,
            f"the {label} vouches for entry {cp.seq}, but the trail ends at entry {last} "
            "(its end was cut off)",
        )
    if chain.hashes.get(cp.seq) != cp.hash:
        other = " (or the state database is not the one this home signed)" if label == HEAD else ""
        return Problem(
            "rewritten",
            cp.seq,
            f"the trail up to entry {cp.seq} is not the one the {label} signed (entries were "
            f"changed, removed, inserted or reordered and the chain recomputed){other}",
        )
    return None


def check(
    entries: Iterable[Entry],
    checkpoints: list[Checkpoint],
    head: Checkpoint | None,
    verifier: keys.Verifier,
) -> Verification:
    """Verify a trail, wherever it was read from."""
    wanted = {cp.seq for cp in checkpoints} | ({head.seq} if head else set())
    chain = _Chain(wanted)
    for entry in entries:
        chain.add(entry)
    problems = list(chain.problems)
    for cp in checkpoints:
        found = _check_signed(chain, cp, verifier, "checkpoint")
        if found:
            problems.append(found)
    if head is None and checkpoints:
        problems.append(Problem("head_missing", None, "the signed head file is missing"))
    elif head is not None:
        found = _check_signed(chain, head, verifier, HEAD)
        if found:
            problems.append(found)
        elif head.seq not in {cp.seq for cp in checkpoints}:
            problems.append(
                Problem(
                    "checkpoint_missing",
                    head.seq,
                    f"the checkpoint of entry {head.seq} was deleted",
                )
            )
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return Verification(
        chain.count,
        len(checkpoints),
        chain.expected - 1,
        head.seq if head else None,
        tuple(problems),
    )


def _db_entries(session: Session) -> Iterator[Entry]:
    rows = session.execute(
        select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=2000)
    )
    for row in rows.scalars():
        yield Entry.of(row)


def _db_checkpoints(session: Session) -> list[Checkpoint]:
    rows = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))
    return [Checkpoint.of(r) for r in rows]


def verify(pf: Platform, by: Principal, *, public_key: Path | None = None) -> Verification:
    """Verify the trail in the state database against the head file and a public key."""
    authorize(pf, "audit.read", by, None, target="audit")
    verifier = keys.load_verifier(public_key) if public_key else _home_verifier(pf)
    head = read_head(pf.home)
    with pf.db.read() as session:
        result = check(_db_entries(session), _db_checkpoints(session), head, verifier)
    record(
        pf,
        actor=by.actor,
        action="audit.verify",
        target="audit",
        details={"entries": result.entries, "problems": len(result.problems)},
    )
    return result


def _home_verifier(pf: Platform) -> keys.Verifier:
    if keys.signing_key_exists(pf.home):
        return keys.load_signer(pf.home).verifier
    if (keys.key_dir(pf.home) / keys.PUBLIC_FILE).exists():
        return keys.home_verifier(pf.home)  # an auditor's copy of a home: public key only
    return ensure_signing_key(pf)  # a new trail: its key is made now


def entries(pf: Platform, by: Principal, *, after: int = 0, limit: int = 100) -> list[Entry]:
    """A page of the trail, for auditors."""
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise PlatformInputError("after must be a whole number of 0 or more")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise PlatformInputError("limit must be a whole number from 1 to 1000")
    authorize(pf, "audit.read", by, None, target="audit")
    with pf.db.read() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(limit)
        )
        return [Entry.of(r) for r in rows]


# --- export for auditors ---------------------------------------------------------------

ENTRIES_FILE = "audit.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"
PUBLIC_KEY_FILE = "public-key.pem"
MANIFEST_FILE = "manifest.json"


@dataclasses.dataclass(frozen=True)
class Export:
    folder: Path
    entries: int
    checkpoints: int
    key_id: str


def export(pf: Platform, by: Principal, out: Path) -> Export:
    """Write the trail, its checkpoints, the signed head and the public key into ``out``
    (a new folder), for verification anywhere with :func:`verify_export`."""
    if not isinstance(out, Path):
        raise PlatformInputError("the export folder must be a path")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConflictError(f"{out} exists and is not an empty folder", hint="Choose a new folder.")
    authorize(pf, "audit.read", by, None, target="audit")
    verifier = _home_verifier(pf)
    head = read_head(pf.home)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        count, cps = _write_export(pf, staging, verifier, head)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    record(pf, actor=by.actor, action="audit.export", target="audit", details={"entries": count})
    return Export(out, count, cps, verifier.key_id)


def _write_export(
    pf: Platform, folder: Path, verifier: keys.Verifier, head: Checkpoint | None
) -> tuple[int, int]:
    count = 0
    # One read transaction: the entries and checkpoints written are one consistent state.
    with pf.db.read() as session, open(folder / ENTRIES_FILE, "w", encoding="utf-8") as out:
        if is_postgres(session.get_bind()):
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        for entry in _db_entries(session):
            out.write(json.dumps(entry.as_json(), ensure_ascii=False) + "\n")
            count += 1
        checkpoints = _db_checkpoints(session)
    with open(folder / CHECKPOINTS_FILE, "w", encoding="utf-8") as cp_out:
        for cp in checkpoints:
            cp_out.write(json.dumps(dataclasses.asdict(cp)) + "\n")
    if head is not None:
        (folder / HEAD_FILE).write_text(json.dumps(dataclasses.asdict(head)), encoding="utf-8")
    (folder / PUBLIC_KEY_FILE).write_bytes(verifier.pem())
    manifest = {"entries": count, "checkpoints": len(checkpoints), "key_id": verifier.key_id}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return count, len(checkpoints)


def _export_entries(path: Path, problems: list[Problem]) -> Iterator[Entry]:
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            try:
                raw = json.loads(line)
                raw["details"] = canonical(raw["details"]).decode()
                yield Entry(**raw)
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(Problem("malformed", None, f"{path.name} line {line_no}: {exc}"))


def verify_export(folder: Path, public_key: Path) -> Verification:
    """Verify an export offline with the public key the auditor holds (not the export's own
    copy, which whoever made the export could have replaced)."""
    verifier = keys.load_verifier(public_key)
    try:
        cps = [
            _checkpoint_from(json.loads(line))
            for line in (folder / CHECKPOINTS_FILE).read_text(encoding="utf-8").splitlines()
        ]
        head_path = folder / HEAD_FILE
        head = _checkpoint_from(json.loads(head_path.read_text())) if head_path.exists() else None
        malformed: list[Problem] = []
        result = check(_export_entries(folder / ENTRIES_FILE, malformed), cps, head, verifier)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuditIntegrityError(f"the export in {folder} is unreadable: {exc}") from exc
    return dataclasses.replace(result, problems=tuple(malformed) + result.problems)
