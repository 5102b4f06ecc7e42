"""A project's closed workspace: its delivered tables, its saved results, and its queries.

On disk, ``PMHUB_HOME/workspaces/<project_id>/`` holds ``data.duckdb`` (the delivered,
pseudonymized tables) and ``files/`` (results saved from queries, with a sidecar of what
made each in ``files/.meta/``). Nothing else is written there.

There is no way to take rows out: a query gives back a capped preview, and its whole
result can only be saved as a workspace file, which leaves the safe zone only through
output checking. Queries run in the sandbox's confined worker processes after the SQL
check; a load or a save is staged beside the workspaces and renamed into place only when
complete, so a failure of either leaves the workspace as it was.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pmhub.platform.errors import ConflictError, NotFoundError
from pmhub.safezone.errors import WorkspaceError
from pmhub.safezone.sandbox import QueryLimits, SandboxLimits, SandboxPool, query_request
from pmhub.safezone.sandbox_sql import check_sql
from pmhub.settings import Settings, load_settings

PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}\.(parquet|csv)")
RESERVED_TABLE_PREFIXES = ("duckdb_", "pragma_", "sqlite_", "pg_")
MAX_COLUMN_NAME = 255
DB_FILE = "data.duckdb"

TableSource = pa.Table | pa.RecordBatchReader | Path | str


@dataclasses.dataclass(frozen=True)
class TableInfo:
    name: str
    rows: int
    columns: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "columns": [list(c) for c in self.columns]}


@dataclasses.dataclass(frozen=True)
class FileInfo:
    name: str
    format: str
    bytes: int
    rows: int | None
    columns: tuple[tuple[str, str], ...]
    sha256: str
    created_at: str | None
    sql: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "columns": [list(c) for c in self.columns]}


@dataclasses.dataclass(frozen=True)
class QueryResult:
    """What a member sees of a query: the column types and at most the preview's rows."""

    columns: tuple[tuple[str, str], ...]
    rows: list[list[Any]]
    truncated: bool
    row_count: int | None  # None when only the preview was read
    cells_cut: int
    elapsed_s: float
    saved: FileInfo | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [list(c) for c in self.columns],
            "rows": self.rows,
            "truncated": self.truncated,
            "row_count": self.row_count,
            "cells_cut": self.cells_cut,
            "elapsed_s": round(self.elapsed_s, 6),
            "saved": self.saved.to_dict() if self.saved else None,
        }


def workspaces_dir(settings: Settings | None = None) -> Path:
    return (settings or load_settings()).home_dir() / "workspaces"


def create_workspace(project_id: str, settings: Settings | None = None) -> Workspace:
    """A new, empty workspace for a project; refused if the project has one."""
    root = _root(project_id, settings)
    try:
        root.mkdir(parents=True)
    except FileExistsError:
        raise ConflictError(
            f"project '{project_id}' already has a workspace",
            hint="Open it, or destroy it first if the project starts over.",
        ) from None
    workspace = Workspace(project_id, root)
    try:
        (root / "files" / ".meta").mkdir(parents=True)
        staging = workspace.staging_path(".duckdb")
        duckdb.connect(str(staging)).close()
        os.replace(staging, workspace.db_path)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return workspace


def open_workspace(project_id: str, settings: Settings | None = None) -> Workspace:
    root = _root(project_id, settings)
    if not (root / DB_FILE).is_file():
        raise NotFoundError(
            f"project '{project_id}' has no workspace",
            hint="A workspace is made when the project's data is delivered.",
        )
    return Workspace(project_id, root)


def _root(project_id: str, settings: Settings | None) -> Path:
    if not isinstance(project_id, str) or not PROJECT_ID.fullmatch(project_id):
        raise WorkspaceError(
            f"{project_id!r} is not a project id (1-40 letters, digits, '-' or '_', "
            "starting with a letter or digit)"
        )
    return workspaces_dir(settings) / project_id


