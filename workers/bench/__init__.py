"""``hookline bench``: a load generator that measures hookline end to end on one machine.

::

    bench ──publish_many──► exchange hookline.bench.<run> ──► hookline workers ──POST──► receiver
      │                                                                                   │
      └──publish_many──► exchange hookline.bench.<run>.baseline ──► baseline loops ──POST──┘
                                                                      (--baseline only)

- :mod:`~workers.bench.receiver`: the fast HTTP receiver, in its own process;
  it records receipt times and bodies and parses nothing until the run is over.
- :mod:`~workers.bench.baseline`: the least code that moves an event from
  RabbitMQ to the receiver (pika consume, httpx POST, ack), for comparison.
- :mod:`~workers.bench.processes`: starting and stopping those processes and
  the workers, each in its own process group.
- :mod:`~workers.bench.load`: publishing the events, as fast as possible or at a rate.
- :mod:`~workers.bench.run`: one run, phase by phase, cleaning up on any exit.
- :mod:`~workers.bench.report` and :mod:`~workers.bench.plot`: the figures.

It drives hookline from outside, as a user would (``hookline worker`` in its
own processes), so it may import the layers below ``app`` for names and setup
(settings, topology, the subscription store), never ``app`` or ``cli``.
"""
