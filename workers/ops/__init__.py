"""What operators run beside the pipeline: reading and changing its state from outside.

- ``dlq``: list, replay and purge dead letters;
- ``server``: ``/metrics``, ``/healthz`` and ``/readyz`` of ``hookline worker`` and ``hookline recorder``;
- ``exporter`` (with ``queue_stats``): the parent's metrics, queue depths, process health;
- ``scrape``: reading a ``/metrics`` page (``hookline status``);
- ``receiver``: ``hookline receive``, a local endpoint that verifies and prints webhooks;
- ``recorder``: ``hookline recorder``, which writes the log queue's records to the delivery log.

May import the layers below ``middleware``; never ``app`` or ``cli``.
"""
