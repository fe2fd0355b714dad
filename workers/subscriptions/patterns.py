"""Event patterns: which event types a subscription receives.

Patterns follow AMQP topic-exchange semantics, so a subscription matches
exactly the events a RabbitMQ binding with the same key would route:

* ``order.created`` matches that event type only;
* ``*`` matches exactly one segment: ``order.*`` matches ``order.created``, not ``order``;
* ``#`` matches zero or more segments: ``order.#`` matches ``order`` and ``order.a.b``,
  ``#`` alone matches every event.

A wildcard is always a whole segment: ``ord*`` is refused rather than read as a
prefix match, because RabbitMQ would treat it as a literal.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from workers.errors import InvalidSubscription

MAX_PATTERN_LENGTH = 255  # an AMQP routing key holds at most 255 bytes
_WORD = re.compile(r"[A-Za-z0-9_]+")
_WILDCARDS = ("*", "#")
_ANY_SEGMENTS = r"(?:\.[^.]+)*"

T = TypeVar("T", bound=Hashable)


def validate_pattern(pattern: str) -> str:
    """Return ``pattern`` unchanged if valid; raise InvalidSubscription saying why not."""
    if not pattern:
        raise InvalidSubscription("event pattern must not be empty")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidSubscription(f"event pattern is longer than {MAX_PATTERN_LENGTH} characters")
    for segment in pattern.split("."):
        if segment in _WILDCARDS or _WORD.fullmatch(segment):
            continue
        raise InvalidSubscription(f"event pattern {pattern!r}: {_segment_problem(segment)}")
    return pattern


def _segment_problem(segment: str) -> str:
    if not segment:
        return "empty segment (a leading, trailing or doubled '.')"
    if "*" in segment or "#" in segment:
        return f"segment {segment!r} mixes a wildcard with other characters; '*' and '#' must stand alone"
    return f"segment {segment!r} may hold only letters, digits and '_'"


def is_wildcard(pattern: str) -> bool:
    return any(segment in _WILDCARDS for segment in pattern.split("."))


def matches(pattern: str, event_type: str) -> bool:
    """Whether ``event_type`` matches ``pattern`` (which must be valid)."""
    return _compile(pattern).fullmatch("." + event_type) is not None


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    # Matched against "." + event_type, every segment is "\.segment", so "#"
    # can swallow zero or more whole segments without special cases at the ends.
    validate_pattern(pattern)
    parts: list[str] = []
    for segment in pattern.split("."):
        if segment == "#":
            if parts and parts[-1] == _ANY_SEGMENTS:
                continue  # "#.#" means "#"; repeats would only slow down backtracking
            parts.append(_ANY_SEGMENTS)
        elif segment == "*":
            parts.append(r"\.[^.]+")
        else:
            parts.append(r"\." + re.escape(segment))
    return re.compile("".join(parts))


class PatternIndex(Generic[T]):
    """Finds the values whose pattern matches an event type, built once and queried per event.

    Exact patterns are one dict lookup; wildcard patterns are compiled regexes,
    one per distinct pattern. Results are memoised per event type (a bounded
    LRU), since a deployment sees few distinct event types and many events.
    A value listed under several patterns is returned once, ordered by where it
    first appeared in ``entries``; values are deduplicated by equality.
    """

    def __init__(self, entries: Iterable[tuple[str, T]], *, cache_size: int = 4096) -> None:
        self._values: list[T] = []
        position: dict[T, int] = {}
        self._exact: dict[str, set[int]] = {}
        wildcards: dict[str, set[int]] = {}
        for pattern, value in entries:
            validate_pattern(pattern)
            ordinal = position.setdefault(value, len(self._values))
            if ordinal == len(self._values):
                self._values.append(value)
            table = wildcards if is_wildcard(pattern) else self._exact
            table.setdefault(pattern, set()).add(ordinal)
        self._wildcards = [(_compile(pattern), ordinals) for pattern, ordinals in wildcards.items()]
        self._match = functools.lru_cache(maxsize=cache_size)(self._match_uncached)

    def __len__(self) -> int:
        """How many distinct values the index holds."""
        return len(self._values)

    def match(self, event_type: str) -> tuple[T, ...]:
        """Every value with a pattern matching ``event_type``, each once, in insertion order."""
        return self._match(event_type)

    def cache_info(self) -> functools._CacheInfo:
        """Hits, misses and size of the per-event-type memo, for metrics and tests."""
        return self._match.cache_info()

    def _match_uncached(self, event_type: str) -> tuple[T, ...]:
        found = set(self._exact.get(event_type, ()))
        key = "." + event_type
        for regex, ordinals in self._wildcards:
            if regex.fullmatch(key):
                found |= ordinals
        return tuple(self._values[ordinal] for ordinal in sorted(found))
