"""Every error the API answers, as an RFC 9457 problem detail with a stable ``type``.

A client tells errors apart by ``type`` (``urn:hookline:problem:<name>``, each
listed in docs/api.md), never by parsing ``detail``. A validation error names
each field it refuses in ``errors``: a JSON Pointer into the body
(``"pointer": "#/url"``), or the query or path ``parameter``, or the ``header``.

The mapping is by exception type (:data:`PROBLEMS`, looked up along the
exception's classes), so a new error raised anywhere below answers with its
problem as soon as its type is listed; anything unlisted is a 500 whose
``detail`` says nothing of the cause, which is logged instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from producer.errors import (
    BrokerUnavailable,
    ConfirmTimeout,
    EventTooLarge,
    ExchangeNotFound,
    InvalidEvent,
    ProducerError,
    PublishError,
)
from workers.errors import (
    ApiKeyNotFound,
    BrokerUnreachable,
    DatabaseNotMigrated,
    DeadLetterError,
    DeadLetterNotFound,
    DeliveryNotFound,
    EventNotFound,
    HooklineError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidCursor,
    InvalidSubscription,
    LogStoreError,
    NotAuthenticated,
    ParkedMessageNotFound,
    ReadOnlyKey,
    ReplayError,
    ReplayJobNotFound,
    ReplayRefused,
    RequestTooLarge,
    RetryNotStored,
    SecretsKeyError,
    StoreError,
    SubscriptionNotFound,
    UnsupportedMediaType,
)
from workers.observability.logs import get_logger

log = get_logger(component="api")

TYPE_PREFIX = "urn:hookline:problem:"
MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    """One refused field: where it is (one of pointer, parameter, header) and what is wrong with it."""

    detail: str
    pointer: str | None = Field(default=None, description="JSON Pointer into the request body, e.g. `#/url`.")
    parameter: str | None = Field(default=None, description="A query or path parameter.")
    header: str | None = Field(default=None, description="A request header.")


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = Field(description="Stable identifier of the kind of problem: `urn:hookline:problem:<name>`.")
    title: str = Field(description="The kind of problem, in words; the same for every problem of a type.")
    status: int = Field(description="The HTTP status code of the answer.")
    detail: str = Field(description="What went wrong with this request.")
    errors: list[FieldError] | None = Field(default=None, description="Each refused field, if any.")


@dataclass(frozen=True, slots=True)
class Kind:
    status: int
    name: str
    title: str

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.name


# Looked up along an exception's classes, nearest first: a subclass listed here wins over its base.
PROBLEMS: Mapping[type[BaseException], Kind] = {
    NotAuthenticated: Kind(401, "unauthorized", "An API key is required"),
    ReadOnlyKey: Kind(403, "read-only-key", "This API key may only read"),
    SubscriptionNotFound: Kind(404, "subscription-not-found", "No such subscription"),
    ApiKeyNotFound: Kind(404, "api-key-not-found", "No such API key"),
    EventNotFound: Kind(404, "event-not-found", "No such event in the delivery log"),
    DeliveryNotFound: Kind(404, "delivery-not-found", "No such delivery in the delivery log"),
    DeadLetterNotFound: Kind(404, "dead-letter-not-found", "No such dead letter"),
    ParkedMessageNotFound: Kind(404, "parked-message-not-found", "No such parked message"),
    ReplayJobNotFound: Kind(404, "replay-job-not-found", "No such replay job"),
    IdempotencyKeyInUse: Kind(409, "idempotency-key-in-use", "The first request with this key is running"),
    ReplayRefused: Kind(409, "replay-refused", "The replay was refused"),
    RetryNotStored: Kind(503, "retry-not-stored", "RabbitMQ did not store the replayed deliveries"),
    ReplayError: Kind(409, "replay-refused", "The replay was refused"),
    RequestTooLarge: Kind(413, "request-too-large", "The request body is too large"),
    EventTooLarge: Kind(413, "event-too-large", "The event is larger than HOOKLINE_MAX_EVENT_BYTES"),
    UnsupportedMediaType: Kind(415, "unsupported-media-type", "The body must be application/json"),
    InvalidSubscription: Kind(422, "invalid-subscription", "The subscription is not valid"),
    InvalidEvent: Kind(422, "invalid-event", "The event breaks the wire contract"),
    InvalidCursor: Kind(422, "invalid-cursor", "The page cursor is not valid"),
    IdempotencyKeyReused: Kind(422, "idempotency-key-reused", "This key was used for another request"),
    SecretsKeyError: Kind(500, "secrets-key", "The server cannot read the signing secrets"),
    ExchangeNotFound: Kind(503, "exchange-not-found", "The exchange does not exist: run `hookline setup`"),
    BrokerUnavailable: Kind(503, "broker-unavailable", "RabbitMQ cannot be reached"),
    ConfirmTimeout: Kind(503, "confirm-timeout", "RabbitMQ did not confirm the event in time"),
    PublishError: Kind(503, "event-not-stored", "RabbitMQ did not take the event"),
    BrokerUnreachable: Kind(503, "broker-unavailable", "RabbitMQ cannot be reached"),
    DatabaseNotMigrated: Kind(503, "database-not-migrated", "The database needs `hookline setup`"),
    StoreError: Kind(503, "database-unavailable", "The database failed"),
    LogStoreError: Kind(503, "log-database-unavailable", "The delivery log's database failed"),
    DeadLetterError: Kind(503, "queue-unavailable", "A parking queue cannot be read or changed"),
}
MALFORMED = Kind(400, "malformed-body", "The body is not valid JSON")
NOT_FOUND = Kind(404, "not-found", "No such resource")
METHOD_NOT_ALLOWED = Kind(405, "method-not-allowed", "Method not allowed here")
VALIDATION = Kind(422, "validation-error", "The request is not valid")
INTERNAL = Kind(500, "internal-error", "Internal server error")
TOO_LARGE = PROBLEMS[RequestTooLarge]
_BY_STATUS = {kind.status: kind for kind in (MALFORMED, NOT_FOUND, METHOD_NOT_ALLOWED, TOO_LARGE, VALIDATION)}


_DESCRIPTIONS = {
    400: "The body is not valid JSON.",
    401: "No API key, or an unknown or revoked one.",
    403: "A read-only API key asked to change something.",
    404: "No such resource.",
    409: "The first request with this Idempotency-Key is still running: retry later.",
    413: "The request body, or the event in it, is too large.",
    415: "The request body is not application/json.",
    422: "The request is not valid; `errors` names each refused field.",
    503: "The database or RabbitMQ does not answer, or did not take the event.",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these statuses, each a problem detail (see workers/api/openapi.py)."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}


def respond(
    kind: Kind,
    detail: str,
    *,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    problem = Problem(type=kind.type, title=kind.title, status=kind.status, detail=detail)
    if errors:
        problem.errors = list(errors)
    body = problem.model_dump(exclude_none=True)
    return JSONResponse(body, status_code=kind.status, media_type=MEDIA_TYPE, headers=headers)


def kind_of(exc: BaseException) -> Kind | None:
    return next((PROBLEMS[cls] for cls in type(exc).__mro__ if cls in PROBLEMS), None)


def install(app: FastAPI) -> None:
    """Answer every error the app can meet as a problem detail."""
    app.add_exception_handler(RequestValidationError, _validation_failed)  # type: ignore[arg-type] # Starlette types handlers loosely
    app.add_exception_handler(HTTPException, _http_exception)  # type: ignore[arg-type] # as above
    # Known errors through Starlette's exception middleware, which answers them; anything else reaches
    # the server-error middleware, which answers 500 and hands the error on for the server to log.
    app.add_exception_handler(HooklineError, _any_error)
    app.add_exception_handler(ProducerError, _any_error)
    app.add_exception_handler(Exception, _any_error)


async def answer(
    request: Request, exc: HooklineError | ProducerError | RequestValidationError
) -> JSONResponse:
    """What the handlers :func:`install` registers answer ``exc``, for a route served outside FastAPI."""
    if isinstance(exc, RequestValidationError):
        return await _validation_failed(request, exc)
    return await _any_error(request, exc)


async def _validation_failed(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [field_error(error) for error in exc.errors()]
    named = ", ".join(_where(error) for error in errors)
    return respond(VALIDATION, f"invalid {named}", errors=errors)


async def _http_exception(_request: Request, exc: HTTPException) -> JSONResponse:
    kind = _BY_STATUS.get(exc.status_code, Kind(exc.status_code, "http-error", "HTTP error"))
    return respond(kind, str(exc.detail), headers=exc.headers)


async def _any_error(request: Request, exc: Exception) -> JSONResponse:
    kind = kind_of(exc)
    if kind is None:
        # The message may hold anything (a row value, a URL): it is logged, never answered.
        log.error("api_request_failed", path=request.url.path, error=type(exc).__name__, exc_info=exc)
        return respond(INTERNAL, "the server failed to answer this request; the error is in its log")
    headers = {"WWW-Authenticate": "Bearer"} if kind.status == 401 else None
    if kind.status >= 500:
        log.warning("api_dependency_failed", path=request.url.path, problem=kind.name, error=str(exc))
    return respond(kind, str(exc), headers=headers)


def field_error(error: Mapping[str, Any]) -> FieldError:
    """A pydantic error (``loc``, ``msg``) as the field it names."""
    location = [str(part) for part in error.get("loc", ())]
    message = str(error.get("msg", "invalid"))
    where, path = (location[0], location[1:]) if location else ("body", [])
    if where == "body":
        return FieldError(detail=message, pointer=pointer(*path))
    if where == "header":
        return FieldError(detail=message, header="-".join(path).replace("_", "-"))
    return FieldError(detail=message, parameter=".".join(path))


def _where(error: FieldError) -> str:
    if error.pointer is not None:
        return f"body field {error.pointer[1:] or '/'}"
    if error.header is not None:
        return f"header {error.header}"
    return f"parameter {error.parameter}"


def pointer(*parts: str) -> str:
    """A JSON Pointer (RFC 6901) into the request body, as a URI fragment: ``#/event_patterns/0``."""
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)
