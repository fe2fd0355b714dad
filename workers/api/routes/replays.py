"""Replays from the delivery log: one delivery at once, or a subscription's time range as a job to poll.

``POST /v1/deliveries/{id}/replay`` sends one logged delivery again, whatever
its state, and answers once the broker stored it, with the new delivery's
``Location``. ``POST /v1/replays`` is ``hookline replay``: it checks the
subscription, then reads the plan and sends it on a background thread
(:mod:`workers.api.replayjobs`), answering 202 with the job at once;
``GET /v1/replays/{id}`` shows its progress and, once finished, what
``hookline replay --json`` prints (the plan, for a dry run). Both send fresh
deliveries of the same webhooks through :mod:`workers.ops.replay`: same
``webhook-id``, signed afresh, from attempt 1, in a run of their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from workers.api import problems
from workers.api.auth import api_key
from workers.api.idempotency import Answer, answer_once
from workers.api.keys import ApiKey
from workers.api.limits import json_body
from workers.api.replayjobs import JobState, ReplayRequest
from workers.api.routes.history import StateName, utc
from workers.api.services import Services
from workers.deliverylog.queries import DeliveryHistory, ReplayCandidate
from workers.deliverylog.records import delivery_id as delivery_id_of
from workers.errors import DeliveryNotFound, LogEntryNotFound, ReplayError, SubscriptionNotFound
from workers.ops import replay as operations
from workers.ops.replay import SELECTIONS, Plan

Selection = Literal["failed", "dead", "skipped", "all"]
assert set(SELECTIONS) == set(get_args(Selection))  # noqa: S101 - the API offers exactly what the CLI does

router = APIRouter(
    prefix="/v1",
    tags=["replays"],
    dependencies=[Depends(api_key)],
    responses=problems.documented(401, 403, 422),
)
REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"model": problems.Problem, "description": "The subscription is disabled or removed."}
}


class NewReplay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscription_id: str = Field(min_length=1, max_length=255, description="Replay to this subscription.")
    since: AwareDatetime = Field(description="Events received at or after then.")
    until: AwareDatetime | None = Field(default=None, description="... and before then; default: now.")
    state: Selection = Field(
        default="failed",
        description="Whose latest delivery is: failed (retrying or dead-lettered), dead, skipped, or all.",
    )
    dry_run: bool = Field(default=False, description="Read what would be sent, send nothing.")


class Replayed(BaseModel):
    event_id: str
    run: str = Field(description="The run the fresh delivery is in (`rp_…`).")


class ReplayReport(BaseModel):
    """What ``hookline replay --json`` prints once it sent."""

    replayed: list[Replayed]
    without_payload: list[str] = Field(description="Events whose payload the log no longer keeps: not sent.")
    log_not_told: str | None = Field(
        description="Why the delivery log does not show the replays, if it does not."
    )


class Planned(BaseModel):
    event_id: str
    event_type: str
    received_at: datetime
    state: StateName


class ReplayPlan(BaseModel):
    """What ``hookline replay --dry-run --json`` prints."""

    subscription_id: str
    since: datetime
    until: datetime | None
    state: Selection
    to_send: list[Planned]
    without_payload: list[str]


class ReplayRequestOut(BaseModel):
    subscription_id: str
    since: datetime
    until: datetime | None
    state: Selection
    dry_run: bool


class ReplayJob(BaseModel):
    id: str
    state: JobState = Field(description="queued, running, then succeeded or failed.")
    request: ReplayRequestOut
    total: int | None = Field(description="Deliveries to send; null until the plan is read.")
    done: int = Field(description="Deliveries sent so far, each confirmed by RabbitMQ.")
    error: str | None = Field(description="Why the job failed (what was sent before stays sent).")
    result: ReplayPlan | ReplayReport | None = Field(
        description="Once succeeded: the plan (dry run) or what was sent."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@router.post(
    "/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=ReplayReport,
    summary="Send one delivery from the delivery log again; answered once RabbitMQ stored it",
    responses={**problems.documented(404, 503), **REFUSED},
)
def replay_delivery(delivery_id: str, request: Request) -> JSONResponse:
    services = _services(request)
    try:
        history = services.migrated_log().delivery(delivery_id)
    except LogEntryNotFound as exc:
        raise DeliveryNotFound(str(exc)) from exc
    subscription_id = history.delivery.subscription_id
    check_enabled(services, subscription_id, removed_is_refused=True)
    candidate = _candidate(history)
    planned = Plan(subscription_id, candidate.received_at, None, "all", [candidate])
    report = operations.replay(services.settings, planned)
    ((event_id, run),) = report.replayed
    body = ReplayReport.model_validate(report.to_record()).model_dump(mode="json")
    location = f"{router.prefix}/deliveries/{delivery_id_of(event_id, subscription_id, run)}"
    return JSONResponse(body, status_code=202, headers={"Location": location})


@router.post(
    "/replays",
    status_code=202,
    response_model=ReplayJob,
    summary="Replay a subscription's deliveries of a time range, as a job to poll",
    responses={
        **problems.documented(400, 404, 413, 415, 503),
        409: {
            "model": problems.Problem,
            "description": "The subscription is disabled, or the first request with this "
            "Idempotency-Key is still running.",
        },
    },
    dependencies=[Depends(json_body)],
)
async def start_replay(
    body: NewReplay, request: Request, key: Annotated[ApiKey, Depends(api_key)]
) -> Response:
    services = _services(request)
    asked = _request_of(body)

    async def run() -> Answer:
        await run_in_threadpool(services.migrated_log)
        await run_in_threadpool(check_enabled, services, asked.subscription_id)
        job = ReplayJob.model_validate(services.replays.start(asked)).model_dump(mode="json")
        return Answer(202, job, location=f"{router.prefix}/replays/{job['id']}")

    return await answer_once(request, key, services.idempotency, run)


@router.get(
    "/replays/{job_id}",
    response_model=ReplayJob,
    summary="A replay job: its progress, and once finished what it sent",
    responses=problems.documented(404),
)
async def get_replay(job_id: str, request: Request) -> dict[str, Any]:
    return _services(request).replays.get(job_id)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _request_of(body: NewReplay) -> ReplayRequest:
    """The job's request, its times in UTC; 422 naming ``until`` for an empty range."""
    since = utc(body.since, ("body", "since"))
    until = utc(body.until, ("body", "until"))
    assert since is not None  # noqa: S101 - since is required; narrows for mypy
    if until is not None and until <= since:
        message = "must be later than since"
        raise RequestValidationError([{"loc": ("body", "until"), "msg": message, "type": "value_error"}])
    return ReplayRequest(body.subscription_id, since, until, body.state, body.dry_run)


