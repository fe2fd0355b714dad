"""``POST /v1/events``: publish one event in the wire contract, answered once RabbitMQ confirmed it.

The body is the event exactly as an AMQP publisher sends it (docs/wire-contract.md),
checked by the producer's own validation, so an event the API takes is one the
workers take. 202 means the broker stored it; otherwise a problem detail says
why it was not taken (refused as invalid, 422 naming the field; too large,
413; the broker unreachable or refusing, 503: publish it again, with the same
``id``). ``Idempotency-Key`` is honoured as on every create.

The events and deliveries of the delivery log will be read under the same
prefix (``GET /v1/events/{id}``) once the log lands.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from producer.errors import InvalidEvent
from producer.event import FIELDS, Event, decode_json
from workers.api import problems
from workers.api.auth import api_key
from workers.api.idempotency import Answer, answer_once
from workers.api.keys import ApiKey
from workers.api.limits import json_body
from workers.api.services import Services

router = APIRouter(
    prefix="/v1/events",
    tags=["events"],
    dependencies=[Depends(api_key)],
    responses=problems.documented(401, 403, 409, 413, 415, 422, 503),
)
# An event valid in every field: a field is judged alone by putting it in this one.
_VALID = {"id": "evt_valid", "type": "valid", "timestamp": "2024-05-01T12:00:00Z", "data": {}}


class Published(BaseModel):
    id: str
    type: str
    timestamp: str


@cache
def event_schema() -> dict[str, Any]:
    """The wire contract's JSON Schema (producer/event.schema.json), as the OpenAPI body schema."""
    schema: dict[str, Any] = json.loads(resources.files("producer").joinpath("event.schema.json").read_text())
    return {key: value for key, value in schema.items() if key not in ("$schema", "$id")}


@router.post(
    "",
    status_code=202,
    response_model=Published,
    summary="Publish an event; answered once RabbitMQ confirmed it",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": event_schema()}}}
    },
)
async def publish(request: Request, key: Annotated[ApiKey, Depends(api_key)]) -> Response:
    services: Services = request.app.state.services
    await json_body(request)  # called, not a dependency: the busiest route saves a dependency's cost
    raw = await request.body()
    try:
        event = Event.from_json(raw, max_bytes=services.settings.max_event_bytes)
    except InvalidEvent as exc:
        return _refused(exc, raw)

    async def run() -> Answer:
        await services.publisher.publish(event)
        return Answer(202, {"id": event.id, "type": event.type, "timestamp": event.timestamp})

    return await answer_once(request, key, services.idempotency, run)


def _refused(exc: InvalidEvent, raw: bytes) -> JSONResponse:
    kind = problems.kind_of(exc)
    assert kind is not None  # noqa: S101 - InvalidEvent and its subclasses are all in PROBLEMS
    return problems.respond(kind, str(exc), errors=field_errors(raw))


def field_errors(raw: bytes) -> list[problems.FieldError]:
    """Each field of an event the contract refuses, judged alone; none if the body is not a JSON object."""
    try:
        value = decode_json(raw)
    except InvalidEvent:
        return []
    if not isinstance(value, dict):
        return []
    missing = [(name, "missing") for name in FIELDS if name not in value]
    unknown = [(str(name), "not a field of an event") for name in value if name not in FIELDS]
    refused = missing + unknown
    if not refused:
        refused = [(name, problem) for name in FIELDS if (problem := _problem(name, value[name])) is not None]
    return [problems.FieldError(detail=detail, pointer=problems.pointer(name)) for name, detail in refused]


def _problem(name: str, value: object) -> str | None:
    try:
        Event(**{**_VALID, name: value})  # type: ignore[arg-type] # any JSON value may come in a body
    except InvalidEvent as exc:
        return str(exc)
    return None
