"""Removing what a test or benchmark declared on the broker: what ``hookline bench`` removes after itself."""

from __future__ import annotations

from workers.bench.amqp import delete_topology

__all__ = ["delete_topology"]