class Workspace:
    def __init__(self, project_id: str, root: Path) -> None:
        self.project_id = project_id
        self.root = root
        self.db_path = root / DB_FILE
        self.files_dir = root / "files"

    # --- tables ---------------------------------------------------------------------

    def tables(self) -> list[TableInfo]:
        return list(_catalog(self.db_path).values())

    def table_names(self) -> frozenset[str]:
        return frozenset(_catalog(self.db_path))

    def load_tables(
        self, tables: Mapping[str, TableSource], *, replace: bool = False
    ) -> dict[str, int]:
        """Load delivered tables (Arrow tables or readers, or Parquet files) all or none.

        Returns the rows loaded per table; a source whose row count is known (a table,
        a Parquet file) must arrive whole, or nothing is loaded.
        """
        if not tables:
            raise WorkspaceError("no tables to load")
        for name in tables:
            _check_table_name(name)
        with self._locked():
            existing = self.table_names()
            clash = sorted(set(tables) & existing)
            if clash and not replace:
                raise ConflictError(
                    f"the workspace already has table(s) {', '.join(clash)}",
                    hint="Load under other names, or pass replace=True for a new delivery.",
                )
            return self._load_staged(tables)

    def load_folder(
        self, folder: Path, *, prefix: str = "", replace: bool = False
    ) -> dict[str, int]:
        """Every ``NAME.parquet`` in ``folder`` as table ``prefix + NAME`` (a site's
        delivery: ``prefix=f"{site}_"`` keeps the sites' tables apart)."""
        if not folder.is_dir():
            raise WorkspaceError(f"{folder} is not a folder of Parquet files")
        files = sorted(folder.glob("*.parquet"))
        if not files:
            raise WorkspaceError(f"{folder} holds no .parquet files")
        return self.load_tables({prefix + f.stem: f for f in files}, replace=replace)

    def _load_staged(self, tables: Mapping[str, TableSource]) -> dict[str, int]:
        staging = self.staging_path(".duckdb")
        try:
            shutil.copyfile(self.db_path, staging)
            loaded: dict[str, int] = {}
            con = duckdb.connect(str(staging))
            try:
                for name, source in tables.items():
                    loaded[name] = _load_one(con, name, source)
                con.execute("CHECKPOINT").fetchall()
            finally:
                con.close()
            _fsync(staging)
            os.replace(staging, self.db_path)  # the one moment the workspace changes
            _fsync(self.db_path.parent)
            return loaded
        finally:
            staging.unlink(missing_ok=True)
            Path(f"{staging}.wal").unlink(missing_ok=True)

    # --- files ----------------------------------------------------------------------

    def files(self) -> list[FileInfo]:
        names = sorted(p.name for p in self.files_dir.iterdir() if FILE_NAME.fullmatch(p.name))
        return [self.file_info(name) for name in names]

    def file_info(self, name: str) -> FileInfo:
        path = self.file_path(name)
        meta_path = self.files_dir / ".meta" / f"{name}.json"
        meta: dict[str, Any] = {}
        if meta_path.is_file():
            meta = orjson.loads(meta_path.read_bytes())
        return FileInfo(
            name=name,
            format=name.rsplit(".", 1)[1],
            bytes=path.stat().st_size,
            rows=meta.get("rows"),
            columns=tuple((str(c[0]), str(c[1])) for c in meta.get("columns", [])),
            sha256=str(meta.get("sha256") or _sha256(path)),
            created_at=meta.get("created_at"),
            sql=meta.get("sql"),
        )

    def file_path(self, name: str) -> Path:
        """Where a saved result is, for the output-check service; never a download route."""
        _check_file_name(name)
        path = self.files_dir / name
        if not path.is_file():
            raise NotFoundError(
                f"the workspace of project '{self.project_id}' has no file '{name}'",
                hint="List the workspace's files to see what was saved.",
            )
        return path

    def read_file(self, name: str) -> pa.Table:
        """A saved result as a table, for output checking (sdc.py) inside the safe zone."""
        path = self.file_path(name)
        try:
            if name.endswith(".csv"):
                return pacsv.read_csv(path)
            return pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise WorkspaceError(f"cannot read workspace file '{name}': {exc}") from exc

    # --- queries --------------------------------------------------------------------

    def query(
        self,
        sql: str | bytes,
        limits: QueryLimits | None = None,
        *,
        save_as: str | None = None,
        pool: SandboxPool | None = None,
    ) -> QueryResult:
        """Check and run one SELECT; return its preview, and save it whole if asked."""
        limits = limits or QueryLimits()
        if save_as is not None:
            _check_file_name(save_as)
            self._refuse_existing(save_as)
        checked = check_sql(sql, self.table_names(), max_bytes=limits.max_sql_bytes)
        pool = pool or default_pool()
        fmt = save_as.rsplit(".", 1)[1] if save_as else ""
        staging = self.staging_path("." + fmt) if save_as else None
        save = (staging, fmt) if staging is not None else None
        request = query_request(self.db_path, checked.sql, limits, save)
        started = time.perf_counter()
        try:
            reply = pool.run(request, limits)
            saved = None
            if staging is not None and save_as is not None:
                saved = self._keep(staging, save_as, reply, checked.sql)
        finally:
            if staging is not None:
                staging.unlink(missing_ok=True)
        return QueryResult(
            columns=tuple((str(n), str(t)) for n, t in reply["columns"]),
            rows=reply["rows"],
            truncated=bool(reply["truncated"]),
            row_count=reply.get("row_count"),
            cells_cut=int(reply.get("cells_cut", 0)),
            elapsed_s=time.perf_counter() - started,
            saved=saved,
        )

    def _refuse_existing(self, name: str) -> None:
        if (self.files_dir / name).exists():
            raise ConflictError(
                f"the workspace already has a file '{name}'",
                hint="Save under another name: a saved result may be in output checking.",
            )

    def _keep(self, staging: Path, name: str, reply: dict[str, Any], sql: str) -> FileInfo:
        saved = reply.get("saved") or {}
        meta = {
            "rows": saved.get("rows"),
            "columns": reply["columns"],
            "sha256": _sha256(staging),
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sql": sql,
        }
        meta_staging = self.staging_path(".json")
        meta_staging.write_bytes(orjson.dumps(meta))
        try:
            with self._locked():
                try:
                    os.link(staging, self.files_dir / name)  # fails if the name was taken
                except FileExistsError:
                    raise ConflictError(
                        f"the workspace already has a file '{name}'",
                        hint="Save under another name.",
                    ) from None
                os.replace(meta_staging, self.files_dir / ".meta" / f"{name}.json")
        finally:
            meta_staging.unlink(missing_ok=True)
        return self.file_info(name)

    # --- lifetime -------------------------------------------------------------------

    def destroy(self) -> None:
        """Delete the workspace and everything in it (at the end of the grace period)."""
        with self._locked():
            shutil.rmtree(self.root)

    def staging_path(self, suffix: str) -> Path:
        """A fresh path beside the workspaces (same file system, so renames are atomic)."""
        staging = self.root.parent / ".staging"
        staging.mkdir(exist_ok=True)
        return staging / f"{self.project_id}-{uuid.uuid4().hex}{suffix}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time per workspace, across processes (flock)."""
        locks = self.root.parent / ".locks"
        locks.mkdir(exist_ok=True)
        with open(locks / f"{self.project_id}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# --- loading ----------------------------------------------------------------------------


def _check_table_name(name: str) -> None:
    if not isinstance(name, str) or not TABLE_NAME.fullmatch(name):
        raise WorkspaceError(
            f"{name!r} is not a table name (1-63 lowercase letters, digits and '_', "
            "starting with a letter)"
        )
    if name.startswith(RESERVED_TABLE_PREFIXES) or name in _reserved_words():
        raise WorkspaceError(f"'{name}' is reserved by DuckDB; choose another table name")


def _check_file_name(name: str) -> None:
    if not isinstance(name, str) or not FILE_NAME.fullmatch(name):
        raise WorkspaceError(
            f"{name!r} is not a workspace file name (1-80 letters, digits, '-' or '_', "
            "then .parquet or .csv)"
        )


_reserved: frozenset[str] | None = None


def _reserved_words() -> frozenset[str]:
    global _reserved
    if _reserved is None:
        con = duckdb.connect()
        rows = con.execute(
            "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
        ).fetchall()
        con.close()
        _reserved = frozenset(str(r[0]).lower() for r in rows)
    return _reserved


def _reader(name: str, source: TableSource) -> tuple[pa.RecordBatchReader, int | None]:
    if isinstance(source, pa.Table):
        return source.to_reader(), source.num_rows
    if isinstance(source, pa.RecordBatchReader):
        return source, None
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            parquet = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise WorkspaceError(f"table '{name}': cannot read Parquet file {path}: {exc}") from exc
        batches = parquet.iter_batches()
        return (
            pa.RecordBatchReader.from_batches(parquet.schema_arrow, batches),
            parquet.metadata.num_rows,
        )
    raise WorkspaceError(
        f"table '{name}': give an Arrow table or reader, or a Parquet file path, "
        f"not {type(source).__name__}"
    )


def _check_columns(name: str, schema: pa.Schema) -> None:
    seen: set[str] = set()
    if not len(schema):
        raise WorkspaceError(f"table '{name}' has no columns")
    for column in schema.names:
        if not column.strip() or len(column) > MAX_COLUMN_NAME or not column.isprintable():
            raise WorkspaceError(
                f"table '{name}': column name {column!r} is empty, too long or unprintable"
            )
        if column.lower() in seen:  # DuckDB names are case-insensitive
            raise WorkspaceError(f"table '{name}': column '{column}' appears twice")
        seen.add(column.lower())


def _load_one(con: duckdb.DuckDBPyConnection, name: str, source: TableSource) -> int:
    reader, expected = _reader(name, source)
    _check_columns(name, reader.schema)
    view = f"__pmhub_load_{uuid.uuid4().hex}"
    try:
        con.register(view, reader)
        con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM "{view}"').fetchall()
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        raise WorkspaceError(f"table '{name}' cannot be loaded: {_first_line(exc)}") from exc
    finally:
        with contextlib.suppress(duckdb.Error):
            con.unregister(view)
    # DuckDB 2 keeps a result open until it is fetched to the end: fetchall, not fetchone
    loaded = int(con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0])
    if expected is not None and loaded != expected:
        raise WorkspaceError(
            f"table '{name}': {expected} rows were given but {loaded} arrived; nothing loaded"
        )
    return loaded


