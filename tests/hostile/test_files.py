"""Files the CLI cannot write: a missing folder, a folder in the way, no permission, a
read-only or full file system. Each case runs the real ``pmhub`` entry point and asserts
exit 13 (or the layer's own output code), one message with a hint, no traceback, that
nothing else changed (no cohort generated, no folder made), and that an old file is left
whole. Permission and file-system cases run the CLI in a process of its own: without
CAP_DAC_OVERRIDE (``setpriv``), or in a mount namespace of its own over a small tmpfs
(``unshare``), so that nothing outside the test is touched."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pmhub import outputs
from pmhub.errors import FileWriteError
from pmhub.sites import Site
from tests.hostile.cohortkit import (
    refused,
    register,
    snapshot,
    subprocess_cli,
    succeeds,
)

WRITE = 13
NO_OVERRIDE = ("setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")


def _privileged_tools(*tools: str) -> None:
    if os.geteuid() != 0 or any(shutil.which(t) is None for t in tools):
        pytest.skip(f"needs root and {', '.join(tools)} to make the failure real")


def _own_namespace() -> None:
    _privileged_tools("unshare", "mount")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode()[:200]}")


def _assert_refused(result: subprocess.CompletedProcess[str], expected: int, reason: str) -> str:
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == expected, text
    assert "error:" in text, text
    assert "hint:" in text, text
    assert "Traceback" not in text, text
    assert reason in text, text
    return text


# --- paths that cannot take the file -----------------------------------------------------


def test_html_into_a_missing_folder_generates_nothing(tmp_path: Path, ward: Site) -> None:
    target = tmp_path / "no" / "such" / "folder" / "attrition.html"
    before = snapshot([ward], tmp_path)
    out = refused(WRITE, "cohort", "run", "type2_diabetes", "-s", "ward", "--html", str(target))
    assert "the folder" in out
    assert "does not exist" in out
    assert "mkdir -p" in out
    assert not (tmp_path / "no").exists()
    assert snapshot([ward], tmp_path) == before


def test_html_that_is_a_folder(tmp_path: Path, ward: Site) -> None:
    (tmp_path / "report.html").mkdir()
    before = snapshot([ward], tmp_path)
    out = refused(
        WRITE, "cohort", "characterize", "type2_diabetes", "-s", "ward",
        "--html", str(tmp_path / "report.html"),
    )  # fmt: skip
    assert "it is a folder" in out
    assert "Give a file name, not a folder" in out
    assert snapshot([ward], tmp_path) == before


def test_html_below_a_file(tmp_path: Path, ward: Site) -> None:
    (tmp_path / "notes.txt").write_text("kept")
    before = snapshot([ward], tmp_path)
    target = tmp_path / "notes.txt" / "report.html"
    out = refused(
        WRITE, "cohort", "incidence", "atrial_fibrillation", "stroke", "-s", "ward",
        "--html", str(target),
    )  # fmt: skip
    assert "is not a folder" in out
    assert snapshot([ward], tmp_path) == before
    assert (tmp_path / "notes.txt").read_text() == "kept"


def test_plot_into_a_missing_folder(tmp_path: Path, ward: Site) -> None:
    before = snapshot([ward], tmp_path)
    target = tmp_path / "plots" / "km.png"
    out = refused(
        WRITE, "cohort", "survival", "atrial_fibrillation", "stroke", "-s", "ward",
        "--plot", str(target),
    )  # fmt: skip
    assert "cannot write the plot" in out
    assert snapshot([ward], tmp_path) == before


def test_plot_that_is_a_folder_with_all_sites(tmp_path: Path, duckdb_url: str) -> None:
    ward = register("ward", duckdb_url)
    (tmp_path / "km.svg").mkdir()
    before = snapshot([ward], tmp_path)
    out = refused(
        WRITE, "cohort", "survival", "atrial_fibrillation", "stroke", "--all-sites",
        "--plot", str(tmp_path / "km.svg"),
    )  # fmt: skip
    assert "cannot write the plot" in out
    assert "it is a folder" in out
    assert snapshot([ward], tmp_path) == before  # no site was run


def test_html_that_is_a_pipe_is_not_replaced(tmp_path: Path, ward: Site) -> None:
    pipe = tmp_path / "report.html"
    os.mkfifo(pipe)
    before = snapshot([ward], tmp_path)
    out = refused(WRITE, "cohort", "run", "type2_diabetes", "-s", "ward", "--html", str(pipe))
    assert "not a regular file" in out
    assert pipe.is_fifo()
    assert snapshot([ward], tmp_path) == before


def test_a_file_name_too_long(tmp_path: Path, ward: Site) -> None:
    before = snapshot([ward], tmp_path)
    target = tmp_path / ("r" * 300 + ".html")
    out = refused(WRITE, "cohort", "run", "type2_diabetes", "-s", "ward", "--html", str(target))
    assert "Give a shorter file name" in out
    assert snapshot([ward], tmp_path) == before


def test_export_parquet_onto_a_file(tmp_path: Path, ward: Site) -> None:
    (tmp_path / "lake").write_text("a file, not a folder")
    before = snapshot([ward], tmp_path)
    out = refused(WRITE, "cohort", "export-parquet", str(tmp_path / "lake"), "-s", "ward")
    assert "cannot write the Parquet export folder" in out
    assert snapshot([ward], tmp_path) == before


def test_quality_report_into_a_missing_folder(tmp_path: Path, duckdb_url: str) -> None:
    register("ward", duckdb_url)
    succeeds("quality", "run", "--site", "ward", "--as-of", "2026-01-01")
    out = refused(
        67, "quality", "report", "--site", "ward", "--html", str(tmp_path / "q" / "r.html")
    )
    assert "does not exist" in out
    assert not (tmp_path / "q").exists()


# --- failures the file system makes -------------------------------------------------------


def test_html_into_a_folder_without_write_permission(tmp_path: Path, ward: Site) -> None:
    _privileged_tools("setpriv")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "old.html").write_text("old report")
    locked.chmod(0o555)
    try:
        before = snapshot([ward], tmp_path)
        result = subprocess_cli(
            "cohort", "run", "type2_diabetes", "-s", "ward", "--html", str(locked / "old.html"),
            prefix=NO_OVERRIDE,
        )  # fmt: skip
        _assert_refused(result, WRITE, "Permission denied")
        assert snapshot([ward], tmp_path) == before
        assert (locked / "old.html").read_text() == "old report"
    finally:
        locked.chmod(0o755)


def test_export_parquet_into_a_folder_without_write_permission(tmp_path: Path, ward: Site) -> None:
    _privileged_tools("setpriv")
    locked = tmp_path / "lake"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = subprocess_cli(
            "cohort", "export-parquet", str(locked), "-s", "ward", prefix=NO_OVERRIDE
        )
        _assert_refused(result, WRITE, "Permission denied")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def _in_tmpfs(folder: Path, prepare: str, *args: str) -> tuple[str, str, str]:
    """Run ``pmhub ARGS`` in a mount namespace where ``folder`` is a 256 KiB tmpfs made
    by ``prepare`` (shell); return the CLI's output and a listing of the folder after."""
    folder.mkdir(exist_ok=True)
    script = (
        'set -e; mount -t tmpfs -o size=256k tmpfs "$0"; cd "$0"; ' + prepare + "; set +e; "
        '"$@"; echo "::rc=$?"; echo "::files=$(ls -A | tr "\\n" " ")"; '
        'echo "::old=$(cat old.png 2>/dev/null)"'
    )
    result = subprocess_cli(
        *args, prefix=("unshare", "-m", "--propagation", "private", "sh", "-c", script, str(folder))
    )
    return result.stdout, result.stderr, result.stdout.rsplit("::rc=", 1)[-1]


