"""What operators run beside the pipeline: reading and changing its state from outside.

- ``dlq``: list, replay and purge dead letters;
- ``server``: ``hookline worker``'s ``/metrics``, ``/healthz`` and ``/readyz``;
- ``exporter`` (with ``queue_stats``): the parent's metrics, queue depths, process health;
- ``scrape``: reading a ``/metrics`` page (``hookline status``);
- ``receiver``: ``hookline receive``, a local endpoint that verifies and prints webhooks.

May import the layers below ``middleware``; never ``app`` or ``cli``.
"""
