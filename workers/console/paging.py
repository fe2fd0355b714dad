"""A page of a parking queue's list: where it starts, its Previous and Next links, "51-100 of 1,234".

A queue has no cursor to hand out: the ``/v1`` list routes read it whole,
sort it by when each message was parked and skip ``offset`` of them, so a
page is named by its offset. One more message than a page holds is asked
for, to know whether there is a next page even when a filter makes the
queue's total no guide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from workers.console.handling import Call

PAGE = 50
ASK = PAGE + 1  # one more than shown: whether a next page exists


def offset_of(call: Call) -> int:
    """The page's start from the ``offset`` query parameter; the first page for anything else.

    A link typed or cut by hand should still show a page, not an error.
    """
    try:
        offset = int(call.query("offset") or 0)
    except ValueError:
        return 0
    return max(offset, 0)


@dataclass(frozen=True, slots=True)
class Pager:
    """What a list page shows of where it is, and the links to the pages either side."""

    offset: int
    shown: int
    total: int  # the queue's (or queues') count when the listing began
    more: bool  # a message after this page was read
    keep: dict[str, str] = field(default_factory=dict)  # the filters every link carries on

    @classmethod
    def of(cls, offset: int, read: int, total: int, keep: dict[str, str] | None = None) -> Pager:
        """The pager of a page that read ``read`` messages (up to :data:`ASK`) from ``offset``."""
        return cls(offset, min(read, PAGE), total, read > PAGE, {k: v for k, v in (keep or {}).items() if v})

    @property
    def first(self) -> int:
        return self.offset + 1

    @property
    def last(self) -> int:
        return self.offset + self.shown

    @property
    def previous(self) -> str | None:
        """The query of the page before, or None on the first page; from past the end, the first page."""
        if self.offset == 0:
            return None
        return self._link(max(self.offset - PAGE, 0) if self.shown else 0)

    @property
    def next(self) -> str | None:
        return self._link(self.offset + PAGE) if self.more else None

    def _link(self, offset: int) -> str:
        return urlencode({**self.keep, "offset": str(offset)} if offset else self.keep)
