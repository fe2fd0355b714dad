"""The API's routers, one module per resource; :data:`ROUTERS` is what the app mounts, in order.

Each router under ``/v1`` depends on :func:`workers.api.auth.api_key` as a
whole, so none of its routes answers without a key. The delivery log's
resources are modules of their own: ``history`` (events and deliveries),
``replays`` (one delivery, or a time range as a job) and ``parked`` (dead
letters, invalid events, crashed messages).
"""

from __future__ import annotations

from fastapi import APIRouter

from workers.api.routes.events import router as events
from workers.api.routes.health import router as health
from workers.api.routes.history import router as history
from workers.api.routes.meta import router as meta
from workers.api.routes.parked import crashed_messages, dead_letters, invalid_events
from workers.api.routes.replays import router as replays
from workers.api.routes.status import router as status
from workers.api.routes.subscriptions import router as subscriptions

ROUTERS: tuple[APIRouter, ...] = (
    health,
    meta,
    subscriptions,
    events,
    history,
    replays,
    dead_letters,
    invalid_events,
    crashed_messages,
    status,
)
