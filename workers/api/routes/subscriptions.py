"""``/v1/subscriptions``: what ``hookline subscriptions`` does, over HTTP.

Create (the signing secret is in the answer this once; ``Idempotency-Key``
honoured), list (cursor pages, by state, pattern or event type), get, update,
pause and resume (the CLI's ``disable`` and ``enable``), rotate the secret,
delete, and send a test event. Every field is validated by the store's own
validators, and a refused one is named in the problem's ``errors``. Every
change is announced to the workers, as the CLI announces it, so they reload at
once.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from workers.api import problems
from workers.api.auth import api_key
from workers.api.idempotency import Answer, answer_once
from workers.api.keys import ApiKey
from workers.api.limits import json_body
from workers.api.services import Services
from workers.errors import DeliveryFailed, InvalidCursor, InvalidSubscription
from workers.ops import probe
from workers.subscriptions import patterns
from workers.subscriptions.store import (
    DISABLED_FAILING,
    DISABLED_GONE,
    Subscription,
    validate_description,
    validate_patterns,
    validate_secret,
    validate_url,
)

State = Literal["healthy", "failing", "disabled_failing", "disabled_gone", "disabled_manual"]
StateFilter = Literal[
    "enabled", "disabled", "healthy", "failing", "disabled_failing", "disabled_gone", "disabled_manual"
]
DEFAULT_PAGE, MAX_PAGE = 50, 500
ID_PATH = "/{subscription_id}"

router = APIRouter(
    prefix="/v1/subscriptions",
    tags=["subscriptions"],
    dependencies=[Depends(api_key)],
    responses=problems.documented(401, 403, 422, 503),
)
Key = Annotated[ApiKey, Depends(api_key)]
WITH_BODY = problems.documented(400, 413, 415)
FOUND = problems.documented(404)


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Where to POST webhooks: http(s), with a host, no credentials.")
    event_patterns: list[str] = Field(
        description="Event type patterns: `order.created`, `order.*`, `order.#`, `#`."
    )
    secret: str | None = Field(default=None, description="Signing secret (`whsec_…`); generated if absent.")
    description: str = Field(default="", description="Free text for operators.")


class SubscriptionChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    event_patterns: list[str] | None = Field(default=None, description="Replaces every current pattern.")
    description: str | None = None


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(default=None, description="The new secret (`whsec_…`); generated if absent.")
    grace_seconds: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86400,
        description="How long the old secret stays valid; default HOOKLINE_SECRET_ROTATION_GRACE_SECONDS.",
    )


class SubscriptionOut(BaseModel):
    id: str
    url: str
    event_patterns: list[str]
    state: State
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    description: str
    rotating: bool = Field(description="Whether a previous secret still signs too, until it expires.")
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(SubscriptionOut):
    secret: str = Field(description="The signing secret: shown in this answer only.")


class SubscriptionPage(BaseModel):
    data: list[SubscriptionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class TestResult(BaseModel):
    subscription_id: str
    host: str
    ok: bool = Field(description="Whether the endpoint answered 2xx.")
    webhook_id: str | None = None
    status: int | None = Field(default=None, description="The endpoint's HTTP status, if it answered.")
    duration: float | None = None
    body: str | None = Field(default=None, description="The start of the endpoint's answer.")
    reason: str | None = Field(default=None, description="Why there was no answer: timeout, connect, dns, …")
    error: str | None = None


@router.post(
    "",
    status_code=201,
    response_model=SubscriptionWithSecret,
    summary="Create a subscription",
    responses={**WITH_BODY, **problems.documented(409)},
    dependencies=[Depends(json_body)],
)
async def create(body: NewSubscription, request: Request, key: Key) -> Response:
    services = _services(request)

    async def run() -> Answer:
        _check(
            url=body.url, event_patterns=body.event_patterns, secret=body.secret, description=body.description
        )
        added = await run_in_threadpool(
            services.subscriptions.add,
            body.url,
            body.event_patterns,
            secret=body.secret,
            description=body.description,
        )
        await run_in_threadpool(services.announce_change)
        created = SubscriptionWithSecret.model_validate(_with_secret(added)).model_dump(mode="json")
        return Answer(201, created, location=f"{router.prefix}/{added.id}")

    return await answer_once(request, key, services.idempotency, run)


@router.get("", response_model=SubscriptionPage, summary="List subscriptions, oldest first")
def list_(
    request: Request,
    *,
    state: StateFilter | None = None,
    pattern: Annotated[str | None, Query(description="Only those with this exact pattern.")] = None,
    event_type: Annotated[str | None, Query(description="Only those an event of this type goes to.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
) -> dict[str, Any]:
    after = _decode_cursor(cursor) if cursor is not None else None
    enabled = {"enabled": True, "disabled": False}.get(state or "")
    found = [
        each
        for each in _services(request).subscriptions.list(enabled=enabled)
        if _selected(each, state, pattern, event_type) and (after is None or _position(each) > after)
    ]
    page = found[:limit]
    more = len(found) > limit
    return {"data": [_out(each) for each in page], "next_cursor": _encode_cursor(page[-1]) if more else None}


@router.get(ID_PATH, response_model=SubscriptionOut, summary="Get a subscription", responses=FOUND)
def get(subscription_id: str, request: Request) -> dict[str, Any]:
    return _out(_services(request).subscriptions.get(subscription_id))


@router.patch(
    ID_PATH,
    response_model=SubscriptionOut,
    summary="Change a subscription's URL, patterns or description",
    responses={**FOUND, **WITH_BODY},
    dependencies=[Depends(json_body)],
)
def update(subscription_id: str, body: SubscriptionChanges, request: Request) -> dict[str, Any]:
    _check(url=body.url, event_patterns=body.event_patterns, description=body.description)
    services = _services(request)
    changed = services.subscriptions.update(
        subscription_id, url=body.url, event_patterns=body.event_patterns, description=body.description
    )
    services.announce_change()
    return _out(changed)


@router.post(ID_PATH + "/pause", response_model=SubscriptionOut, summary="Pause deliveries", responses=FOUND)
def pause(subscription_id: str, request: Request) -> dict[str, Any]:
    return _set_enabled(request, subscription_id, enabled=False)


@router.post(
    ID_PATH + "/resume", response_model=SubscriptionOut, summary="Resume deliveries", responses=FOUND
)
def resume(subscription_id: str, request: Request) -> dict[str, Any]:
    return _set_enabled(request, subscription_id, enabled=True)


@router.post(
    ID_PATH + "/rotate-secret",
    response_model=SubscriptionWithSecret,
    summary="Replace the signing secret; the old one signs too during the grace period",
    responses={**FOUND, **WITH_BODY},
    dependencies=[Depends(json_body)],
)
def rotate_secret(
    subscription_id: str, request: Request, body: SecretRotation | None = None
) -> dict[str, Any]:
    body = body or SecretRotation()
    _check(secret=body.secret)
    services = _services(request)
    grace = (
        services.settings.secret_rotation_grace_seconds if body.grace_seconds is None else body.grace_seconds
    )
    rotated = services.subscriptions.rotate_secret(
        subscription_id, new_secret=body.secret, grace=timedelta(seconds=grace)
    )
    services.announce_change()
    return _with_secret(rotated)


@router.delete(ID_PATH, status_code=204, summary="Delete a subscription for good", responses=FOUND)
def delete(subscription_id: str, request: Request) -> Response:
    services = _services(request)
    services.subscriptions.remove(subscription_id)
    services.announce_change()
    return Response(status_code=204)


@router.post(
    ID_PATH + "/test",
    response_model=TestResult,
    summary="Send a signed hookline.test event to the endpoint now, and say what it answered",
    responses=FOUND,
)
def test(subscription_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    subscription = services.subscriptions.get(subscription_id)
    try:
        answer = probe.send_test(services.settings, subscription)
    except DeliveryFailed as exc:
        host = probe.host_of(subscription.url)
        return {
            "subscription_id": subscription.id,
            "host": host,
            "ok": False,
            "reason": exc.reason,
            "error": str(exc),
        }
    return answer.to_record()


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _set_enabled(request: Request, subscription_id: str, *, enabled: bool) -> dict[str, Any]:
    services = _services(request)
    changed = services.subscriptions.set_enabled(subscription_id, enabled)
    services.announce_change()
    return _out(changed)


_VALIDATORS = {
    "url": validate_url,
    "event_patterns": validate_patterns,
    "secret": validate_secret,
    "description": validate_description,
}


def _check(**given: Any) -> None:
    """The store's validators on each field given, before anything is written; 422 naming each refused one."""
    refused = []
    for name, value in given.items():
        if value is None:
            continue
        try:
            _VALIDATORS[name](value)
        except (InvalidSubscription, ValueError) as exc:
            refused.append({"loc": ("body", name), "msg": str(exc), "type": "value_error"})
    if refused:
        raise RequestValidationError(refused)