def test_plot_on_a_full_disk_keeps_the_old_file(tmp_path: Path, ward: Site) -> None:
    _own_namespace()
    command = ("cohort", "survival", "atrial_fibrillation", "stroke", "-s", "ward")
    succeeds(*command)  # the cohorts exist: rerunning them rewrites the same rows
    before = snapshot([ward])
    fill = "printf 'old plot' > old.png; dd if=/dev/zero of=fill bs=4k 2>/dev/null || true"
    out, err, tail = _in_tmpfs(tmp_path / "full", fill, *command, "--plot", "old.png")
    text = " ".join((out + err).split())
    assert tail.startswith(f"{WRITE}\n"), text
    assert "No space left on device" in text
    assert "The disk is full" in text
    assert "Traceback" not in text
    assert "::files=fill old.png" in out  # no temporary file left behind
    assert "::old=old plot" in out  # the old plot is whole
    assert snapshot([ward]) == before


def test_html_on_a_read_only_file_system(tmp_path: Path, ward: Site) -> None:
    _own_namespace()
    before = snapshot([ward])
    prepare = 'printf "old plot" > old.png; mount -o remount,ro "$0"'
    out, err, tail = _in_tmpfs(
        tmp_path / "ro", prepare, "cohort", "run", "type2_diabetes", "-s", "ward",
        "--html", "report.html",
    )  # fmt: skip
    text = " ".join((out + err).split())
    assert tail.startswith(f"{WRITE}\n"), text
    assert "Read-only file system" in text
    assert "choose a path on a writable disk" in text
    assert "Traceback" not in text
    assert "::files=old.png" in out
    assert snapshot([ward]) == before


# --- the helper itself ----------------------------------------------------------------------


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")

    def render_half() -> None:
        with outputs.replacing(target) as temporary:
            temporary.write_text("half of a new rep")
            raise RuntimeError("the renderer failed")

    with pytest.raises(RuntimeError):
        render_half()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_written_file_replaces_the_old_one_with_the_usual_mode(tmp_path: Path) -> None:
    target = tmp_path / "plot.svg"
    target.write_text("old")
    outputs.write_bytes(target, b"<svg/>")
    assert target.read_bytes() == b"<svg/>"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.svg"]


def test_errors_carry_the_layers_class(tmp_path: Path) -> None:
    from pmhub.quality.errors import QualityOutputError

    with pytest.raises(QualityOutputError, match="does not exist"):
        outputs.write_text(tmp_path / "x" / "y.html", "", error=QualityOutputError)
    with pytest.raises(FileWriteError, match="it is a folder"):
        outputs.write_text(tmp_path, "")
