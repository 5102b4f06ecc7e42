"""What one load reads: its source files, how they were staged, what it ignores."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pmhub.ingest.files import SourceFile, sha256_of
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
    # FHIR: rows per stage table (one per resource type) as [loaded, quarantined]
    stage_rows: dict[str, list[int]] = field(default_factory=dict)
    load_id: int = 0  # set when the load begins

    def key(self) -> str:
        """The load's identity: the format and every input file's name and checksum."""
        return self._key(lambda source: source.checksum)

    def legacy_key(self) -> str:
        """The key loads had before checksums were BLAKE3: built on each file's SHA-256
        (computed here, a pass over every file)."""
        return self._key(lambda source: sha256_of(source.path))

    def _key(self, checksum: Callable[[SourceFile], str]) -> str:
        digest = hashlib.sha256(self.fmt.encode())
        for source in sorted(self.sources.values(), key=lambda s: s.name):
            line = f"\n{source.name}\t{checksum(source)}\t{source.encoding}"
            digest.update(line.encode())
        return digest.hexdigest()

    def file_names(self) -> dict[str, str]:
        return {name: source.name for name, source in self.sources.items()}
