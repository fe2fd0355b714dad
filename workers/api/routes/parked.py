"""Dead letters, invalid events and crashed messages: ``hookline dlq``, ``invalid``, ``crashed`` over HTTP.

``/v1/dead-letters``, ``/v1/invalid-events`` and ``/v1/crashed-messages``
each list a page (``limit`` from ``offset``, oldest first: sorted by when
each was parked, as a quorum queue keeps no stable order; dead letters also by
subscription), get one by id, replay one (202 once the broker confirmed the copy, and only
then is the parked message removed) and delete one, through
:mod:`workers.ops.dlq` and :mod:`workers.ops.parked`, answering the JSON the
CLI prints with ``--json``. A queue cannot be read without taking its
messages, so each request holds what it read until it answers (then the rest
returns); requests on the same queues take turns in this
process, and one that ran meanwhile elsewhere (the CLI, another API process)
may find a message missing. Read-only keys list and get; replay and delete
need a full key (:mod:`workers.api.auth`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from workers.api import problems
from workers.api.auth import api_key
from workers.api.services import Services
from workers.errors import DeadLetterNotFound, ParkedMessageNotFound, ReplayRefused
from workers.ops import dlq, parked
from workers.ops.dlq import Entry, PurgeReport, ReplayReport, Selection
from workers.ops.parked import Kind

DEFAULT_LIST, MAX_LIST = 50, 500
# A queue has no cursor to hand out: a page is named by how many of the sorted list come before it,
# as the console's Next and Previous links do.
Offset = Annotated[
    int,
    Query(ge=0, description="How many of the oldest (that the filters select) to skip: the page's start."),
]
ID_PATH = "/{message_id:path}"  # ids are message ids, which a publisher may give any visible characters
FOUND = problems.documented(404)
REFUSED: dict[int | str, dict[str, Any]] = {
    409: {
        "model": problems.Problem,
        "description": "Not replayed, and still parked: its subscription is disabled or removed, it is not "
        "a dead letter, or the broker did not confirm the copy.",
    }
}
_TURNS: dict[str, threading.Lock] = {
    "dead_letters": threading.Lock(),
    Kind.INVALID: threading.Lock(),
    Kind.CRASHED: threading.Lock(),
}


class DeadLetter(BaseModel):
    """A dead letter as ``hookline dlq show --json`` prints it; a message that is not one has fewer fields."""

    id: str
    malformed: bool = Field(
        description="Whether the message is not a dead letter (then `problem` and `body`)."
    )
    subscription_id: str | None
    event_id: str | None = None
    event_type: str | None = None
    event_timestamp: str | None = None
    payload: str | None = Field(default=None, description="The webhook body, as it was sent.")
    attempts: int | None = None
    first_attempt_at: str | None = None
    last_attempt_at: str | None = None
    last_status: int | None = None
    last_reason: str | None = None
    last_error: str | None = None
    cause: str | None = Field(default=None, description="exhausted, max_age, permanent, disabled, …")
    dead_lettered_at: str | None = None
    run: str | None = None
    problem: str | None = Field(default=None, description="Why the message is not a dead letter.")
    body: str | None = Field(default=None, description="The message as it is, if it is not a dead letter.")


class DeadLetterList(BaseModel):
    queue: str
    total: int = Field(description="Messages in the queue when the listing began.")
    dead_letters: list[DeadLetter] = Field(description="Oldest first, from `offset` on.")


class ParkedMessage(BaseModel):
    """A parked message as ``hookline invalid show --json`` prints it."""

    id: str
    queue: str
    reason: str | None = Field(description="Why it was parked.")
    origin: str | None = Field(description="The queue a crashed message came from.")
    routing_key: str | None = Field(description="An event's routing key, as it was published.")
    parked_at: str | None
    bytes: int
    body: str = Field(description="The message as it is (UTF-8, invalid bytes replaced).")


class ParkedList(BaseModel):
    queues: dict[str, int] = Field(description="Messages in each queue when the listing began.")
    messages: list[ParkedMessage] = Field(description="Oldest first, queue by queue, from `offset` on.")


class Refusal(BaseModel):
    id: str
    reason: str


class ParkedReplay(BaseModel):
    """What ``hookline dlq replay --json`` prints."""

    replayed: list[str]
    refused: list[Refusal]
    not_found: list[str]


dead_letters = APIRouter(
    prefix="/v1/dead-letters",
    tags=["dead letters"],
    dependencies=[Depends(api_key)],
    responses=problems.documented(401, 403, 422, 503),
)


@dead_letters.get(
    "",
    response_model=DeadLetterList,
    response_model_exclude_unset=True,
    summary="List dead letters, oldest first, leaving them in the queue",
)
def list_dead_letters(
    request: Request,
    subscription_id: Annotated[str | None, Query(description="Only this subscription's.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = DEFAULT_LIST,
    offset: Offset = 0,
) -> dict[str, Any]:
    selection = Selection.of_subscription(subscription_id) if subscription_id is not None else Selection()
    with _turn("dead_letters"):
        listing = dlq.page(_services(request).settings, selection, offset=offset, limit=limit)
    return {
        "queue": listing.queue,
        "total": listing.total,
        "dead_letters": [_letter(e) for e in listing.entries],
    }


@dead_letters.get(
    ID_PATH,
    response_model=DeadLetter,
    response_model_exclude_unset=True,
    summary="A dead letter, payload included",
    responses=FOUND,
)
def get_dead_letter(message_id: str, request: Request) -> dict[str, Any]:
    with _turn("dead_letters"):
        return _letter(dlq.find(_services(request).settings, message_id))


@dead_letters.post(
    ID_PATH + "/replay",
    status_code=202,
    response_model=ParkedReplay,
    summary="Deliver a dead letter again, from attempt 1; answered once RabbitMQ stored it",
    responses={**FOUND, **REFUSED},
)
def replay_dead_letter(message_id: str, request: Request) -> JSONResponse:
    services = _services(request)
    with _turn("dead_letters"):
        report = dlq.replay(services.settings, Selection.of_ids([message_id]), services.subscriptions)
    return _replayed(report, DeadLetterNotFound(f"no dead letter with id {message_id[:100]!r}"))


@dead_letters.delete(ID_PATH, status_code=204, summary="Remove a dead letter for good", responses=FOUND)
def delete_dead_letter(message_id: str, request: Request) -> Response:
    with _turn("dead_letters"):
        report = dlq.purge(_services(request).settings, Selection.of_ids([message_id]))
    return _purged(report, DeadLetterNotFound(f"no dead letter with id {message_id[:100]!r}"))


def parked_router(kind: Kind, prefix: str, tag: str) -> APIRouter:
    """The four routes of one kind of parked message (``hookline invalid``, ``hookline crashed``)."""
    router = APIRouter(
        prefix=prefix,
        tags=[tag],
        dependencies=[Depends(api_key)],
        responses=problems.documented(401, 403, 422, 503),
    )

    def missing(message_id: str) -> ParkedMessageNotFound:
        return ParkedMessageNotFound(f"no {kind} message with id {message_id[:100]!r}")

    @router.get("", response_model=ParkedList, summary=f"List {tag}, oldest first, leaving them parked")
    def list_(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = DEFAULT_LIST,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        with _turn(kind):
            listing = parked.page(_services(request).settings, kind, offset=offset, limit=limit)
        return {"queues": listing.totals, "messages": [entry.to_record() for entry in listing.entries]}

    @router.get(ID_PATH, response_model=ParkedMessage, summary=f"One of the {tag}", responses=FOUND)
    def get(message_id: str, request: Request) -> dict[str, Any]:
        with _turn(kind):
            try:
                return parked.find(_services(request).settings, kind, message_id).to_record()
            except DeadLetterNotFound as exc:
                raise missing(message_id) from exc

    @router.post(
        ID_PATH + "/replay",
        status_code=202,
        response_model=ParkedReplay,
        summary=f"Publish one of the {tag} again where it came from; answered once RabbitMQ stored it",
        responses={**FOUND, **REFUSED},
    )
    def replay(message_id: str, request: Request) -> JSONResponse:
        with _turn(kind):
            report = parked.replay(_services(request).settings, kind, [message_id])
        return _replayed(report, missing(message_id))

    @router.delete(ID_PATH, status_code=204, summary=f"Remove one of the {tag} for good", responses=FOUND)
    def delete(message_id: str, request: Request) -> Response:
        with _turn(kind):
            report = parked.purge(_services(request).settings, kind, [message_id])
        return _purged(report, missing(message_id))

    return router


invalid_events = parked_router(Kind.INVALID, "/v1/invalid-events", "invalid events")
crashed_messages = parked_router(Kind.CRASHED, "/v1/crashed-messages", "crashed messages")


@contextmanager
def _turn(queues: str) -> Iterator[None]:
    """Requests on the same queues take turns: one holding their messages would hide them from another."""
    with _TURNS[queues]:
        yield


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _letter(entry: Entry) -> dict[str, Any]:
    """The dead letter's record; one whose fields are not what a dead letter holds is shown as malformed."""
    record = entry.to_record()
    try:
        DeadLetter.model_validate(record)
    except ValidationError as exc:
        fields = ", ".join(str(error["loc"][0]) for error in exc.errors())
        problem = f"not a dead letter: {fields} of the wrong type"
        body = entry.body.decode("utf-8", errors="replace")
        return {"id": entry.id, "malformed": True, "problem": problem, "subscription_id": None, "body": body}
    return record


def _replayed(report: ReplayReport, not_found: Exception) -> JSONResponse:
    if report.not_found or not (report.replayed or report.refused):
        raise not_found
    if report.refused:
        raise ReplayRefused(report.refused[0].reason)
    return JSONResponse(report.to_record(), status_code=202)


def _purged(report: PurgeReport, not_found: Exception) -> Response:
    if report.not_found or not report.purged:
        raise not_found
    return Response(status_code=204)
