"""dramatiq middleware, one file each: hooks into the worker's life and each message's.

- ``fail_on_error``: a message whose actor raised is rejected to ``<queue>.XQ``, not acked;
- ``heartbeat``: tells this process's heartbeat whether the worker consumes or stops;
- ``drain_batches`` and ``drain_logs``: a stopping worker stores what it batched (waiting
  deliveries, delivery-log records, log lines).

May import the layers below ``app``; never ``ops``, ``app`` or ``cli``.
"""
