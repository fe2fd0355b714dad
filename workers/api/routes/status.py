"""``GET /v1/status``: queue depths and subscriptions by state, as ``hookline status`` shows them.

Whatever cannot be read is reported as such (``error``), and the rest is still
answered: the status of a deployment is most wanted when part of it is down.
The delivery log's recorder lag joins it once the log lands.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from workers.api import problems
from workers.api.auth import api_key
from workers.api.services import Services
from workers.errors import HooklineError
from workers.ops.queue_stats import ROLES

router = APIRouter(
    prefix="/v1/status", tags=["status"], dependencies=[Depends(api_key)], responses=problems.documented(401)
)


class Queue(BaseModel):
    messages: int = Field(description="Messages ready in the queues of this role.")
    consumers: int | None = Field(description="Consumers, for the roles workers consume; else null.")


class Broker(BaseModel):
    error: str | None = Field(description="Why the broker could not be read, or which queues are missing.")
    queues: dict[str, Queue] | None = Field(description=f"By role: {', '.join(ROLES)}.")


class Subscriptions(BaseModel):
    error: str | None
    by_state: dict[str, int] | None = Field(description="How many subscriptions are in each state.")


class Status(BaseModel):
    broker: Broker
    subscriptions: Subscriptions


@router.get("", response_model=Status, summary="Queue depths and subscriptions by state")
def status(request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    return {"broker": _broker(services), "subscriptions": _subscriptions(services)}


def _broker(services: Services) -> dict[str, Any]:
    try:
        stats = services.queues.read()
    except HooklineError as exc:
        return {"error": str(exc), "queues": None}
    queues = {
        role: {"messages": stats.messages.get(role, 0), "consumers": stats.consumers.get(role)}
        for role in ROLES
    }
    missing = f"queues missing (run `hookline setup`): {', '.join(stats.missing)}" if stats.missing else None
    return {"error": missing, "queues": queues}


def _subscriptions(services: Services) -> dict[str, Any]:
    try:
        return {"error": None, "by_state": services.subscriptions.count_by_state()}
    except HooklineError as exc:
        return {"error": str(exc), "by_state": None}
