"""The delivery log: what hookline received and what every attempt got back.

Workers describe what they did as :mod:`records <workers.deliverylog.records>`
and publish them to the log queue; ``hookline recorder`` writes them to the
log's database in bulk. Queries, replay and retention read the same tables.

May import the base layer, ``observability`` and ``subscriptions`` (for its
database helpers); never ``broker``, ``pipeline`` or anything above.
"""
