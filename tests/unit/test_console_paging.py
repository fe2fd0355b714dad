"""Where a console list page is: its offset from the address, its Previous and Next links, its sentence."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest

from workers.console.handling import Call
from workers.console.paging import ASK, PAGE, Pager, offset_of
from workers.console.render import templates


def call_with(offset: str | None) -> Call:
    """A Call whose query holds ``offset``: only ``query`` is read."""
    return cast(Call, SimpleNamespace(query=lambda name: offset if name == "offset" else None))


@pytest.mark.parametrize(("given", "offset"), [(None, 0), ("", 0), ("100", 100), ("-50", 0), ("ten", 0)])
def test_an_offset_that_is_no_count_is_the_first_page(given: str | None, offset: int) -> None:
    assert offset_of(call_with(given)) == offset


def test_the_first_page_links_only_to_the_next_with_the_filters_kept() -> None:
    pager = Pager.of(0, ASK, 120, {"subscription_id": "sub_a", "empty": ""})

    assert (pager.first, pager.last, pager.shown) == (1, PAGE, PAGE)
    assert pager.previous is None
    assert pager.next == "subscription_id=sub_a&offset=50"


def test_a_middle_page_links_both_ways_and_the_second_back_to_the_plain_first() -> None:
    second = Pager.of(50, ASK, 120)

    assert second.previous == ""
    assert second.next == "offset=100"
    assert Pager.of(100, ASK, 300).previous == "offset=50"


def test_the_last_page_is_the_one_that_read_no_more_than_a_page() -> None:
    last = Pager.of(100, 20, 120)

    assert (last.first, last.last) == (101, 120)
    assert last.next is None


def test_a_page_past_the_end_links_back_to_the_first() -> None:
    assert Pager.of(500, 0, 3).previous == ""


def test_the_pager_says_where_the_page_is_with_thousands_separated() -> None:
    macro = templates.env.get_template("macros.html").module.pager  # type: ignore[attr-defined]

    shown = str(macro(Pager.of(950, ASK, 1234), "/console/dead-letters", "dead letters"))

    assert "Showing dead letters 951\u20131,000 of 1,234" in shown
    assert 'href="/console/dead-letters?offset=900"' in shown
    assert 'href="/console/dead-letters?offset=1000"' in shown
