"""The audit trail on both backends: appends, checkpoints, export, and the attacks on it.

Each attack is made as an attacker who owns the database would: drop the append-only
triggers, then change rows with SQL, in a naive form (rows changed, hashes left) and in a
careful form (the hash chain recomputed, since SHA-256 needs no key). The naive form is
caught at the entry; the careful one at the first signed checkpoint after it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import multiprocessing
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pmhub.platform import audit, keys, users
from pmhub.platform.errors import AuditIntegrityError, AuditKeyError, Forbidden, PlatformInputError
from pmhub.platform.migrations.append_only import allow_changes
from pmhub.platform.models import AuditCheckpoint, AuditEntry
from tests.platform import workers
from tests.platform.backends import (
    PlatformFixtures,
    PostgresState,
    SqliteState,
    as_operator,
    snapshot,
)

OP = as_operator()
N = 12  # entries made before an attack; the fixture checkpoints every 5 (at 5 and 10)
CUT_AFTER_7 = (
    "DELETE FROM audit_entries WHERE seq > 7",
    "DELETE FROM audit_checkpoints WHERE seq > 7",
)


def fill(pf, n: int = N) -> None:
    for i in range(1, n + 1):
        audit.record(
            pf, actor="user:t", action="test.action", target=f"thing:{i}", details={"count": i}
        )


def sql(pf, *statements: str) -> None:
    """Run SQL as the attacker: the append-only triggers go first."""
    with pf.db.engine.begin() as con:
        allow_changes(con, ("audit_entries", "audit_checkpoints"))
        for statement in statements:
            con.exec_driver_sql(statement)


def rewrite(pf, change: Callable[[list[audit.Entry]], list[audit.Entry]]) -> None:
    """The careful attacker: change the entries, renumber them and recompute every hash."""
    with Session(pf.db.engine) as s:
        old = [audit.Entry.of(r) for r in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
    prev, new = audit.GENESIS, []
    for seq, entry in enumerate(change(old), start=1):
        entry = dataclasses.replace(entry, seq=seq, prev_hash=prev)
        entry = dataclasses.replace(entry, hash=entry.computed_hash())
        new.append(entry)
        prev = entry.hash
    sql(pf)
    with Session(pf.db.engine) as s, s.begin():
        s.execute(delete(AuditEntry))
        for e in new:
            at = dt.datetime.strptime(e.at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
            s.add(AuditEntry(**{**dataclasses.asdict(e), "at": at}))


def first_problem(result: audit.Verification) -> tuple[str, int | None]:
    assert not result.ok
    return result.problems[0].kind, result.problems[0].seq


def swap(entries: list[audit.Entry], i: int, j: int) -> list[audit.Entry]:
    entries = list(entries)
    entries[i], entries[j] = entries[j], entries[i]
    return entries


def forged(after: audit.Entry) -> audit.Entry:
    return dataclasses.replace(after, target="thing:forged", details='{"count":99}')


def insert_forged_at_3(pf) -> None:
    with Session(pf.db.engine) as s:
        before = audit.Entry.of(s.get_one(AuditEntry, 2))
    sql(pf, "UPDATE audit_entries SET seq = seq + 1000 WHERE seq >= 3")
    sql(pf, "UPDATE audit_entries SET seq = seq - 999 WHERE seq > 1000")
    fake = dataclasses.replace(forged(before), seq=3, prev_hash=before.hash)
    fake = dataclasses.replace(fake, hash=fake.computed_hash())
    at = dt.datetime.strptime(fake.at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    with Session(pf.db.engine) as s, s.begin():
        s.add(AuditEntry(**{**dataclasses.asdict(fake), "at": at}))


def swap_rows_3_and_4(pf) -> None:
    sql(
        pf,
        "UPDATE audit_entries SET seq = 1003 WHERE seq = 3",
        "UPDATE audit_entries SET seq = 3 WHERE seq = 4",
        "UPDATE audit_entries SET seq = 4 WHERE seq = 1003",
    )


ATTACKS: dict[str, tuple[Callable[..., None], tuple[str, int | None]]] = {
    "modified": (
        lambda pf: sql(pf, """UPDATE audit_entries SET details = '{"count":300}' WHERE seq = 3"""),
        ("altered", 3),
    ),
    "modified, chain recomputed": (
        lambda pf: rewrite(pf, lambda es: [*es[:2], forged(es[2]), *es[3:]]),
        ("rewritten", 5),
    ),
    "deleted": (lambda pf: sql(pf, "DELETE FROM audit_entries WHERE seq = 3"), ("missing", 3)),
    "deleted, renumbered, chain recomputed": (
        lambda pf: rewrite(pf, lambda es: es[:2] + es[3:]),
        ("rewritten", 5),
    ),
    # The forged entry fits the chain; the entry pushed down from 3 to 4 does not.
    "inserted": (insert_forged_at_3, ("altered", 4)),
    "inserted, chain recomputed": (
        lambda pf: rewrite(pf, lambda es: [*es[:2], forged(es[2]), *es[2:]]),
        ("rewritten", 5),
    ),
    "reordered": (swap_rows_3_and_4, ("altered", 3)),
    "reordered, chain recomputed": (
        lambda pf: rewrite(pf, lambda es: swap(es, 2, 3)),
        ("rewritten", 5),
    ),
    "truncated with its checkpoints": (
        lambda pf: sql(
            pf,
            "DELETE FROM audit_entries WHERE seq > 7",
            "DELETE FROM audit_checkpoints WHERE seq > 7",
        ),
        ("truncated", 8),
    ),
    "truncated, checkpoints left": (
        lambda pf: sql(pf, "DELETE FROM audit_entries WHERE seq > 7"),
        ("truncated", 8),
    ),
    "checkpoint signature forged": (
        lambda pf: sql(pf, f"UPDATE audit_checkpoints SET signature = '{'ab' * 64}' WHERE seq = 5"),
        ("bad_signature", 5),
    ),
}


class AuditSuite(PlatformFixtures):
    def test_a_trail_is_chained_checkpointed_every_n_and_verifies(self, pf):
        fill(pf)
        with pf.db.read() as s:
            rows = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
            cps = s.scalars(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)).all()
        assert [r.seq for r in rows] == list(range(1, N + 1))
        assert all(r.prev_hash == p.hash for p, r in itertools.pairwise(rows))
        head = audit.read_head(pf.home)
        assert (cps, head.seq if head else None) == ([5, 10], 10)
        result = audit.verify(pf, OP)
        assert (result.ok, result.entries, result.checkpoints, result.head_seq) == (True, N, 2, 10)

    def test_a_checkpoint_on_demand_signs_the_head_and_moves_the_head_file(self, pf):
        fill(pf, 3)
        cp = audit.checkpoint(pf, OP)
        assert (cp.seq, audit.read_head(pf.home)) == (4, cp)
        assert audit.verify(pf, OP).ok

    @pytest.mark.parametrize("attack", list(ATTACKS))
    def test_each_attack_is_detected_at_the_entry_where_it_shows(self, pf, attack):
        fill(pf)
        make, expected = ATTACKS[attack]
        make(pf)
        result = audit.verify(pf, OP)
        assert first_problem(result) == expected, result.problems
        with pytest.raises(AuditIntegrityError, match=re.escape(result.problems[0].message)):
            result.raise_if_broken()

    def test_a_cut_off_tail_with_the_head_file_removed_still_shows(self, pf):
        fill(pf)
        sql(
            pf,
            "DELETE FROM audit_entries WHERE seq > 7",
            "DELETE FROM audit_checkpoints WHERE seq > 7",
        )
        (pf.home / audit.HEAD_FILE).unlink()
        assert first_problem(audit.verify(pf, OP)) == ("head_missing", None)

    def test_an_export_verifies_offline_with_the_public_key_only(self, pf, tmp_path):
        fill(pf)
        out = audit.export(pf, OP, tmp_path / "export")
        assert (out.entries, out.checkpoints) == (N, 2)
        public = tmp_path / "auditor.pem"
        public.write_bytes((pf.home / keys.KEY_DIR / keys.PUBLIC_FILE).read_bytes())
        assert audit.verify_export(out.folder, public).ok
        lines = (out.folder / audit.ENTRIES_FILE).read_text().splitlines()
        assert json.loads(lines[0])["details"] == {"count": 1}

    def test_a_changed_export_or_a_wrong_key_fails_verification(self, pf, tmp_path):
        fill(pf)
        out = audit.export(pf, OP, tmp_path / "export").folder
        public = pf.home / keys.KEY_DIR / keys.PUBLIC_FILE
        path = out / audit.ENTRIES_FILE
        lines = path.read_text().splitlines()
        changed = json.loads(lines[1])
        changed["actor"] = "user:someone-else"
        path.write_text("\n".join([lines[0], json.dumps(changed), *lines[2:]]) + "\n")
        assert first_problem(audit.verify_export(out, public)) == ("altered", 2)
        other = tmp_path / "other"
        keys.create_signing_key(other)
        wrong = audit.verify_export(out, other / keys.KEY_DIR / keys.PUBLIC_FILE)
        assert "bad_signature" in {p.kind for p in wrong.problems}

    def test_an_export_never_overwrites(self, pf, tmp_path):
        fill(pf, 2)
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("keep")
        with pytest.raises(Exception, match="not an empty folder"):
            audit.export(pf, OP, tmp_path / "full")
        assert [p.name for p in (tmp_path / "full").iterdir()] == ["x"]

    def test_only_auditors_and_admins_read_the_trail_and_a_refusal_is_recorded(self, pf):
        users.create_user(pf, OP, "nosy")
        with pf.db.read() as s:
            nosy = users.principal_of(s, users.find_user(s, "nosy"))
        with pytest.raises(Forbidden):
            audit.verify(pf, nosy)
        last = audit.entries(pf, OP, after=0, limit=1000)[-1]
        assert (last.actor, last.action, last.outcome) == ("user:nosy", "audit.read", "denied")

    def test_details_outside_the_allow_list_are_refused_and_nothing_is_appended(self, pf):
        fill(pf, 1)
        before = snapshot(pf)
        for details in (
            {"birth_date": "1950-01-01"},
            {"count": "12"},
            {"count": True},
            {"reason": "token pmh_" + "x" * 40},
            {"reason": "$argon2id$v=19$m=65536"},
            {"reason": "x" * (audit.MAX_REASON + 1)},
            {"flags": ["a"] * (audit.MAX_LIST + 1)},
            {"flags": [1, 2]},
        ):
            with pytest.raises(PlatformInputError):
                audit.record(pf, actor="user:t", action="x", target="y", details=details)
        for field in ({"actor": ""}, {"action": "a" * 61}, {"target": 5}, {"outcome": "maybe"}):
            kwargs: dict[str, Any] = {"actor": "user:t", "action": "x", "target": "y", **field}
            with pytest.raises(PlatformInputError):
                audit.record(pf, **kwargs)
        assert snapshot(pf) == before

    def test_a_key_readable_by_others_is_refused(self, pf):
        fill(pf, 4)
        os.chmod(pf.home / keys.KEY_DIR / keys.PRIVATE_FILE, 0o644)
        with pytest.raises(AuditKeyError, match="readable by others"):
            audit.record(pf, actor="user:t", action="x", target="y")  # the 5th: a checkpoint
        assert len(audit.entries(pf, OP, limit=1000)) == 4

    def test_a_lost_key_is_not_silently_replaced(self, pf):
        fill(pf, 5)
        (pf.home / keys.KEY_DIR / keys.PRIVATE_FILE).unlink()
        fill(pf, 4)
        with pytest.raises(AuditKeyError, match="missing"):
            audit.checkpoint(pf, OP)

    def test_the_key_is_a_file_in_the_home_readable_by_its_owner_only(self, pf):
        fill(pf, 5)
        key = pf.home / keys.KEY_DIR / keys.PRIVATE_FILE
        assert (key.stat().st_mode & 0o777, (key.parent.stat().st_mode & 0o777)) == (0o600, 0o700)
        assert key.read_bytes().decode() not in str(snapshot(pf))

    def test_two_processes_appending_at_once_make_one_unbroken_chain(self, pf, url):
        spawn = multiprocessing.get_context("spawn")
        per_process = 40
        procs = [
            spawn.Process(target=workers.append_entries, args=(url, str(pf.home), who, per_process))
            for who in ("a", "b")
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0]
        result = audit.verify(pf, OP)
        assert (result.ok, result.entries) == (True, 2 * per_process), result.problems
        actors = {e.actor for e in audit.entries(pf, OP, limit=1000)}
        assert {"user:a", "user:b"} <= actors
        head = audit.read_head(pf.home)
        assert head is not None
        assert head.seq == (2 * per_process // 7) * 7

    def test_an_append_outside_a_write_transaction_is_refused(self, pf):
        with pf.db.read() as s, pytest.raises(RuntimeError, match="write"):
            audit.append(pf, s, actor="user:t", action="x", target="y")

    def test_a_broken_export_is_an_integrity_error_or_a_named_malformed_line(self, pf, tmp_path):
        fill(pf, 3)
        out = audit.export(pf, OP, tmp_path / "export").folder
        public = pf.home / keys.KEY_DIR / keys.PUBLIC_FILE
        with open(out / audit.ENTRIES_FILE, "a") as handle:
            handle.write("{not json\n")
        assert first_problem(audit.verify_export(out, public)) == ("malformed", None)
        (out / audit.CHECKPOINTS_FILE).unlink()
        with pytest.raises(AuditIntegrityError, match="unreadable"):
            audit.verify_export(out, public)
        with pytest.raises(AuditKeyError):
            audit.verify_export(out, tmp_path / "no-such-key.pem")


class TestAuditSqlite(AuditSuite, SqliteState):
    pass


class TestAuditPostgres(AuditSuite, PostgresState):
    pass


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=20), st.integers() | st.text(max_size=10), min_size=1
    )
)
def test_any_key_not_on_the_allow_list_is_refused(details):
    if set(details) <= set(audit.DETAIL_KEYS):
        return
    with pytest.raises(PlatformInputError, match="not an allowed key"):
        audit.clean_details(details)


@given(
    st.sampled_from(sorted(audit.DETAIL_KEYS)), st.floats() | st.dictionaries(st.text(), st.text())
)
def test_floats_and_nested_values_are_refused_under_every_key(key, value):
    with pytest.raises(PlatformInputError):
        audit.clean_details({key: value})


def test_the_hash_covers_every_field():
    base = audit.Entry(
        1, "2026-01-01T00:00:00.000000Z", "a", "b", "c", "allowed", "{}", audit.GENESIS, ""
    )
    digests = {base.computed_hash()}
    changes: tuple[tuple[str, Any], ...] = (
        ("seq", 2),
        ("at", "2026-01-01T00:00:00.000001Z"),
        ("actor", "a2"),
        ("action", "b2"),
        ("target", "c2"),
        ("outcome", "denied"),
        ("details", '{"count":1}'),
        ("prev_hash", "1" * 64),
    )
    for field, value in changes:
        digests.add(dataclasses.replace(base, **{field: value}).computed_hash())
    assert len(digests) == 9


def test_unreadable_head_file_is_an_integrity_error(tmp_path: Path):
    (tmp_path / audit.HEAD_FILE).write_text("{not json")
    with pytest.raises(AuditIntegrityError):
        audit.read_head(tmp_path)