# --- the catalog, read once per version of the database file ----------------------------

_catalog_lock = threading.Lock()
_catalogs: dict[Path, tuple[tuple[int, int, int], dict[str, TableInfo]]] = {}


def _catalog(db_path: Path) -> dict[str, TableInfo]:
    try:
        st = db_path.stat()
    except FileNotFoundError:
        raise NotFoundError(f"the workspace at {db_path.parent.name} is gone") from None
    version = (st.st_ino, st.st_mtime_ns, st.st_size)
    with _catalog_lock:
        cached = _catalogs.get(db_path)
        if cached and cached[0] == version:
            return cached[1]
    tables = _read_catalog(db_path)
    with _catalog_lock:
        _catalogs[db_path] = (version, tables)
    return tables


def _read_catalog(db_path: Path) -> dict[str, TableInfo]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        columns: dict[str, list[tuple[str, str]]] = {}
        for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' "
            "ORDER BY table_name, column_index"
        ).fetchall():
            columns.setdefault(str(table), []).append((str(column), str(kind)))
        tables = {}
        for table, cols in columns.items():
            rows = int(con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0])
            tables[table] = TableInfo(table, rows, tuple(cols))
        return tables
    finally:
        con.close()


# --- helpers ----------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_default_pools: dict[Path, SandboxPool] = {}
_default_lock = threading.Lock()


def default_pool(
    settings: Settings | None = None, limits: SandboxLimits | None = None
) -> SandboxPool:
    """The process's shared pool for a home (the service makes its own and passes it)."""
    scratch = (settings or load_settings()).home_dir() / "tmp" / "sandbox"
    with _default_lock:
        pool = _default_pools.get(scratch)
        if pool is None:
            scratch.mkdir(parents=True, exist_ok=True)
            pool = SandboxPool(scratch, limits)
            _default_pools[scratch] = pool
        return pool


@atexit.register
def _close_default_pools() -> None:
    with _default_lock:
        for pool in _default_pools.values():
            pool.close()
        _default_pools.clear()
