"""``GET /v1/status``: queue depths, subscriptions by state and the log's backlog, as ``hookline status``.

Whatever cannot be read is reported as such (``error``), and the rest is still
answered: the status of a deployment is most wanted when part of it is down.
The delivery log's part is the log queue's depth and its recorders, read from
the broker with the rest, and how far behind the recorders were at their last
write, which each batch notes in the log's database (recorders are pods
without a Service, which the API could not find or reach; each also serves
``hookline_recorder_lag_seconds`` on its own ``/metrics``, for Prometheus).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from workers.api import problems
from workers.api.auth import api_key
from workers.api.services import Services
from workers.broker.topology import Topology
from workers.deliverylog.queries import WriterProgress
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


class Log(BaseModel):
    enabled: bool = Field(description="HOOKLINE_LOG_ENABLED: whether workers record what they do.")
    queue: str = Field(description="The queue the records wait in for a recorder.")
    messages: int | None = Field(description="Messages of records waiting there; null if the broker failed.")
    recorders: int | None = Field(description="Recorders consuming it; 0: nothing writes the log.")
    invalid: int | None = Field(description="Messages the recorders could not read or write, parked.")
    last_write_at: str | None = Field(
        description="When a recorder last wrote a batch of records (ISO 8601, UTC); null: never."
    )
    lag_seconds: float | None = Field(
        description="How old the oldest record of that batch was when it was written: how far behind "
        "the recorders were. It is not updated while nothing is written: an old last_write_at with "
        "messages waiting means the recorders are stuck or gone."
    )
    error: str | None = Field(description="Why the log's database could not be read, if it could not.")


class Status(BaseModel):
    broker: Broker
    subscriptions: Subscriptions
    log: Log = Field(description="The delivery log's backlog, as `hookline status` shows it.")


@router.get("", response_model=Status, summary="Queue depths, subscriptions by state, the log's backlog")
def status(request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    broker = _broker(services)
    return {"broker": broker, "subscriptions": _subscriptions(services), "log": _log(services, broker)}


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


def _log(services: Services, broker: dict[str, Any]) -> dict[str, Any]:
    queues = broker["queues"] or {}
    log = queues.get("log") or {}
    return {
        "enabled": services.settings.log_enabled,
        "queue": Topology.from_settings(services.settings).log_queue,
        "messages": log.get("messages"),
        "recorders": log.get("consumers"),
        "invalid": (queues.get("invalid_log") or {}).get("messages"),
        **_progress(services),
    }


def _progress(services: Services) -> dict[str, Any]:
    def read() -> WriterProgress:
        return services.migrated_log().progress()

    progress, error = WriterProgress.report(read, log_enabled=services.settings.log_enabled)
    return {**progress.to_record(), "error": error}
