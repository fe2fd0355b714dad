"""``/v1/events/{id}`` and ``/v1/deliveries``: what ``hookline events show`` and ``hookline deliveries`` read.

Read from the delivery log (``HOOKLINE_LOG_DATABASE_URL``, or the subscription
store's database) through :class:`~workers.deliverylog.store.LogStore`, and
answered in the JSON the CLI prints with ``--json``, so a user moves between
them: an event with its payload and every delivery with its attempts; a page
of deliveries, newest first, filtered by subscription, event type pattern,
state and time range, with the CLI's cursor; one delivery with its event and
attempts. The log holds no secret, so a read-only key reads all of it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from workers.api import problems
from workers.api.auth import api_key
from workers.api.services import Services
from workers.deliverylog import queries
from workers.deliverylog.records import DeliveryState
from workers.deliverylog.shapes import delivery_json, event_json
from workers.errors import (
    DeliveryNotFound,
    EventNotFound,
    InvalidCursor,
    InvalidSubscription,
    LogEntryNotFound,
)
from workers.subscriptions.patterns import validate_pattern

DEFAULT_PAGE, MAX_PAGE = 50, 500
StateName = Literal["pending", "delivered", "retrying", "dead_lettered", "skipped"]

router = APIRouter(
    prefix="/v1",
    tags=["delivery log"],
    dependencies=[Depends(api_key)],
    responses=problems.documented(401, 422, 503),
)
FOUND = problems.documented(404)


class Attempt(BaseModel):
    id: str = Field(description="The delivery's id and the attempt's number.")
    attempt: int
    started_at: datetime
    duration: float = Field(description="Seconds, from the request's start to the end of the answer.")
    status: int | None = Field(description="The endpoint's HTTP status, if it answered.")
    reason: str | None = Field(description="Why it failed: http_status, timeout, connect, dns, tls, …")
    error: str | None
    response_body: str | None = Field(description="The start of the endpoint's answer.")
    state: StateName = Field(description="Where the delivery stood after this attempt.")
    next_attempt_at: datetime | None


class Delivery(BaseModel):
    id: str
    event_id: str
    event_type: str
    subscription_id: str
    run: str = Field(description='"" for the first delivery of the event; `rp_…` for each replay.')
    state: StateName
    attempt_count: int
    last_status: int | None
    last_reason: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    received_at: datetime = Field(description="When the event was received: what pages are ordered by.")
    updated_at: datetime


class DeliveryWithAttempts(Delivery):
    attempts: list[Attempt] = Field(description="Oldest first.")


class Event(BaseModel):
    id: str
    type: str
    timestamp: str = Field(description='The event\'s own, as published; "" until its record is written.')
    received_at: datetime
    matched: int | None = Field(description="Subscriptions it matched; null until its record is written.")


class EventWithPayload(Event):
    payload: Any = Field(
        description="The webhook body as JSON; null once HOOKLINE_LOG_PAYLOAD_RETENTION has passed."
    )


class EventDetail(BaseModel):
    event: EventWithPayload
    deliveries: list[DeliveryWithAttempts] = Field(description="By subscription, then run.")


class DeliveryDetail(Delivery):
    event: Event | None = Field(description="Null if the log no longer holds the event.")
    attempts: list[Attempt] = Field(description="Oldest first.")


class DeliveryPage(BaseModel):
    deliveries: list[Delivery] = Field(description="Newest event first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


@router.get(
    "/events/{event_id:path}",
    response_model=EventDetail,
    summary="An event from the delivery log, with every delivery and attempt",
    responses=FOUND,
)
def get_event(event_id: str, request: Request) -> dict[str, Any]:
    try:
        history = _services(request).migrated_log().event(event_id)
    except LogEntryNotFound as exc:
        raise EventNotFound(str(exc)) from exc
    return event_json(history)


@router.get(
    "/deliveries", response_model=DeliveryPage, summary="List deliveries from the delivery log, newest first"
)
def list_deliveries(
    request: Request,
    *,
    subscription_id: Annotated[str | None, Query(description="Only this subscription's.")] = None,
    event_type: Annotated[
        str | None, Query(description="Only event types matching this type or pattern (`order.*`, `#`).")
    ] = None,
    state: StateName | None = None,
    since: Annotated[AwareDatetime | None, Query(description="Events received at or after then.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="... and before then.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
) -> dict[str, Any] | JSONResponse:
    if cursor is not None and (refused := _refused_cursor(cursor)) is not None:
        return refused
    if event_type is not None:
        _check_pattern(event_type)
    page = (
        _services(request)
        .migrated_log()
        .deliveries(
            subscription_id=subscription_id,
            event_type_pattern=event_type,
            state=None if state is None else DeliveryState(state),
            since=utc(since, ("query", "since")),
            until=utc(until, ("query", "until")),
            limit=limit,
            cursor=cursor,
        )
    )
    return {"deliveries": [each.to_record() for each in page.deliveries], "next_cursor": page.next_cursor}


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryDetail,
    summary="A delivery from the delivery log, with its event and attempts",
    responses=FOUND,
)
def get_delivery(delivery_id: str, request: Request) -> dict[str, Any]:
    try:
        history = _services(request).migrated_log().delivery(delivery_id)
    except LogEntryNotFound as exc:
        raise DeliveryNotFound(str(exc)) from exc
    return delivery_json(history, with_event=True)


def utc(moment: datetime | None, location: tuple[str, str]) -> datetime | None:
    """``moment`` in UTC; 422 naming ``location`` (``("query", "since")``) if that is out of range."""
    if moment is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        message = "out of range once converted to UTC"
        raise RequestValidationError([{"loc": location, "msg": message, "type": "value_error"}]) from exc


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _refused_cursor(cursor: str) -> JSONResponse | None:
    try:
        queries.decode_cursor(cursor)
    except ValueError:
        detail = "not a cursor this API or `hookline deliveries list` handed out"
        kind = problems.PROBLEMS[InvalidCursor]
        return problems.respond(kind, detail, errors=[problems.FieldError(detail=detail, parameter="cursor")])
    return None


def _check_pattern(pattern: str) -> None:
    try:
        validate_pattern(pattern)
    except InvalidSubscription as exc:
        raise RequestValidationError(
            [{"loc": ("query", "event_type"), "msg": str(exc), "type": "value_error"}]
        ) from exc
