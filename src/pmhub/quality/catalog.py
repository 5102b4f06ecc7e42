"""What the CDW holds: every column and its type in one catalog query, and which columns
hold another type than the CDM's (so that checks reading them report it instead of failing).

One query, not one per table: a catalog look-up costs tens of milliseconds on DuckDB, and a
quality run would otherwise spend more time on them than on a small CDW's data.
"""

from __future__ import annotations

from dataclasses import dataclass

from pmhub.cdm import spec
from pmhub.cdm.backends import Backend

# Database types that can hold each CDM datatype's values as they are.
_HOLDS = {
    "integer": ("integer", "bigint", "int", "smallint", "int4", "int8", "hugeint"),
    "float": ("double", "double precision", "float", "numeric", "real", "decimal"),
    "date": ("date",),
    "datetime": ("timestamp", "timestamp without time zone", "datetime"),
    "varchar": ("varchar", "character varying", "text", "character"),
}


@dataclass(frozen=True)
class Catalog:
    columns: dict[str, dict[str, str]]  # table → column → database type (lower case)

    def present(self, table: str) -> set[str]:
        return set(self.columns.get(table, {}))

    def incompatible(self) -> frozenset[tuple[str, str]]:
        """(table, column) pairs whose database type cannot hold the CDM datatype."""
        odd = set()
        for table in spec.tables().values():
            for f in table.fields:
                actual = self.columns.get(table.name, {}).get(f.name)
                if actual is not None and actual.split("(")[0].strip() not in _HOLDS[f.datatype]:
                    odd.add((table.name, f.name))
        return frozenset(odd)


def read_catalog(backend: Backend) -> Catalog:
    rows = backend.fetchall(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_catalog = current_database()"
    )
    columns: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        columns.setdefault(str(table).lower(), {})[str(column).lower()] = str(kind).lower()
    return Catalog(columns)
