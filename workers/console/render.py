"""Templates and their filters: every value is escaped (autoescape on for every template), times in UTC.

A time is shown as ``2026-01-02 03:04:05 UTC`` with how long ago it was, in a
``<time>`` element whose ``datetime`` a script or a screen reader can use.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

HERE = Path(__file__).parent
STATIC = HERE / "static"
_environment = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
templates = Jinja2Templates(env=_environment)

_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def when(moment: datetime | str | None, now: datetime | None = None) -> Markup:
    """A ``<time>`` element: the UTC time and how long ago (or ahead) it is."""
    if moment in (None, ""):
        return Markup("—")
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return escape(moment)
    assert isinstance(moment, datetime)  # noqa: S101 - narrowed above; for mypy
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    iso = moment.isoformat()
    relative = ago(moment, now or datetime.now(UTC))
    return Markup('<time datetime="{}" title="{}">{} <small>({})</small></time>').format(
        iso, iso, shown, relative
    )


def ago(moment: datetime, now: datetime) -> str:
    seconds = int((now - moment).total_seconds())
    for unit, size in _UNITS:
        if abs(seconds) >= size:
            amount = f"{abs(seconds) // size} {unit}"
            return f"{amount} ago" if seconds > 0 else f"in {amount}"
    return "just now"


def pretty_json(value: Any) -> str:
    """A payload for a ``<pre>``: indented JSON (escaped by the template like any other text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    return json.dumps(value, indent=2, ensure_ascii=False)


def thousands(number: int) -> str:
    """A count as people read it: 1,234."""
    return f"{number:,}"


_environment.filters["when"] = when
_environment.filters["thousands"] = thousands
_environment.filters["pretty_json"] = pretty_json


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)
