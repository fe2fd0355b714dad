"""A subscription as typed in the console's create or edit form: the fields, and what is wrong with each.

A form that fails is shown again with what was typed and each reason next to
its field, not as an error page that loses the typing. The fields are checked
with the store's own validators, the ones ``/v1/subscriptions`` runs, before
anything is written. Only the URL, the patterns and the description are read:
a secret is never taken from a form, so none can be put back in one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.exceptions import RequestValidationError

from workers.errors import InvalidSubscription
from workers.subscriptions.store import validate_description, validate_patterns, validate_url

FIELDS = ("url", "event_patterns", "description")
NOT_SAVED = "Not saved: see what is wrong next to each field marked below."


def patterns_of(text: str) -> list[str]:
    """Patterns as typed: separated by commas, spaces or lines."""
    return [each for each in text.replace(",", " ").split() if each]


_CHECKS: dict[str, Callable[[str], Any]] = {
    "url": validate_url,
    "event_patterns": lambda text: validate_patterns(patterns_of(text)),
    "description": validate_description,
}


@dataclass(frozen=True, slots=True)
class SubscriptionForm:
    values: dict[str, str]  # as typed, trimmed
    errors: dict[str, str] = field(default_factory=dict)  # field name (or "form"): why it is refused

    @classmethod
    def read(cls, form: dict[str, str]) -> SubscriptionForm:
        """The form's fields, each checked; anything else the form holds (a secret, say) is dropped."""
        values = {name: form.get(name, "").strip() for name in FIELDS}
        errors: dict[str, str] = {}
        for name, check in _CHECKS.items():
            try:
                check(values[name])
            except (InvalidSubscription, ValueError) as exc:
                errors[name] = str(exc)
        return cls(values, errors)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def patterns(self) -> list[str]:
        return patterns_of(self.values["event_patterns"])

    def refused(self, exc: RequestValidationError) -> SubscriptionForm:
        """This form with the reasons a route refused it for, each by the field it names."""
        errors = dict(self.errors)
        for error in exc.errors():
            name = str(error.get("loc", ("", ""))[-1])
            errors[name if name in FIELDS else "form"] = str(error.get("msg", "not valid"))
        return SubscriptionForm(self.values, errors)