def state_of(subscription: Subscription) -> State:
    """The state ``count_by_state`` counts it in."""
    if subscription.enabled:
        return "failing" if subscription.failing_since is not None else "healthy"
    if subscription.disabled_reason == DISABLED_FAILING:
        return "disabled_failing"
    if subscription.disabled_reason == DISABLED_GONE:
        return "disabled_gone"
    return "disabled_manual"


def _selected(
    subscription: Subscription, state: str | None, pattern: str | None, event_type: str | None
) -> bool:
    if state not in (None, "enabled", "disabled") and state_of(subscription) != state:
        return False
    if pattern is not None and pattern not in subscription.event_patterns:
        return False
    return event_type is None or any(
        patterns.matches(each, event_type) for each in subscription.event_patterns
    )


def _out(subscription: Subscription) -> dict[str, Any]:
    record = subscription.to_record(show_secret=False)
    del record["secret"], record["previous_secret"]
    return {**record, "state": state_of(subscription)}


def _with_secret(subscription: Subscription) -> dict[str, Any]:
    return _out(subscription) | {"secret": subscription.secret}


def _position(subscription: Subscription) -> tuple[str, str]:
    return (subscription.created_at.isoformat(timespec="microseconds"), subscription.id)


def _encode_cursor(subscription: Subscription) -> str:
    return base64.urlsafe_b64encode(json.dumps(_position(subscription)).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("the cursor is not one this API handed out") from exc
    if not (
        isinstance(decoded, list) and len(decoded) == 2 and all(isinstance(part, str) for part in decoded)
    ):
        raise InvalidCursor("the cursor is not one this API handed out")
    return decoded[0], decoded[1]
