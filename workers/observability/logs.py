"""Structured logs: JSON lines in production, a readable console on a terminal.

structlog renders our own events; dramatiq's and pika's stdlib log records go
through the same processors (``ProcessorFormatter``), so a worker's stderr is
one format throughout. Log lines never carry secrets or payloads: delivery
logs name the URL's host only, never its path or query string, and dramatiq's
own line about a crashed message, which prints the message's arguments (an
event's data), is dropped for hookline's ``message_crashed`` (see
:mod:`workers.middleware.fail_on_error`).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO, cast

import orjson
import structlog
from structlog.typing import FilteringBoundLogger, Processor

from workers.settings import Settings

# dramatiq logs every failed message at INFO/ERROR with its arguments; hookline
# already logs each failure with structured fields, so keep dramatiq to warnings.
QUIET_LOGGERS = {"pika": logging.WARNING, "dramatiq.worker.WorkerThread": logging.WARNING}


def resolve_format(settings: Settings, stream: TextIO) -> str:
    """``auto`` means console on a terminal, JSON anywhere else."""
    if settings.log_format != "auto":
        return settings.log_format
    return "console" if stream.isatty() else "json"


def configure(settings: Settings, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    renderer: Processor
    if resolve_format(settings, stream) == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    level = logging.getLevelName(settings.log_level)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging(shared, renderer, level, stream)


def _route_stdlib_logging(shared: list[Processor], renderer: Processor, level: int, stream: TextIO) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, quiet_level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(level, quiet_level))
    worker_thread = logging.getLogger("dramatiq.worker.WorkerThread")
    if not any(isinstance(each, _NoMessageArguments) for each in worker_thread.filters):
        worker_thread.addFilter(_NoMessageArguments())


class _NoMessageArguments(logging.Filter):
    """Drops dramatiq's records that print a message with its arguments: payloads stay out of logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to process message ")


def _json_line(event: dict[str, Any], **options: Any) -> str:
    # Every delivery logs a line: orjson renders it at a fraction of json.dumps's cost. The standard
    # library's takes what orjson refuses (an integer over 64 bits), so a log call never raises.
    try:
        return orjson.dumps(event, default=options.get("default"), option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False, **options)


def get_logger(**context: Any) -> FilteringBoundLogger:
    # structlog returns a lazy proxy typed Any; configure() makes it a filtering bound logger.
    return cast(FilteringBoundLogger, structlog.get_logger(**context))
