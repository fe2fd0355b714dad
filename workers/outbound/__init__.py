"""Talking to endpoints: one signed HTTP POST, and the guards around it.

- ``http``: the pooled client and one POST, failures mapped to types;
- ``deadline``: one deadline per attempt that every network call beneath it keeps;
- ``webhook``: a Standard Webhooks request (headers, signature) and what its status means;
- ``signing``: secrets and signatures;
- ``netguard``: which addresses a webhook may reach (the SSRF guard);
- ``isolation``: per-endpoint in-flight cap and circuit breaker.

May import the base layer and ``observability``; knows nothing of queues or subscriptions.
"""