def check_enabled(services: Services, subscription_id: str, *, removed_is_refused: bool = False) -> None:
    """Refuse a replay to ``subscription_id`` unless it is enabled: ReplayError (409) if it is disabled.

    Its deliveries would only become dead letters. A removed one is
    SubscriptionNotFound (404), or, with ``removed_is_refused`` (replaying a
    delivery that exists), a ReplayError too. Public because every way to
    start a replay (these routes, the console's range replay) must refuse the
    same subscriptions with the same words.
    """
    try:
        subscription = services.subscriptions.get(subscription_id)
    except SubscriptionNotFound as exc:
        if not removed_is_refused:
            raise
        raise ReplayError(
            f"subscription {subscription_id} was removed: its deliveries cannot be sent"
        ) from exc
    if not subscription.enabled:
        raise ReplayError(
            f"subscription {subscription_id} is disabled: its deliveries would become dead letters; "
            f"resume it first (POST /v1/subscriptions/{subscription_id}/resume)"
        )


def _candidate(history: DeliveryHistory) -> ReplayCandidate:
    """The delivery as a replay sends it; ReplayError once the log no longer keeps its payload."""
    delivery, event = history.delivery, history.event
    if event is None or event.payload is None:
        raise ReplayError(
            f"the delivery log no longer keeps the payload of event {delivery.event_id}: "
            "it cannot be sent again"
        )
    return ReplayCandidate(
        delivery_id=delivery.id,
        event_id=delivery.event_id,
        subscription_id=delivery.subscription_id,
        run=delivery.run,
        event_type=delivery.event_type,
        event_timestamp=event.timestamp,
        payload=event.payload,
        received_at=delivery.received_at,
        state=delivery.state,
        attempts=delivery.attempts,
    )
