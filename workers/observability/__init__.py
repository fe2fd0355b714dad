"""What every process records: structured logs, Prometheus metrics, heartbeats.

- ``logs`` (and ``logbatch``, whole lines in batches to stderr);
- ``metrics``: the only module that creates metrics; prometheus_client is
  imported here and in ``ops``, never before ``hookline worker`` set up the
  multiprocess directory;
- ``heartbeat``: a worker process's state in a file the parent reads.

May import only the base layer (``settings``, ``errors``, ``vocabulary``); never dramatiq.
"""
