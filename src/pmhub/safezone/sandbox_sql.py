"""The first wall of a workspace: which SQL may run at all, decided before any of it runs.

The check reads DuckDB's own parse tree (``extract_statements`` for the statement type,
``json_serialize_sql`` for the tree) rather than a second parser such as sqlglot: a check
that parses differently from the engine that runs the query is a way around the check.
Parsing is all that happens here; the query text is bound as a parameter, never executed.

What passes: exactly one SELECT (WITH, VALUES, FROM-first, DESCRIBE and SUMMARIZE parse as
SELECT) that reads only the workspace's tables, its own CTEs and a few table functions
that make rows from values. What is refused, with the rule that refused it: any other
statement (ATTACH, COPY, EXPORT, INSTALL, LOAD, PRAGMA, SET, CALL, CREATE, INSERT, …),
table functions that read files or the engine's state, functions that read the host's
environment or the settings, file paths and other catalogs as tables, and SQL that is not
UTF-8, holds a NUL byte, or is longer than the limit.

The second wall is the worker's DuckDB configuration (``sandbox_worker.py``); each wall is
tested on its own.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Collection, Iterator
from typing import Any

import duckdb

from pmhub.safezone.errors import QueryError, SqlRefusedError

WORKSPACE_CATALOG = "data"  # DuckDB names the attached file's catalog after its stem

# Table functions that only turn values into rows; every other one is refused, since most
# of DuckDB's read files (read_*, glob, sniff_csv, parquet_*), show its state (duckdb_*,
# pragma_*) or run SQL hidden in a string (query, query_table, json_execute_serialized_sql).
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {"range", "generate_series", "unnest", "json_each", "json_tree"}
)

# Scalar functions that reach outside the query's own rows.
REFUSED_FUNCTIONS: dict[str, str] = {
    "getenv": "reads the host's environment variables",
    "current_setting": "reads the engine's settings (paths, limits)",
    "getvariable": "reads session variables, which a workspace does not have",
    "write_log": "writes to the engine's log",
    "sleep_ms": "only holds a query worker",
    "pg_sleep": "only holds a query worker",
    "parse_duckdb_log_message": "reads the engine's log",
    "json_execute_serialized_sql": "runs SQL hidden in a value",
    "query": "runs SQL hidden in a string",
    "query_table": "reads a table named in a string",
    "which_secret": "reads the engine's secrets",
}
REFUSED_PREFIXES: dict[str, str] = {
    "duckdb_": "shows the engine's settings and state",
    "pragma_": "shows the engine's settings and state",
    "__internal": "is internal to the engine",
}

ALLOWED_SCHEMA_TABLES = frozenset(
    {("information_schema", "tables"), ("information_schema", "columns")}
)
SYSTEM_TABLE_PREFIXES = ("duckdb_", "pragma_", "sqlite_", "pg_")
ALLOWED_SHOW_TYPES = frozenset({"DESCRIBE", "SUMMARY", "SHOW"})
FILE_MARKS = ("/", "\\", ":", ".", "~")


@dataclasses.dataclass(frozen=True)
class CheckedSql:
    """One statement that passed the check, and the workspace tables it reads."""

    sql: str
    tables: frozenset[str]


_parsers = threading.local()
_parser_lock = threading.Lock()
_parser_db: duckdb.DuckDBPyConnection | None = None


def _parser() -> duckdb.DuckDBPyConnection:
    """A per-thread cursor on one in-memory DuckDB that only parses.

    One database for all threads: opening a database per thread costs tens of ms, paid by
    the first query of every new server thread; a cursor is cheap, and a connection (unlike
    a cursor) is not to be shared between threads."""
    global _parser_db
    cursor: duckdb.DuckDBPyConnection | None = getattr(_parsers, "cursor", None)
    if cursor is None:
        with _parser_lock:
            if _parser_db is None:
                _parser_db = duckdb.connect(
                    config={"enable_external_access": False, "autoload_known_extensions": False}
                )
            cursor = _parser_db.cursor()
        _parsers.cursor = cursor
    return cursor


def check_sql(sql: str | bytes, tables: Collection[str], *, max_bytes: int) -> CheckedSql:
    """Refuse ``sql`` unless it is one read-only SELECT over ``tables``; else say why."""
    text = _text_of(sql, max_bytes)
    statement = _one_select(text)
    tree = _parse_tree(statement)
    read = _check_tree(tree, {t.lower() for t in tables})
    return CheckedSql(statement, frozenset(read))


def _text_of(sql: str | bytes, max_bytes: int) -> str:
    if isinstance(sql, bytes):
        try:
            sql = sql.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SqlRefusedError(
                f"the SQL is not UTF-8 text (byte {exc.start} is not valid UTF-8)",
                rule="encoding",
            ) from exc
    try:
        size = len(sql.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from a JSON "\ud800"
        raise SqlRefusedError(
            f"the SQL holds a character that is not valid Unicode (at {exc.start})",
            rule="encoding",
        ) from exc
    if "\x00" in sql:
        raise SqlRefusedError(
            f"the SQL holds a NUL byte (at character {sql.index(chr(0))})", rule="nul-byte"
        )
    if size > max_bytes:
        raise SqlRefusedError(
            f"the SQL is {size:,} bytes; a workspace query may be at most {max_bytes:,}",
            rule="size",
        )
    if not sql.strip():
        raise SqlRefusedError("the SQL is empty", rule="empty")
    return sql


def _one_select(text: str) -> str:
    try:
        statements = _parser().extract_statements(text)
    except duckdb.Error as exc:
        raise QueryError(f"DuckDB cannot parse the SQL: {_first_line(exc)}") from exc
    if len(statements) != 1:
        raise SqlRefusedError(
            f"the SQL holds {len(statements)} statements; a workspace query is exactly one",
            rule="statements",
        )
    statement = statements[0]
    kind = str(statement.type).rsplit(".", 1)[-1]
    if kind != "SELECT":
        raise SqlRefusedError(
            f"{kind} statements are refused: a workspace only reads, with one SELECT",
            rule=f"statement:{kind.lower()}",
        )
    return str(statement.query)


def _parse_tree(statement: str) -> dict[str, Any]:
    rows = _parser().execute("SELECT json_serialize_sql($1::VARCHAR)", [statement]).fetchall()
    try:
        tree: dict[str, Any] = json.loads(rows[0][0])
    except RecursionError as exc:
        raise SqlRefusedError("the SQL is nested too deeply to check", rule="nesting") from exc
    if tree.get("error"):
        message = str(tree.get("error_message", "unknown parser error"))
        if "Only SELECT" in message:
            raise SqlRefusedError(
                "this form of SELECT (e.g. a PIVOT statement in a subquery) cannot be checked;"
                " write it with PIVOT inside FROM (SELECT … FROM t PIVOT (…))",
                rule="uncheckable",
            )
        raise QueryError(f"DuckDB cannot parse the SQL: {message}")
    return tree


def _check_tree(tree: dict[str, Any], tables: set[str]) -> set[str]:
    read: set[str] = set()
    for node, scope, as_table_function in _walk(tree):
        kind = node.get("type")
        if as_table_function:
            _check_table_function(str(node.get("function_name", "")))
        elif "function_name" in node:
            _check_function(node)
        elif kind == "BASE_TABLE":
            name = _check_table(node, tables, scope)
            if name:
                read.add(name)
        elif kind == "SHOW_REF":
            _check_show(node, tables, scope)
    return read


Scope = frozenset[str]


def _walk(tree: dict[str, Any]) -> Iterator[tuple[dict[str, Any], Scope, bool]]:
    """Every dict of the tree with the CTE names in scope there; iterative (trees run deep)."""
    stack: list[tuple[Any, Scope, bool]] = [(tree, frozenset(), False)]
    while stack:
        item, scope, as_table_function = stack.pop()
        if isinstance(item, list):
            stack.extend((child, scope, False) for child in item)
            continue
        if not isinstance(item, dict):
            continue
        scope = scope | _cte_names(item)
        yield item, scope, as_table_function
        for key, child in item.items():
            is_call = item.get("type") == "TABLE_FUNCTION" and key == "function"
            stack.append((child, scope, is_call))


def _cte_names(node: dict[str, Any]) -> Scope:
    cte_map = node.get("cte_map")
    if not isinstance(cte_map, dict):
        return frozenset()
    return frozenset(str(entry.get("key", "")).lower() for entry in cte_map.get("map", []))


def _check_table_function(name: str) -> None:
    lowered = name.lower()
    if lowered in ALLOWED_TABLE_FUNCTIONS:
        return
    raise SqlRefusedError(
        f"the table function {name}() is refused: it {_table_function_reason(lowered)}",
        rule=f"table-function:{lowered}",
    )


def _table_function_reason(name: str) -> str:
    if name.startswith(("read_", "parquet_")) or name in {"glob", "sniff_csv", "parquet_scan"}:
        return "reads files on the host"
    if name in REFUSED_FUNCTIONS:
        return REFUSED_FUNCTIONS[name]
    for prefix, reason in REFUSED_PREFIXES.items():
        if name.startswith(prefix):
            return reason
    allowed = ", ".join(sorted(ALLOWED_TABLE_FUNCTIONS))
    return f"is not one a workspace allows ({allowed})"


def _check_function(node: dict[str, Any]) -> None:
    name = str(node.get("function_name", ""))
    lowered = name.lower()
    if node.get("schema") or node.get("catalog"):
        raise SqlRefusedError(
            f"the function {name}() is named with a schema or catalog; call it by name alone",
            rule="function:qualified",
        )
    reason = REFUSED_FUNCTIONS.get(lowered)
    if reason is None:
        reason = next((r for p, r in REFUSED_PREFIXES.items() if lowered.startswith(p)), None)
    if reason is not None:
        raise SqlRefusedError(
            f"the function {name}() is refused: it {reason}", rule=f"function:{lowered}"
        )


def _check_table(node: dict[str, Any], tables: set[str], scope: Scope) -> str | None:
    """The workspace table ``node`` reads (None for a CTE or a permitted catalog view)."""
    name = str(node.get("table_name", ""))
    lowered = name.lower()
    schema = str(node.get("schema_name", "")).lower()
    catalog = str(node.get("catalog_name", "")).lower()
    if not schema and not catalog and lowered in scope:
        return None
    if any(mark in name for mark in FILE_MARKS):
        raise SqlRefusedError(
            f"'{name}' names a file or a URL; a workspace query reads only its own tables",
            rule="file",
        )
    if catalog not in ("", WORKSPACE_CATALOG):
        raise SqlRefusedError(
            f"'{catalog}' names another database; a workspace query reads only its own",
            rule="catalog",
        )
    if (schema, lowered) in ALLOWED_SCHEMA_TABLES:
        return None
    if schema not in ("", "main") or lowered.startswith(SYSTEM_TABLE_PREFIXES):
        raise SqlRefusedError(
            f"'{'.'.join(p for p in (schema, name) if p)}' is one of the engine's own views; "
            "a workspace query reads only the workspace's tables",
            rule="system-table",
        )
    if lowered not in tables:
        listed = ", ".join(sorted(tables)) or "none yet"
        raise QueryError(
            f"the workspace has no table named '{name}' (its tables: {listed})",
        )
    return lowered


def _check_show(node: dict[str, Any], tables: set[str], scope: Scope) -> None:
    show_type = str(node.get("show_type", ""))
    if show_type not in ALLOWED_SHOW_TYPES:
        raise SqlRefusedError(
            "SHOW of the engine's catalogs is refused; list the workspace's tables instead",
            rule="show",
        )
    if node.get("table_name"):
        _check_table(node, tables, scope)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
