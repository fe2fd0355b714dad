"""An event's path through hookline, one module a step.

``fanout`` (one event in, one delivery per matching subscription) →
``attempts`` (each delivery's first attempt, then each retry, settled:
delivered, sent to wait, or dead-lettered) → ``waiting`` (which delay queue
next) → ``retry_policy`` (when to try again, or give up) → ``deadletters``
(what is parked, and how). ``delivery`` is the message a delivery travels in;
``sparethreads`` lets one event's first attempts run side by side; ``journal``
makes the delivery log's records of what happened on the way.

May import every lower layer: base, ``observability``, ``outbound``,
``subscriptions``, ``deliverylog``, ``broker``. Never ``app``, ``ops`` or ``cli``.
"""
