"""RabbitMQ: what hookline's queues are called, how they are declared and consumed, and when acks go out.

- ``topology``: exchange, queue and actor names, the arguments each queue is
  declared with (quorum or classic), and the raw event; imports no pika or
  dramatiq, so anything that needs a queue name stays light;
- ``nodes``: the broker's nodes from ``HOOKLINE_AMQP_URL``, each connection
  trying them in turn;
- ``rabbitmq``: the dramatiq broker and its consumers (the only module that uses
  dramatiq's private classes), and declaring the topology;
- ``heldacks``: a message's ack waits until what it handed on is stored;
- ``batches``: what many threads hand over, published from one thread as few confirmed messages;
  ``delaybatch``: deliveries that must wait go to the delay queues many to a message;
  ``recordbatch``: delivery-log records go to the log queue, many actor messages' to a message;
- ``changes``: a subscription change announced to every worker process, which reloads at once.

May import the base layer, ``observability`` and ``deliverylog`` (the records it
publishes); never ``pipeline`` or above.
"""
