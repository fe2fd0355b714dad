"""``POST /v1/events``: publish one event in the wire contract, answered once RabbitMQ confirmed it.

The body is the event exactly as an AMQP publisher sends it (docs/wire-contract.md),
checked by the producer's own validation, so an event the API takes is one the
workers take. 202 means the broker stored it; otherwise a problem detail says
why it was not taken (refused as invalid, 422 naming the field; too large,
413; the broker unreachable or refusing, 503: publish it again, with the same
``id``). ``Idempotency-Key`` is honoured as on every create.

This is the API's busiest route, so :class:`Shortcut` answers it below
FastAPI: FastAPI's routing through every router and its dependency handling
cost more CPU than the publish itself. The route stays declared with FastAPI,
which documents it (docs/openapi.json) and would serve it the same way; both
run :func:`publish` after the same key check, and both answer errors with the
same problem details.

The events of the delivery log are read under the same prefix
(``GET /v1/events/{id}``, :mod:`workers.api.routes.history`).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from producer.errors import InvalidEvent, ProducerError
from producer.event import FIELDS, Event, decode_json
from workers.api import problems
from workers.api.auth import api_key, bearer
from workers.api.idempotency import Answer, answer_once
from workers.api.keys import ApiKey
from workers.api.limits import json_body
from workers.api.services import Services
from workers.errors import HooklineError

PATH = "/v1/events"

router = APIRouter(
    prefix=PATH,
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
    await json_body(request)  # called, not a dependency: the shortcut resolves none
    raw = await request.body()
    try:
        event = Event.from_json(raw, max_bytes=services.settings.max_event_bytes)
    except InvalidEvent as exc:
        return _refused(exc, raw)

    async def run() -> Answer:
        await services.publisher.publish(event)
        # Where the event will be once the recorder has written it (404 until then).
        location = f"/v1/events/{quote(event.id, safe='')}"
        return Answer(202, {"id": event.id, "type": event.type, "timestamp": event.timestamp}, location)

    return await answer_once(request, key, services.idempotency, run)


(ROUTE,) = router.routes  # what the metrics read the route template from


class Shortcut:
    """ASGI middleware answering ``POST /v1/events`` itself; every other request goes on to ``app``.

    Installed inside the request metrics and the body limit, which see this
    route as any other. The errors FastAPI's exception handlers would answer
    are answered here by the same functions; any other error goes on up to
    the server-error middleware, as it would from a FastAPI route.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_publish(scope):
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE
        request = Request(scope, receive)
        response: Response
        try:
            key = await api_key(request, await bearer(request))
            response = await publish(request, key)
        except (HooklineError, ProducerError, RequestValidationError) as exc:
            response = await problems.answer(request, exc)
        await response(scope, receive, send)


def _is_publish(scope: Scope) -> bool:
    # The path as Starlette's router matches it: with or without the root path a proxy mounts us under.
    paths = (PATH, scope.get("root_path", "") + PATH)
    return scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in paths


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
