"""The first wall on its own: the SQL check, with no worker and no database behind it."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.safezone.errors import QueryError, SqlRefusedError
from pmhub.safezone.sandbox_sql import check_sql

TABLES = {"person", "visit"}
LIMIT = 100_000


def check(sql: str | bytes) -> frozenset[str]:
    return check_sql(sql, TABLES, max_bytes=LIMIT).tables


@pytest.mark.parametrize(
    ("sql", "reads"),
    [
        ("SELECT * FROM person", {"person"}),
        ("select count(*) from PERSON p join Visit v using (person_pid)", {"person", "visit"}),
        ("WITH a AS (SELECT * FROM person) SELECT * FROM a", {"person"}),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) FROM r",
            set(),
        ),
        ("FROM person SELECT sex", {"person"}),
        ("SELECT * FROM data.main.person", {"person"}),
        ("SELECT * FROM main.visit", {"visit"}),
        ("DESCRIBE person", {"person"}),
        ("SUMMARIZE SELECT * FROM visit", {"visit"}),
        ("VALUES (1), (2)", set()),
        ("SELECT * FROM range(10) t(i) CROSS JOIN generate_series(1, 2)", set()),
        ("SELECT unnest([1, 2]), list_transform([1], x -> x + 1), upper('a')", set()),
        ("SELECT * FROM information_schema.tables", set()),
        ("SELECT sex, sum(cost) OVER (PARTITION BY sex) FROM person, visit", {"person", "visit"}),
        ("SELECT * FROM person PIVOT (count(*) FOR sex IN ('F', 'M'))", {"person"}),
        ("SELECT 1; ", set()),
        ("SELECT '/etc/passwd' AS just_text, 'read_csv(x)' AS more", set()),
    ],
)
def test_read_only_selects_pass(sql: str, reads: set[str]) -> None:
    assert check(sql) == reads


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("ATTACH 'other.duckdb' AS o", "statement:attach"),
        ("DETACH data", "statement:detach"),
        ("COPY person TO 'out.csv'", "statement:copy"),
        ("COPY person FROM '/etc/passwd'", "statement:copy"),
        ("EXPORT DATABASE 'out'", "statement:export"),
        ("IMPORT DATABASE 'in'", "statement:pragma"),
        ("INSTALL httpfs", "statement:load"),
        ("LOAD httpfs", "statement:load"),
        ("PRAGMA enable_profiling", "statement:pragma"),
        ("SET threads = 8", "statement:set"),
        ("RESET memory_limit", "statement:set"),
        ("SET VARIABLE x = 1", "statement:set"),
        ("USE memory", "statement:set"),
        ("CALL pragma_version()", "statement:call"),
        ("CHECKPOINT", "statement:call"),
        ("CREATE TABLE x AS SELECT 1", "statement:create"),
        ("CREATE TEMP TABLE x AS SELECT 1", "statement:create"),
        ("INSERT INTO person VALUES ('a', 'F', 1)", "statement:insert"),
        ("UPDATE person SET sex = 'F'", "statement:update"),
        ("DELETE FROM person", "statement:delete"),
        ("DROP TABLE person", "statement:drop"),
        ("EXPLAIN SELECT 1", "statement:explain"),
        ("BEGIN", "statement:transaction"),
        ("VACUUM", "statement:vacuum"),
        ("PIVOT person ON sex", "statement:multi"),
        ("SELECT 1; SELECT 2", "statements"),
        ("SELECT 1; DROP TABLE person", "statements"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table-function:read_csv"),
        ("SELECT * FROM read_csv_auto('x.csv')", "table-function:read_csv_auto"),
        ("SELECT * FROM read_parquet('x.parquet')", "table-function:read_parquet"),
        ("SELECT * FROM read_json('x.json')", "table-function:read_json"),
        ("SELECT * FROM read_text('/etc/hostname')", "table-function:read_text"),
        ("SELECT * FROM read_blob('/etc/hostname')", "table-function:read_blob"),
        ("SELECT * FROM glob('/*')", "table-function:glob"),
        ("SELECT * FROM sniff_csv('/etc/passwd')", "table-function:sniff_csv"),
        ("SELECT * FROM parquet_metadata('x.parquet')", "table-function:parquet_metadata"),
        ("SELECT * FROM duckdb_settings()", "table-function:duckdb_settings"),
        ("SELECT * FROM duckdb_databases()", "table-function:duckdb_databases"),
        ("SELECT * FROM duckdb_extensions()", "table-function:duckdb_extensions"),
        ("SELECT * FROM pragma_database_size()", "table-function:pragma_database_size"),
        ("SELECT * FROM query('ATTACH ''x''')", "table-function:query"),
        ("SELECT * FROM query_table('person')", "table-function:query_table"),
        (
            "SELECT * FROM json_execute_serialized_sql('{}')",
            "table-function:json_execute_serialized_sql",
        ),
        ("SELECT * FROM histogram(person, birth_year)", "table-function:histogram"),
        ("SELECT (SELECT count(*) FROM read_csv('/etc/passwd'))", "table-function:read_csv"),
        ("WITH x AS (SELECT * FROM glob('*')) SELECT * FROM x", "table-function:glob"),
        ("SELECT getenv('HOME')", "function:getenv"),
        ("SELECT current_setting('temp_directory')", "function:current_setting"),
        ("SELECT getvariable('x')", "function:getvariable"),
        ("SELECT sleep_ms(100000)", "function:sleep_ms"),
        ("SELECT write_log('x')", "function:write_log"),
        ("SELECT 'HOME'.getenv()", "function:getenv"),
        ("SELECT system.main.upper('a')", "function:qualified"),
        ("SELECT * FROM '/etc/passwd'", "file"),
        ("SELECT * FROM 'https://example.org/x.csv'", "file"),
        ('SELECT * FROM "../p2/data.duckdb"', "file"),
        ("SELECT * FROM p2.main.person", "catalog"),
        ("SELECT * FROM system.main.duckdb_settings", "catalog"),
        ("SELECT * FROM temp.main.x", "catalog"),
        ("SELECT * FROM duckdb_settings", "system-table"),
        ("SELECT * FROM pg_catalog.pg_settings", "system-table"),
        ("SELECT * FROM information_schema.schemata", "system-table"),
        ("SHOW DATABASES", "show"),
        ("SHOW ALL TABLES", "show"),
        ("SELECT * FROM (PIVOT person ON sex)", "statement:multi"),
    ],
)
def test_everything_else_is_refused_with_its_rule(sql: str, rule: str) -> None:
    with pytest.raises(SqlRefusedError) as caught:
        check(sql)
    assert caught.value.rule == rule
    assert caught.value.message
    assert caught.value.hint


def test_a_cte_name_is_only_a_table_where_it_is_in_scope() -> None:
    assert check("SELECT * FROM (WITH a AS (SELECT 1) SELECT * FROM a)") == set()
    with pytest.raises(QueryError, match="no table named 'a'"):
        check("SELECT * FROM (WITH a AS (SELECT 1) SELECT * FROM a), a")


def test_unknown_tables_and_bad_syntax_are_query_errors() -> None:
    with pytest.raises(QueryError, match=r"no table named 'nope' \(its tables: person, visit\)"):
        check("SELECT * FROM nope")
    with pytest.raises(QueryError, match="cannot parse"):
        check("SELEC 1")
    with pytest.raises(QueryError, match="cannot parse"):
        check("SELECT (1")


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        (b"SELECT '\xff\xfe'", "encoding"),
        ("SELECT '\ud800'", "encoding"),
        ("SELECT 1\x00; DROP TABLE person", "nul-byte"),
        ("SELECT " + "1 + " * 30_000 + "1", "size"),
        ("", "empty"),
        ("  -- only a comment\n", "statements"),
    ],
)
def test_bytes_that_are_not_one_statement_are_refused(sql: str | bytes, rule: str) -> None:
    with pytest.raises(SqlRefusedError) as caught:
        check(sql)
    assert caught.value.rule == rule


def test_nesting_too_deep_to_check_is_refused_not_a_crash() -> None:
    with pytest.raises((SqlRefusedError, QueryError)):
        check("SELECT " + "(" * 20_000 + "1" + ")" * 20_000)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_passed_or_refused_with_a_typed_error(text: str) -> None:
    with contextlib.suppress(SqlRefusedError, QueryError):
        check(text)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["read_csv", "read_text", "glob", "duckdb_settings", "query"]),
    st.text(max_size=30),
)
def test_a_refused_table_function_is_refused_wherever_it_hides(name: str, arg: str) -> None:
    literal = "'" + arg.replace("'", "''").replace("\x00", "") + "'"
    for sql in (
        f"SELECT * FROM {name}({literal})",
        f"SELECT * FROM person WHERE sex IN (SELECT * FROM {name}({literal}))",
        f"WITH q AS (SELECT * FROM {name}({literal})) SELECT * FROM q",
    ):
        with pytest.raises(SqlRefusedError) as caught:
            check(sql)
        assert caught.value.rule == f"table-function:{name}"
