"""The event: the one message format between publishers and hookline's workers.

On the wire an event is a compact UTF-8 JSON object::

    {"id": "evt_…", "type": "order.created", "timestamp": "2024-05-01T12:00:00.000Z", "data": {...}}

published persistent to the topic exchange with routing key = ``type``. The
same contract, for other languages, is ``producer/event.schema.json``.

Workers call :meth:`Event.from_json` on every message, so validation is plain
type checks and precompiled regexes: no pydantic, no datetime parsing beyond
what the calendar check needs.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from producer.errors import EventTooLarge, InvalidEvent

FIELDS = ("id", "type", "timestamp", "data")
MAX_TYPE_BYTES = 255  # the AMQP limit on a routing key (a shortstr)

# `fullmatch` everywhere: with `match`/`search`, `$` would also accept a final newline.
ID_RE = re.compile(r"[\x21-\x7e]{1,255}")
TYPE_RE = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
TIMESTAMP_RE = re.compile(
    # [0-9], not \d: in Python \d also matches other scripts' digits, which int() would accept.
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_MAX_SHOWN = 80  # long offending values are cut in messages so that they stay one readable line
# A JSON \u escape may name one half of a UTF-16 pair alone ("caf\ud83d", what JavaScript makes of
# a string cut inside an emoji). Python decodes it to a lone surrogate, which no UTF-8 encoder
# writes back out: such an event could never be delivered. Raw UTF-8 cannot hold one, so only a
# body with such an escape needs the (slower) walk through its strings.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Event:
    """A validated event. Construct with :meth:`create`, :meth:`from_mapping` or :meth:`from_json`.

    The constructor validates too, so an ``Event`` always follows the contract,
    except for what only encoding can tell: ``data`` holding values JSON cannot
    represent, and the size limit (see :meth:`to_json`).
    """

    id: str
    type: str
    timestamp: str
    data: dict[str, Any]

    def __post_init__(self) -> None:
        _check_id(self.id)
        _check_type(self.type)
        _check_timestamp(self.timestamp)
        if not isinstance(self.data, dict):
            raise InvalidEvent(f"'data' must be a JSON object, got {_json_type(self.data)}")

    @classmethod
    def create(
        cls,
        type: str,  # noqa: A002 - the wire contract's field names make the clearest keywords
        data: dict[str, Any],
        *,
        id: str | None = None,  # noqa: A002 - as above
        timestamp: str | None = None,
    ) -> Event:
        """A new event; ``id`` defaults to ``evt_`` + a random UUID, ``timestamp`` to now (UTC)."""
        return cls(
            id=new_event_id() if id is None else id,
            type=type,
            timestamp=now_timestamp() if timestamp is None else timestamp,
            data=data,
        )

    @classmethod
    def from_mapping(cls, obj: object) -> Event:
        """The event in a decoded JSON value, or :class:`InvalidEvent` saying what is wrong with it."""
        if not isinstance(obj, Mapping):
            raise InvalidEvent(f"an event must be a JSON object, got {_json_type(obj)}")
        if len(obj) != len(FIELDS) or not all(name in obj for name in FIELDS):
            _raise_field_set_error(obj)
        return cls(id=obj["id"], type=obj["type"], timestamp=obj["timestamp"], data=obj["data"])

    @classmethod
    def from_json(cls, raw: bytes | str, *, max_bytes: int) -> Event:
        """Decode and validate one message body (UTF-8 JSON of at most ``max_bytes`` bytes)."""
        size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise EventTooLarge(f"event is {size} bytes, over the limit of {max_bytes}")
        return cls.from_mapping(decode_json(raw))

    def to_json(self, *, max_bytes: int | None = None) -> bytes:
        """Compact UTF-8 JSON; :class:`InvalidEvent` if ``data`` is not JSON, or over ``max_bytes``."""
        try:
            text = json.dumps(
                {"id": self.id, "type": self.type, "timestamp": self.timestamp, "data": self.data},
                ensure_ascii=False,
                separators=(",", ":"),
                allow_nan=False,
            )
            body = text.encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidEvent(f"'data' cannot be encoded as JSON: {exc}") from exc
        if max_bytes is not None and len(body) > max_bytes:
            raise EventTooLarge(f"event {self.id} is {len(body)} bytes, over the limit of {max_bytes}")
        return body

    def timestamp_unix(self) -> float:
        """The timestamp as seconds since the Unix epoch (a leap second counts as the next second)."""
        return unix_time(self.timestamp)


def unix_time(timestamp: str) -> float:
    """An event timestamp (RFC 3339) as seconds since the Unix epoch; InvalidEvent if it is not one."""
    return _parse_timestamp(timestamp).timestamp()


def new_event_id() -> str:
    """A fresh id: ``evt_`` and a random UUID in hex."""
    return f"evt_{uuid.uuid4().hex}"


def now_timestamp() -> str:
    """The current time as :meth:`Event.create` writes it."""
    return format_timestamp(datetime.now(UTC))


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``, the form :meth:`Event.create` uses."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decode_json(raw: bytes | str) -> object:
    """``raw`` parsed as strict JSON (UTF-8), or :class:`InvalidEvent` with a one-line reason."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except ValueError as exc:
        raise InvalidEvent(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidEvent("not JSON: nested too deeply") from exc
    if _SURROGATE_ESCAPE.search(text) and (where := _lone_surrogate(value, "the event")) is not None:
        raise InvalidEvent(f"not valid Unicode: {where} holds a lone UTF-16 surrogate (a string cut in two?)")
    return value


def _lone_surrogate(value: object, where: str) -> str | None:
    """Where in ``value`` a string (or a key) holds a lone surrogate, or None."""
    if isinstance(value, str):
        return where if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}[{_shown(key)}]"
            found = inner if _SURROGATE.search(key) else _lone_surrogate(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _lone_surrogate(item, f"{where}[{index}]")) is not None:
                return found
    return None


