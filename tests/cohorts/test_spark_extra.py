"""Spark is an optional extra: without PySpark, a clear error naming what to install."""

from __future__ import annotations

import sys

import pytest

from pmhub.cohorts import spark
from pmhub.errors import MissingExtraError


def test_a_missing_pyspark_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now fails
    with pytest.raises(MissingExtraError, match="pyspark") as caught:
        spark.local_session()
    assert "pmhub[spark]" in caught.value.hint
