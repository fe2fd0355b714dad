"""Replay jobs: ``POST /v1/replays`` runs a replay from the delivery log in the background, with progress.

A job reads its plan from the log and publishes it with :mod:`workers.ops.replay`,
as ``hookline replay`` does, on one of :data:`THREADS` threads of the API
process; jobs beyond that wait their turn (``queued``). Its progress (``total``
once the plan is read, ``done`` as the broker confirms each batch) is read by
``GET /v1/replays/{id}``.

Jobs are kept in the memory of the API process that took them, the last
:data:`KEPT` of them: a restart forgets them, and with several API processes a
job is known to the one that took it only. A process that shuts down stops its
running jobs at the next batch (``failed``, saying how many were sent) and the
log is told of what was sent; a process killed mid-job may have sent part of
it. Both are safe to run again: a replay of the same range skips what the log
shows pending or delivered, and receivers deduplicate on ``webhook-id``.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from workers.deliverylog.store import LogStore
from workers.errors import HooklineError, ReplayJobNotFound, ReplayStopped
from workers.observability.logs import get_logger
from workers.ops import replay as operations
from workers.settings import Settings
from workers.subscriptions.store import SubscriptionStore

log = get_logger(component="api_replays")

THREADS = 2  # jobs running at once per process; each holds its plan in memory and a broker connection
KEPT = 1000  # jobs remembered per process, finished ones forgotten oldest first
STOP_WAIT_SECONDS = 5.0  # how long closing waits for running jobs to reach their next batch (one confirm)

JobState = Literal["queued", "running", "succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """What a job replays: ``hookline replay``'s options."""

    subscription_id: str
    since: datetime
    until: datetime | None
    selection: str
    dry_run: bool

    def to_record(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "since": self.since,
            "until": self.until,
            "state": self.selection,
            "dry_run": self.dry_run,
        }


@dataclass(slots=True)
class ReplayJob:
    id: str
    request: ReplayRequest
    state: JobState = "queued"
    total: int | None = None  # deliveries to send, once the plan is read
    done: int = 0  # deliveries the broker confirmed
    error: str | None = None
    result: dict[str, Any] | None = None  # hookline replay --json's: the plan (dry run) or the report
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "request": self.request.to_record(),
            "total": self.total,
            "done": self.done,
            "error": self.error,
            "result": self.result,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class ReplayJobs:
    """The jobs of this process and the threads that run them; every method is safe from any thread."""

    def __init__(
        self,
        settings: Settings,
        subscriptions: SubscriptionStore,
        log_store: LogStore,
        *,
        threads: int = THREADS,
    ) -> None:
        self._settings = settings
        self._subscriptions = subscriptions
        self._log = log_store
        self._threads = threads
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, ReplayJob] = OrderedDict()
        self._waiting: queue.Queue[ReplayJob | None] = queue.Queue()
        self._runners: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self, request: ReplayRequest) -> dict[str, Any]:
        """Queue a job for ``request``; the job as it stands."""
        job = ReplayJob(id=f"rj_{uuid.uuid4().hex}", request=request)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
            self._start_runners()
            record = job.to_record()
        self._waiting.put(job)
        log.info("replay_job_queued", job_id=job.id, subscription_id=request.subscription_id)
        return record

    def get(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise ReplayJobNotFound(
                    f"no replay job with id {job_id[:100]!r} in this API process: jobs are kept in the "
                    "memory of the process that took them, which may have restarted, or be another replica"
                )
            return job.to_record()

    def close(self, timeout: float = STOP_WAIT_SECONDS) -> None:
        """Stop running jobs at their next batch and wait for them, up to ``timeout`` seconds."""
        self._stopping.set()
        for _ in self._runners:
            self._waiting.put(None)
        for runner in self._runners:
            runner.join(timeout / len(self._runners))

    def _start_runners(self) -> None:
        while len(self._runners) < self._threads:
            # Daemons: a job still reading its plan when the process exits must not keep it alive.
            runner = threading.Thread(target=self._run_forever, name="replay-job", daemon=True)
            runner.start()
            self._runners.append(runner)

    def _forget_old(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.finished]
        for job_id in finished[: max(0, len(self._jobs) - KEPT)]:
            del self._jobs[job_id]

    def _run_forever(self) -> None:
        while not self._stopping.is_set():
            job = self._waiting.get()
            if job is None:
                return
            self._run(job)

    def _run(self, job: ReplayJob) -> None:
        self._update(job, state="running", started_at=datetime.now(UTC))
        try:
            result = self._replay(job)
        except HooklineError as exc:
            self._finish(job, "failed", error=str(exc))
        except Exception as exc:
            # A bug: logged with its trace; the job says only where to look, as a 500 would.
            log.exception("replay_job_crashed", job_id=job.id, error=type(exc).__name__)
            self._finish(job, "failed", error="the replay job failed; the error is in the API's log")
        else:
            self._finish(job, "succeeded", result=result)

    def _replay(self, job: ReplayJob) -> dict[str, Any]:
        request = job.request
        if self._stopping.is_set():
            raise ReplayStopped("not started: the API process shut down first")
        planned = operations.plan(
            self._subscriptions,
            self._log,
            request.subscription_id,
            since=request.since,
            until=request.until,
            selection=request.selection,
        )
        self._update(job, total=len(planned.sendable))
        if request.dry_run:
            return planned.to_record()

        def progress(done: int, total: int) -> None:
            self._update(job, done=done)
            if self._stopping.is_set() and done < total:
                raise ReplayStopped(f"stopped after {done} of {total}: the API process shut down")

        return operations.replay(self._settings, planned, on_progress=progress).to_record()

    def _update(self, job: ReplayJob, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(job, name, value)

    def _finish(
        self,
        job: ReplayJob,
        state: JobState,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        self._update(job, state=state, error=error, result=result, finished_at=datetime.now(UTC))
        log.info(
            "replay_job_finished", job_id=job.id, state=state, total=job.total, done=job.done, error=error
        )
