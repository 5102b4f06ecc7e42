"""Long jobs (a site's extraction, expiry sweeps) run by huey workers.

huey keeps the queue (an SQLite file in PMHUB_HOME by default, Redis at scale:
``PMHUB_JOBS_URL=redis://host:6379/0``); the platform's ``jobs`` table is the record that
users see (state, progress, attempts, error) and the source of truth for recovery. A job
is claimed by a conditional update, so a message delivered twice runs the job once; a
worker that died mid-job leaves its row ``running`` with an old heartbeat, and the next
worker to start puts it back on the queue. Job functions must be idempotent (extraction
writes into a temporary folder and renames it at the end), so running one again after a
crash gives the same final state as a clean run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update

from pmhub.platform.core import Platform
from pmhub.platform.models import Job
from pmhub.settings import Settings

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
TASK_NAME = "pmhub.run_job"
# A running job beats its heart at least this often (each progress report does).
STALE_AFTER = dt.timedelta(minutes=2)
MAX_POLL_S = 1.0  # the longest an idle worker goes without looking at the queue

Progress = Callable[[float, str], None]
JobFunction = Callable[[Platform, Job, Progress], dict[str, Any]]
KINDS: dict[str, JobFunction] = {}
# modules whose import registers more kinds (a worker imports them before it runs a job)
KIND_MODULES = ("pmhub.safezone.service",)
# what those jobs import when they run (the service's CLI and server import it lazily)
RUN_MODULES = ("pmhub.safezone.extraction",)


def job_kind(name: str) -> Callable[[JobFunction], JobFunction]:
    """Register a function as the runner of jobs of this kind."""

    def register(function: JobFunction) -> JobFunction:
        KINDS[name] = function
        return function

    return register


@dataclass(frozen=True)
class JobView:
    id: int
    key: str
    kind: str
    state: str
    progress: float
    attempts: int
    site: str | None
    application_id: int | None
    error: str | None
    result: dict[str, Any] | None


def view(job: Job) -> JobView:
    return JobView(
        job.id,
        job.key,
        job.kind,
        job.state,
        job.progress,
        job.attempts,
        job.site,
        job.application_id,
        job.error,
        job.result,
    )


def queue_location(settings: Settings) -> str:
    return settings.jobs_url or f"sqlite:///{Path(settings.home_dir()) / 'jobs.db'}"


@dataclass
class JobQueue:
    """The huey instance of a home and its one generic task, ``run_job(job_id)``."""

    huey: Any
    task: Any

    def send(self, job_id: int) -> None:
        self.task(job_id)

    def consumer(self, workers: int = 1) -> Any:
        # An idle huey worker polls the SQLite queue ever less often, up to every 10 s by
        # default: an approved site's extraction then waits that long to start. A poll a
        # second is one small read (Redis blocks on its list and is not polled at all).
        return self.huey.create_consumer(
            workers=workers, worker_type="thread", periodic=False, max_delay=MAX_POLL_S
        )


def make_queue(settings: Settings) -> JobQueue:
    from huey import RedisHuey, SqliteHuey

    location = queue_location(settings)
    if location.startswith(("redis://", "rediss://")):
        huey = RedisHuey("pmhub", url=location)
    else:
        huey = SqliteHuey("pmhub", filename=location.removeprefix("sqlite:///"))
    task = huey.task(name=TASK_NAME)(_run_in_worker(settings))
    return JobQueue(huey, task)


def _run_in_worker(settings: Settings) -> Callable[[int], str]:
    def run_job(job_id: int) -> str:
        from pmhub.platform.core import open_platform

        platform = open_platform(settings, migrate=False)
        try:
            return run(platform, job_id)
        finally:
            platform.close()

    return run_job


def enqueue(platform: Platform, queue: JobQueue, *, key: str, kind: str, **fields: Any) -> JobView:
    """The job with this key: created and queued once; asking again returns the same job."""
    kind_function(kind)
    now = platform.now()
    with platform.db.write() as session:
        found = session.scalars(select(Job).where(Job.key == key)).first()
        if found is not None:
            return view(found)
        job = Job(
            key=key,
            kind=kind,
            state=QUEUED,
            progress=0.0,
            attempts=0,
            payload=fields.pop("payload", {}),
            result=None,
            error=None,
            created_at=now,
            updated_at=now,
            **fields,
        )
        session.add(job)
        session.flush()
        made = view(job)
    queue.send(made.id)
    return made


def preload() -> None:
    """Import every job kind and what it runs, as a worker starts: on a busy machine these
    imports take seconds, which the first job would otherwise wait for."""
    import importlib

    for module in (*KIND_MODULES, *RUN_MODULES):
        importlib.import_module(module)


def kind_function(kind: str) -> JobFunction:
    if kind not in KINDS:
        import importlib

        for module in KIND_MODULES:
            importlib.import_module(module)
    if kind not in KINDS:
        raise LookupError(f"no job kind {kind!r}")
    return KINDS[kind]


def claim(platform: Platform, job_id: int) -> bool:
    """Mark the job running if it is queued, or running with a dead worker; else False."""
    now = platform.now()
    stale = now - STALE_AFTER
    with platform.db.write() as session:
        done = session.execute(
            update(Job)
            .where(Job.id == job_id)
            .where(or_(Job.state == QUEUED, (Job.state == RUNNING) & (Job.updated_at < stale)))
            .values(state=RUNNING, attempts=Job.attempts + 1, updated_at=now, error=None)
        )
        return bool(getattr(done, "rowcount", 0))


def run(platform: Platform, job_id: int) -> str:
    """Run one job to its end in this process; the state it ended in."""
    if not claim(platform, job_id):
        with platform.db.read() as session:
            job = session.get(Job, job_id)
            return job.state if job is not None else "missing"
    with platform.db.read() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
    function = kind_function(job.kind)

    def progress(fraction: float, _message: str = "") -> None:
        _beat(platform, job_id, min(max(fraction, 0.0), 1.0))

    try:
        result = function(platform, job, progress)
    except Exception as exc:  # a job's failure is recorded, never lost with the worker
        _finish(platform, job_id, FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
        return FAILED
    _finish(platform, job_id, DONE, result=result)
    return DONE


def _beat(platform: Platform, job_id: int, fraction: float) -> None:
    with platform.db.write() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == RUNNING)
            .values(progress=fraction, updated_at=platform.now())
        )


def _finish(platform: Platform, job_id: int, state: str, **values: Any) -> None:
    with platform.db.write() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state=state,
                progress=1.0 if state == DONE else Job.progress,
                updated_at=platform.now(),
                **values,
            )
        )


def recover(
    platform: Platform, queue: JobQueue, *, stale_after: dt.timedelta = STALE_AFTER
) -> list[int]:
    """Queue again the jobs a dead worker or a lost message left behind; their ids.

    A running job whose heartbeat is older than ``stale_after`` is set back to queued
    first, so that the worker that takes the message may claim it.
    """
    cutoff = platform.now() - stale_after
    with platform.db.write() as session:
        ids = list(
            session.scalars(
                select(Job.id).where(Job.state.in_((QUEUED, RUNNING)), Job.updated_at <= cutoff)
            )
        )
        if ids:
            session.execute(
                update(Job)
                .where(Job.id.in_(ids), Job.state == RUNNING)
                .values(state=QUEUED, updated_at=platform.now())
            )
    for job_id in ids:
        queue.send(job_id)
    return ids


def get(platform: Platform, job_id: int) -> JobView | None:
    with platform.db.read() as session:
        job = session.get(Job, job_id)
        return view(job) if job is not None else None


@job_kind("probe")
def probe(platform: Platform, job: Job, progress: Progress) -> dict[str, Any]:
    """A harmless job an operator runs to see that the queue and a worker answer
    (`pmhub jobs probe`): a few timed steps, then one file written whole."""
    import time

    steps = int(job.payload.get("steps", 3))
    pause = float(job.payload.get("seconds_per_step", 0.2))
    for step in range(steps):
        time.sleep(pause)
        progress((step + 1) / steps, f"step {step + 1} of {steps}")
    folder = platform.home / "jobs" / "probe"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{job.key.replace('/', '_')}.txt"
    tmp = final.with_suffix(".tmp")
    tmp.write_text(f"{job.key} {steps}\n", encoding="utf-8")
    tmp.replace(final)
    return {"steps": steps, "file": final.name}


def list_jobs(platform: Platform) -> list[JobView]:
    with platform.db.read() as session:
        return [view(job) for job in session.scalars(select(Job).order_by(Job.id))]
