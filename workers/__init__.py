"""hookline's workers: everything beyond publishing (``producer``), in layers along the data path.

Each subpackage's docstring says what it owns and what it may import. Lower
layers never import higher ones (``tests/unit/test_layers.py`` checks it):

1. ``settings``, ``errors``, ``durations``, ``vocabulary``: the base every layer may use;
2. ``observability``: logs, metrics, heartbeats: what every process records;
3. ``outbound``: one signed HTTP POST to an endpoint, its address guard and per-endpoint isolation;
4. ``subscriptions``: the store, its cache, patterns and automatic disabling;
5. ``deliverylog``: the records of events and attempts, their tables, queries and retention;
6. ``broker``: queue names (no dramatiq), the dramatiq broker on RabbitMQ, held acks, delay batches;
7. ``pipeline``: an event's path: fan-out → attempts → waiting → retry policy → dead letters;
8. ``middleware`` (dramatiq hooks) and ``ops`` (what operators run: dead letters, the
   metrics server, queue statistics, the demo receiver, the recorder);
9. ``app``: the actors wired to a broker, the entry point of each worker process;
10. ``bench``, then ``api`` (the REST API of ``hookline api``), then ``console`` (its web console at
    ``/console``), then ``cli``: the ``hookline`` command.
"""
