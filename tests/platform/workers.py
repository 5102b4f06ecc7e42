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
