"""The console's pages, a module per thing the on-call person looks at; :data:`ROUTERS`, mounted in order."""

from __future__ import annotations

from fastapi import APIRouter

from workers.console.routes.deadletters import router as deadletters
from workers.console.routes.deliveries import router as deliveries
from workers.console.routes.overview import router as overview
from workers.console.routes.parked import router as parked
from workers.console.routes.signin import router as signin
from workers.console.routes.subscriptions import router as subscriptions

ROUTERS: tuple[APIRouter, ...] = (signin, overview, subscriptions, deliveries, deadletters, parked)
