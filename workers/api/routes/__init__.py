"""The API's routers, one module per resource; :data:`ROUTERS` is what the app mounts, in order.

Each router under ``/v1`` depends on :func:`workers.api.auth.api_key` as a
whole, so none of its routes answers without a key. The delivery log's
resources (events and deliveries, replay jobs, dead letters, invalid events)
slot in here as modules of their own, each with its ``router``.
"""

from __future__ import annotations

from fastapi import APIRouter

from workers.api.routes.events import router as events
from workers.api.routes.health import router as health
from workers.api.routes.meta import router as meta
from workers.api.routes.status import router as status
from workers.api.routes.subscriptions import router as subscriptions

ROUTERS: tuple[APIRouter, ...] = (health, meta, subscriptions, events, status)
