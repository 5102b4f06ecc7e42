"""The application event store on both backends: ordered, append-only, first writer wins."""

from __future__ import annotations

import datetime as dt
import multiprocessing

import pytest
from sqlalchemy import select

from pmhub.platform import events, projects, users
from pmhub.platform.errors import ConflictError, NotFoundError, PlatformInputError
from pmhub.platform.models import Application
from tests.platform import workers
from tests.platform.backends import (
    START,
    PlatformFixtures,
    PostgresState,
    SqliteState,
    as_operator,
    snapshot,
)

OP = as_operator()


def event(kind: str = "edited", n: int = 0, **extra) -> events.NewEvent:
    fields = {"kind": kind, "actor": "user:kim", "at": START, "payload": {"n": n}, **extra}
    return events.NewEvent(**fields)


class EventSuite(PlatformFixtures):
    @pytest.fixture
    def app_id(self, pf) -> int:
        users.create_user(pf, OP, "kim")
        projects.create_project(pf, OP, "proj-a", "A")
        with pf.db.read() as s:
            kim = users.find_user(s, "kim").id
        with pf.db.write() as s:
            first = events.start(
                s, project_id="proj-a", applicant_id=kim, state="draft", first=event("drafted")
            )
        return first.application_id

    def test_events_come_back_in_order_with_their_payloads(self, pf, app_id):
        with pf.db.write() as s:
            events.append(s, app_id, expected_seq=2, event=event(n=1), state="draft")
            events.append(
                s,
                app_id,
                expected_seq=3,
                event=event("submitted", reason="ready"),
                state="submitted",
            )
        found = events.events(pf, app_id)
        assert [(e.seq, e.kind, e.payload, e.reason) for e in found] == [
            (1, "drafted", {"n": 0}, None),
            (2, "edited", {"n": 1}, None),
            (3, "submitted", {"n": 0}, "ready"),
        ]
        assert found[0].at == START
        with pf.db.read() as s:
            app = s.get_one(Application, app_id)
            assert (app.state, app.last_seq) == ("submitted", 3)

    def test_a_step_made_on_a_stale_state_is_refused_and_writes_nothing(self, pf, app_id):
        with pf.db.write() as s:
            events.append(s, app_id, expected_seq=2, event=event(n=1), state="draft")
        before = snapshot(pf)
        for stale in (2, 1, 4):
            with pytest.raises(ConflictError), pf.db.write() as s:
                events.append(s, app_id, expected_seq=stale, event=event(n=9), state="gone")
        assert snapshot(pf) == before

    @pytest.mark.parametrize(
        "bad",
        [
            {"payload": {"x": float("nan")}},
            {"payload": {"x": object()}},
            {"payload": ["not", "an", "object"]},
            {"payload": {"x": "y" * events.MAX_PAYLOAD_BYTES}},
            {"at": dt.datetime(2026, 1, 1)},
            {"kind": ""},
            {"kind": "k" * 41},
            {"reason": "r" * (events.MAX_REASON + 1)},
            {"actor": 5},
        ],
    )
    def test_a_malformed_event_is_refused_and_writes_nothing(self, pf, app_id, bad):
        before = snapshot(pf)
        with pytest.raises(PlatformInputError), pf.db.write() as s:
            events.append(s, app_id, expected_seq=2, event=event(**bad), state="draft")
        assert snapshot(pf) == before

    def test_unknown_applications_projects_and_users_are_not_found(self, pf, app_id):
        with pytest.raises(NotFoundError), pf.db.write() as s:
            events.append(s, app_id + 1, expected_seq=1, event=event(), state="x")
        with pytest.raises(NotFoundError), pf.db.write() as s:
            events.start(s, project_id="proj-z", applicant_id=1, state="draft", first=event())
        with pytest.raises(NotFoundError):
            events.events(pf, app_id + 1)
        with pf.db.read() as s:
            assert s.scalars(select(Application.id)).all() == [app_id]

    def test_two_processes_acting_at_once_lose_no_step_and_repeat_no_seq(self, pf, url, app_id):
        spawn = multiprocessing.get_context("spawn")
        procs = [
            spawn.Process(
                target=workers.act_on_application, args=(url, str(pf.home), who, app_id, 15)
            )
            for who in ("a", "b")
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0]
        found = events.events(pf, app_id)
        assert [e.seq for e in found] == list(range(1, 32))
        by = [e.actor for e in found[1:]]
        assert (by.count("user:a"), by.count("user:b")) == (15, 15)


class TestEventsSqlite(EventSuite, SqliteState):
    pass


class TestEventsPostgres(EventSuite, PostgresState):
    pass
