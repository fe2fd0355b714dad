"""The module the dramatiq CLI loads in each worker process (``dramatiq workers.app:broker``).

Importing it reads the settings, configures logging, opens the database and
the HTTP pool and declares the topology: a process that cannot do all of that
fails at boot instead of on its first message. ``hookline worker`` checks the
same things in the parent first, so the user sees one clear line.
"""

from __future__ import annotations

import dramatiq

from producer.settings import load
from workers import logs, topology
from workers.actors import build
from workers.runtime import Runtime
from workers.settings import Settings

settings = load(Settings)
logs.configure(settings)
app = build(Runtime(settings))
broker = app.broker
dramatiq.set_broker(broker)
topology.declare(broker, app.runtime.topology)
app.runtime.start()
