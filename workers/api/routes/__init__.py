"""The API's routers, one module per resource; :data:`ROUTERS` is what the app mounts, in order.

Each router under ``/v1`` depends on :func:`workers.api.auth.api_key` as a
whole, so none of its routes answers without a key. The delivery log's
resources (events and deliveries, replay jobs, dead letters, invalid events)
slot in here as modules of their own, each with its ``router``.
"""

from __future__ import annotations

from fastapi import APIRouter

from workers.api.routes import events, health, meta, status, subscriptions

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    meta.router,
    subscriptions.router,
    events.router,
    status.router,
)