def _reject_constant(name: str) -> object:
    # Python's json accepts NaN and Infinity; JSON, and therefore other consumers, do not.
    raise ValueError(f"{name} is not a JSON value")


def _raise_field_set_error(obj: Mapping[Any, Any]) -> None:
    missing = [name for name in FIELDS if name not in obj]
    if missing:
        raise InvalidEvent(f"missing field{_plural(missing)} {_names(missing)}")
    unknown = [name for name in obj if name not in FIELDS]
    raise InvalidEvent(
        f"unknown field{_plural(unknown)} {_names(unknown)} (allowed: id, type, timestamp, data)"
    )


def _check_id(value: object) -> None:
    if not isinstance(value, str):
        raise InvalidEvent(f"'id' must be a string, got {_json_type(value)}")
    if not ID_RE.fullmatch(value):
        raise InvalidEvent(
            f"'id' must be 1 to 255 visible ASCII characters without spaces, got {_shown(value)}"
        )


def _check_type(value: object) -> None:
    if not isinstance(value, str):
        raise InvalidEvent(f"'type' must be a string, got {_json_type(value)}")
    if not TYPE_RE.fullmatch(value):
        raise InvalidEvent(f"'type' must be dot-separated segments of [A-Za-z0-9_], got {_shown(value)}")
    if len(value) > MAX_TYPE_BYTES:  # the regex admits ASCII only, so characters are bytes
        raise InvalidEvent(f"'type' must be at most {MAX_TYPE_BYTES} bytes, got {len(value)}")


def _check_timestamp(value: object) -> None:
    if not isinstance(value, str):
        raise InvalidEvent(f"'timestamp' must be a string, got {_json_type(value)}")
    _parse_timestamp(value)


# A worker reads an event's timestamp twice, to check it and to time the delivery; replays
# bring back the same few over and over. Parsing is pure, and what cannot be parsed raises each time.
@lru_cache(maxsize=1024)
def _parse_timestamp(value: str) -> datetime:
    match = TIMESTAMP_RE.fullmatch(value)
    if match is None:
        raise InvalidEvent(
            "'timestamp' must be an RFC 3339 date-time with a timezone, like 2024-05-01T12:00:00Z, "
            f"got {_shown(value)}"
        )
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    # A leap second (:60) is valid RFC 3339 that datetime cannot hold: count it as :59 + 1 s.
    leap = second == "60"
    try:
        zone = UTC if zulu else timezone(_offset(sign, int(off_h), int(off_m)))
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), 59 if leap else int(second), tzinfo=zone
        )
    except ValueError as exc:
        raise InvalidEvent(f"'timestamp' is not a real date-time ({exc}), got {_shown(value)}") from exc
    if fraction or leap:
        moment += timedelta(seconds=(float(fraction) if fraction else 0.0) + leap)
    return moment


def _offset(sign: str, hours: int, minutes: int) -> timedelta:
    if hours > 23 or minutes > 59:
        raise ValueError("timezone offset out of range")
    size = timedelta(hours=hours, minutes=minutes)
    return -size if sign == "-" else size


def _json_type(value: object) -> str:
    """The JSON name of a value's type, for messages ("got array", not "got list")."""
    if value is None:
        return "null"
    for kinds, name in _JSON_TYPES:
        if isinstance(value, kinds):
            return name
    return type(value).__name__


# bool before number: a bool is an int to isinstance.
_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "boolean"),
    ((int, float), "number"),
    (str, "string"),
    ((list, tuple), "array"),
    (Mapping, "object"),
)


def _shown(value: str) -> str:
    if len(value) > _MAX_SHOWN:
        return repr(value[:_MAX_SHOWN]) + f"… ({len(value)} characters)"
    return repr(value)


def _names(names: list[Any]) -> str:
    return ", ".join(_shown(str(name)) for name in names)


def _plural(items: list[Any]) -> str:
    return "s" if len(items) > 1 else ""
