"""What one load reads: its source files, how they were staged, what it ignores."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pmhub.ingest.files import SourceFile
from pmhub.ingest.stage import Staged


@dataclass
class Plan:
    fmt: str
    root: Path
    sources: dict[str, SourceFile] = field(default_factory=dict)  # stage name → file
    ignored: dict[str, str] = field(default_factory=dict)  # file name → why
    staged: dict[str, Staged] = field(default_factory=dict)
    delimiters: dict[str, str] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)  # stage tables the input filled
    load_id: int = 0  # set when the load begins

    def key(self) -> str:
        """The load's identity: the format and every input file's name and checksum."""
        digest = hashlib.sha256(self.fmt.encode())
        for source in sorted(self.sources.values(), key=lambda s: s.name):
            digest.update(f"\n{source.name}\t{source.sha256}\t{source.encoding}".encode())
        return digest.hexdigest()

    def file_names(self) -> dict[str, str]:
        return {name: source.name for name, source in self.sources.items()}
