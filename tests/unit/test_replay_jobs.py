"""The API's replay jobs: progress batch by batch, a stop at the next batch on shutdown, a bounded memory.

The replay itself (reading the plan, publishing) is stood in for here; it runs
against the real broker and databases in tests/integration/test_api_replays.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from workers.api import replayjobs
from workers.api.replayjobs import ReplayJobs, ReplayRequest
from workers.deliverylog.queries import ReplayCandidate
from workers.deliverylog.records import DeliveryState
from workers.errors import ReplayError, ReplayJobNotFound
from workers.ops.replay import Plan, Progress, Report
from workers.settings import Settings

SINCE = datetime(2026, 3, 10, 11, tzinfo=UTC)
DEAD = DeliveryState.DEAD_LETTERED


class FakeReplay:
    """``plan`` and ``replay`` of workers.ops.replay: ``batches`` of 50, each waiting for ``go`` if given."""

    def __init__(
        self, batches: int, *, go: threading.Event | None = None, refusal: str | None = None
    ) -> None:
        self.batches = batches
        self.go = go
        self.refusal = refusal
        self.started = threading.Event()

    def plan(self, _subscriptions: Any, _log: Any, subscription_id: str, **_options: Any) -> Plan:
        if self.refusal is not None:
            raise ReplayError(self.refusal)
        return Plan(subscription_id, SINCE, None, "failed", [_candidate()] * (50 * self.batches))

    def replay(self, _settings: Settings, planned: Plan, *, on_progress: Progress) -> Report:
        total = len(planned.sendable)
        self.started.set()
        for batch in range(1, self.batches + 1):
            if self.go is not None:
                self.go.wait(5)
            on_progress(50 * batch, total)
        return Report(replayed=[("evt_1", "rp_1")] * total)


def _candidate() -> ReplayCandidate:
    return ReplayCandidate(
        "dlv_1", "evt_1", "sub_1", "", "order.created", "2026-03-10T11:00:00Z", "{}", SINCE, DEAD, 8
    )


@pytest.fixture
def jobs() -> Iterator[ReplayJobs]:
    made = ReplayJobs(Settings(), subscriptions=None, log_store=None)  # type: ignore[arg-type]
    yield made
    made.close(timeout=1)


def use(monkeypatch: pytest.MonkeyPatch, fake: FakeReplay) -> None:
    monkeypatch.setattr(replayjobs.operations, "plan", fake.plan)
    monkeypatch.setattr(replayjobs.operations, "replay", fake.replay)


def request(*, dry_run: bool = False) -> ReplayRequest:
    return ReplayRequest("sub_1", SINCE, None, "failed", dry_run)


def finished(jobs: ReplayJobs, job_id: str) -> dict[str, Any]:
    for _ in range(500):
        found = jobs.get(job_id)
        if found["state"] in ("succeeded", "failed"):
            return found
        threading.Event().wait(0.01)
    raise AssertionError(f"job {job_id} did not finish: {jobs.get(job_id)}")


def test_a_job_is_queued_then_counts_what_it_sent_and_keeps_the_report(
    jobs: ReplayJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, FakeReplay(batches=3))

    queued = jobs.start(request())
    done = finished(jobs, queued["id"])

    assert (queued["state"], queued["total"], queued["done"]) == ("queued", None, 0)
    assert (done["state"], done["total"], done["done"], done["error"]) == ("succeeded", 150, 150, None)
    assert len(done["result"]["replayed"]) == 150
    assert done["started_at"] is not None
    assert done["finished_at"] is not None


def test_a_dry_run_keeps_the_plan_and_sends_nothing(
    jobs: ReplayJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeReplay(batches=2)
    use(monkeypatch, fake)

    done = finished(jobs, jobs.start(request(dry_run=True))["id"])

    assert (done["state"], done["total"], done["done"]) == ("succeeded", 100, 0)
    assert len(done["result"]["to_send"]) == 100
    assert not fake.started.is_set()


def test_a_refused_replay_fails_the_job_saying_why(jobs: ReplayJobs, monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeReplay(batches=1, refusal="subscription sub_1 is disabled"))

    done = finished(jobs, jobs.start(request())["id"])

    assert (done["state"], done["error"], done["result"]) == (
        "failed",
        "subscription sub_1 is disabled",
        None,
    )


def test_shutting_down_stops_a_running_job_at_its_next_batch_saying_how_far_it_got(
    jobs: ReplayJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = threading.Event()
    fake = FakeReplay(batches=4, go=go)
    use(monkeypatch, fake)
    job = jobs.start(request())
    fake.started.wait(5)

    stopping = threading.Thread(target=jobs.close)
    stopping.start()
    go.set()
    stopping.join(5)

    done = jobs.get(job["id"])
    assert (done["state"], done["done"]) == ("failed", 50)
    assert done["error"] == "stopped after 50 of 200: the API process shut down"


def test_only_the_last_jobs_are_remembered_and_a_forgotten_one_is_not_found(
    jobs: ReplayJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, FakeReplay(batches=1, refusal="refused"))
    monkeypatch.setattr(replayjobs, "KEPT", 2)
    first = jobs.start(request())["id"]
    finished(jobs, first)
    second = jobs.start(request())["id"]
    finished(jobs, second)

    third = jobs.start(request())["id"]

    with pytest.raises(ReplayJobNotFound):
        jobs.get(first)
    assert {jobs.get(second)["id"], jobs.get(third)["id"]} == {second, third}
