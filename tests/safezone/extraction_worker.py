"""Run one site's extraction and say each step on stdout, for the kill test:
python extraction_worker.py EVENTS.jsonl CDW_URL OUT SCRATCH KEY_HEX STOP_AT.

At the step STOP_AT the worker says so and waits, so that the test kills it there.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pmhub.privacy.keys import ProjectKey
from pmhub.safezone import application as app
from pmhub.safezone import extraction
from pmhub.sites import Site


def main(events: str, url: str, out: str, scratch: str, key: str, stop_at: str) -> None:
    lines = Path(events).read_text(encoding="utf-8").splitlines()
    state = app.replay(app.Event.from_json(line) for line in lines)
    site = Site(name=state.body.sites[0], cdw_url=url)

    def say(step: str, done: int, total: int) -> None:
        print(step, flush=True)
        if step == stop_at:
            time.sleep(600)

    extraction.extract_site(
        state,
        site,
        Path(out),
        say,
        key=ProjectKey(state.id, bytes.fromhex(key)),
        scratch=Path(scratch),
    )
    print("finished", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:7])
