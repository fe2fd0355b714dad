"""The module the dramatiq CLI loads in each worker process (``dramatiq workers.app:broker``).

Importing it reads the settings, configures logging and metrics, opens the
database and the HTTP pool and declares the topology: a process that cannot do
all of that fails at boot instead of on its first message. ``hookline worker``
checks the same things in the parent first, so the user sees one clear line.
Under ``hookline worker`` with metrics on, it also starts this process's
heartbeat, which the parent's ``/healthz`` and ``/readyz`` read.
"""

from __future__ import annotations

import sys
from typing import TextIO, cast

import dramatiq

from producer.settings import load
from workers.actors import build
from workers.broker import rabbitmq
from workers.middleware.drain_delays import DrainDelays
from workers.middleware.drain_logs import DrainLogs
from workers.observability import heartbeat, logs, metrics
from workers.observability.logbatch import BatchedLines
from workers.runtime import Runtime
from workers.settings import Settings

settings = load(Settings)
# dramatiq points a child's sys.stderr at a pipe that its parent reads and copies to the real
# stderr: two processes' work for every line. Children write to the inherited stderr themselves,
# as gunicorn's do, in batches of whole lines (atomic on a pipe; see workers/logbatch.py).
log_lines = BatchedLines(sys.__stderr__ or sys.stderr)
logs.configure(settings, stream=cast(TextIO, log_lines))  # it has what loggers use: write, flush, isatty
metrics.configure(settings)
app = build(Runtime(settings))
broker = app.broker
dramatiq.set_broker(broker)
rabbitmq.declare(broker)
app.runtime.start()
heartbeat.attach(broker)
broker.add_middleware(DrainDelays(app.runtime.delay_batcher, app.runtime.stopping))
broker.add_middleware(DrainLogs(log_lines))
