"""CDW backends, chosen by the site's CDW URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pmhub.cdm.backends.base import Backend, ColumnInfo
from pmhub.errors import InvalidCdwUrlError, SparkSiteError

__all__ = ["Backend", "ColumnInfo", "connect", "duckdb_path", "is_spark", "validate_url"]

SCHEMES = ("duckdb", "postgresql", "postgres", "spark")


def validate_url(url: str) -> str:
    """Check a CDW URL's form without connecting; return it normalised."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidCdwUrlError(
            f"unsupported CDW URL {url!r}: the scheme must be one of {SCHEMES}"
        )
    if scheme in ("duckdb", "spark"):
        duckdb_path(url)
    elif not urlsplit(url).hostname and "host=" not in url:
        raise InvalidCdwUrlError(f"PostgreSQL URL {url!r} names no host")
    return url


def duckdb_path(url: str) -> Path:
    """``duckdb:///rel/site.duckdb`` → a relative path, ``duckdb:////abs/site.duckdb`` →
    an absolute one (SQLAlchemy's convention for file databases). Spark sites name their
    Parquet folder the same way: ``spark:////abs/folder``."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    if not rest.startswith("/") or rest == "/":
        raise InvalidCdwUrlError(
            f"URL {url!r} names no file or folder "
            "(use duckdb:///path/site.duckdb or spark:///path/folder)"
        )
    return Path(rest[1:])


def is_spark(url: str) -> bool:
    """A Spark site: a folder of OMOP tables as Parquet, read by a local Spark session."""
    return urlsplit(url).scheme.lower() == "spark"


def connect(url: str, *, schema: str = "public") -> Backend:
    scheme = urlsplit(validate_url(url)).scheme.lower()
    if scheme == "spark":
        raise SparkSiteError(
            f"{url} is a Spark site (Parquet tables read by Spark): it has no SQL connection "
            "for this verb; the cohort verbs read it"
        )
    if scheme == "duckdb":
        from pmhub.cdm.backends.duckdb import DuckDBBackend

        return DuckDBBackend(duckdb_path(url))
    from pmhub.cdm.backends.postgres import PostgresBackend, split_schema

    conninfo, url_schema = split_schema(url)
    return PostgresBackend(conninfo, url_schema or schema)
