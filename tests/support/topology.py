"""Removing what a test or benchmark declared on the broker."""

from __future__ import annotations

from workers.broker.nodes import Nodes
from workers.broker.topology import Topology


def delete_topology(amqp_url: str, exchange: str, prefix: str) -> None:
    """Delete every queue hookline may have declared under ``prefix``, and its exchanges."""
    connection = Nodes(amqp_url).connect()
    try:
        channel = connection.channel()
        topology = Topology(exchange=exchange, prefix=prefix)
        for queue in topology.all_queues():
            channel.queue_delete(queue)
        channel.exchange_delete(exchange)
        channel.exchange_delete(topology.subscription_changes_exchange)
    finally:
        connection.close()
