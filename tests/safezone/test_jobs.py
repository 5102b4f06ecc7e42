"""Long jobs run by real `pmhub worker` processes over a real queue (SQLite file, Redis).

A job asked for twice is one job; a worker killed with SIGKILL mid-job leaves the job
running, and the next worker finishes it with the same final state as a clean run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmhub.platform.core import Platform, open_platform
from pmhub.safezone import jobs
from pmhub.settings import load_settings

REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "redis":
        if not redis_up():
            pytest.skip("Redis is not answering at 127.0.0.1:6379")
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        monkeypatch.setenv("PMHUB_JOBS_URL", REDIS_URL)
        return REDIS_URL
    monkeypatch.delenv("PMHUB_JOBS_URL", raising=False)
    return ""


@pytest.fixture
def platform(pmhub_home: Path, queue_url: str) -> Iterator[Platform]:
    found = open_platform(load_settings())
    yield found
    found.close()


def start_worker() -> subprocess.Popen[bytes]:
    code = "from pmhub.cli import main; main(['worker'])"
    return subprocess.Popen(
        [sys.executable, "-c", code], env=dict(os.environ), stderr=subprocess.PIPE
    )


def wait_for(platform: Platform, job_id: int, predicate, seconds: float = 60.0) -> jobs.JobView:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = jobs.get(platform, job_id)
        assert found is not None
        if predicate(found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got there: {jobs.get(platform, job_id)}")


def stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGINT)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def test_a_job_asked_for_twice_is_one_job(platform: Platform) -> None:
    queue = jobs.make_queue(platform.settings)
    first = jobs.enqueue(platform, queue, key="probe/same", kind="probe", payload={"steps": 1})
    again = jobs.enqueue(platform, queue, key="probe/same", kind="probe", payload={"steps": 9})
    assert again.id == first.id
    assert [j.key for j in jobs.list_jobs(platform)] == ["probe/same"]


def test_a_worker_runs_a_queued_job_to_the_end(platform: Platform) -> None:
    queue = jobs.make_queue(platform.settings)
    made = jobs.enqueue(platform, queue, key="probe/a", kind="probe", payload={"steps": 2})
    worker = start_worker()
    try:
        done = wait_for(platform, made.id, lambda j: j.state == jobs.DONE)
    finally:
        stop(worker)
    assert (done.progress, done.attempts, done.result) == (
        1.0,
        1,
        {"steps": 2, "file": "probe_a.txt"},
    )
    assert (platform.home / "jobs" / "probe" / "probe_a.txt").read_text() == "probe/a 2\n"


def test_a_job_whose_worker_is_killed_is_finished_by_the_next(platform: Platform) -> None:
    queue = jobs.make_queue(platform.settings)
    payload = {"steps": 40, "seconds_per_step": 0.1}
    made = jobs.enqueue(platform, queue, key="probe/k", kind="probe", payload=payload)
    worker = start_worker()
    try:
        wait_for(platform, made.id, lambda j: j.state == jobs.RUNNING and j.progress > 0.1)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    stuck = jobs.get(platform, made.id)
    assert stuck is not None
    assert stuck.state == jobs.RUNNING
    assert not (platform.home / "jobs" / "probe" / "probe_k.txt").exists()
    worker = start_worker()  # recovers what the dead one left
    try:
        done = wait_for(platform, made.id, lambda j: j.state == jobs.DONE)
    finally:
        stop(worker)
    assert (done.attempts, done.progress) == (2, 1.0)
    assert (platform.home / "jobs" / "probe" / "probe_k.txt").read_text() == "probe/k 40\n"


def test_a_failing_job_is_recorded_failed_with_its_reason(platform: Platform) -> None:
    queue = jobs.make_queue(platform.settings)
    made = jobs.enqueue(platform, queue, key="probe/bad", kind="probe", payload={"steps": "x"})
    assert jobs.run(platform, made.id) == jobs.FAILED
    found = jobs.get(platform, made.id)
    assert found is not None
    assert found.state == jobs.FAILED
    assert "ValueError" in (found.error or "")
    assert jobs.run(platform, made.id) == jobs.FAILED  # a finished job is not run again


def test_an_unknown_job_kind_is_refused(platform: Platform) -> None:
    with pytest.raises(LookupError, match="no job kind"):
        jobs.enqueue(platform, jobs.make_queue(platform.settings), key="k", kind="nope")
    assert jobs.list_jobs(platform) == []


def test_an_idle_worker_looks_at_the_sqlite_queue_every_second(platform: Platform) -> None:
    # huey's default backs off to a poll every 10 s: an approved extraction waited that long
    consumer = jobs.make_queue(platform.settings).consumer()
    assert consumer.max_delay == jobs.MAX_POLL_S <= 1.0


def test_a_worker_imports_the_extraction_before_its_first_job() -> None:
    code = (
        "import sys; from pmhub.safezone import jobs; jobs.preload();"
        " print('extract' in jobs.KINDS, 'pmhub.safezone.extraction' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["True", "True"]
