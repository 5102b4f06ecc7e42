"""Run one import and say each step on stdout, for the kill test: python kill_worker.py
URL SCHEMA FORMAT PATH."""

from __future__ import annotations

import sys
from pathlib import Path

from pmhub.cdm.backends import connect
from pmhub.ingest import ingest


def main(url: str, schema: str, fmt: str, path: str) -> None:
    backend = connect(url, schema=schema)

    def say(message: str) -> None:
        print(message, flush=True)

    report = ingest(backend, fmt, Path(path), progress=say)
    print(f"done resumed={report.resumed}", flush=True)
    backend.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
