"""Code run in child processes by the concurrency tests (importable under spawn)."""

from __future__ import annotations

import os

from pmhub.platform import audit
from pmhub.platform.core import open_platform
from pmhub.settings import load_settings


def append_entries(url: str, home: str, name: str, count: int) -> None:
    os.environ["PMHUB_HOME"] = home
    pf = open_platform(load_settings(), url=url, checkpoint_every=7)
    try:
        for i in range(count):
            audit.record(pf, actor=f"user:{name}", action="test.append", target=f"n:{i}")
    finally:
        pf.close()


def act_on_application(url: str, home: str, name: str, application_id: int, count: int) -> None:
    """Append ``count`` events, each on the state as last read, retrying when beaten."""
    import datetime as dt

    from pmhub.platform import events
    from pmhub.platform.errors import ConflictError

    os.environ["PMHUB_HOME"] = home
    pf = open_platform(load_settings(), url=url)
    try:
        done = 0
        while done < count:
            seen = len(events.events(pf, application_id))
            event = events.NewEvent("noted", f"user:{name}", dt.datetime.now(dt.UTC), {"n": done})
            try:
                with pf.db.write() as session:
                    events.append(
                        session, application_id, expected_seq=seen + 1, event=event, state="x"
                    )
                done += 1
            except ConflictError:
                continue
    finally:
        pf.close()
