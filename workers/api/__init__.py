"""``hookline api``: the REST API (``/v1/...``) that services and tools drive hookline with.

A FastAPI application (:func:`workers.api.app.create_app`) served by uvicorn in
a process of its own, beside the workers. It owns the API keys and the answers
remembered under an ``Idempotency-Key`` (tables of the subscription store's
database), turns every error into an RFC 9457 problem detail, and has one router
per resource under :mod:`workers.api.routes`.

It sits above ``bench`` and below ``cli``: it may import every layer below it
(the store, the broker's announcements, the producer's publisher, the queue
reader of ``ops``), never ``cli``; it never loads dramatiq, and loads
prometheus_client only in :mod:`workers.api.metrics`.
"""
