"""The ack book: which frames settle a channel's messages; a multiple ack covers only settled ones."""

from __future__ import annotations

import pytest

from workers.broker.ackbook import AckBook


def delivered(*tags: int) -> AckBook:
    return AckBook(set(tags))


def test_acks_below_the_oldest_open_message_go_out_as_one_multiple_ack() -> None:
    book = delivered(1, 2, 3, 4)
    for tag in (2, 1, 3):
        book.settle(tag, ack=True)
    assert book.take().in_order() == [(True, 3, True)]


def test_an_ack_above_a_message_still_open_is_sent_alone_so_the_open_one_is_not_covered() -> None:
    book = delivered(1, 2, 3)
    book.settle(3, ack=True)
    book.settle(1, ack=True)
    assert book.take().in_order() == [(True, 1, True), (True, 3, False)]
    assert book.open_tags == {2}


def test_a_rejection_goes_out_before_the_multiple_ack_that_would_otherwise_cover_it() -> None:
    book = delivered(1, 2, 3)
    book.settle(2, ack=False)
    book.settle(3, ack=True)
    book.settle(1, ack=True)
    assert book.take().in_order() == [(False, 2, False), (True, 3, True)]


def test_a_rejection_booked_after_a_take_waits_for_the_next_one_and_bounds_its_acks() -> None:
    book = delivered(1, 2, 3)
    book.settle(1, ack=True)
    assert book.take().in_order() == [(True, 1, True)]
    book.settle(3, ack=True)
    assert book.take().in_order() == [(True, 3, False)]  # 2 is open: not covered
    book.settle(2, ack=False)
    assert book.take().in_order() == [(False, 2, False)]


def test_only_the_first_settlement_since_a_take_asks_for_one() -> None:
    book = delivered(1, 2, 3)
    assert book.settle(1, ack=True)
    assert not book.settle(2, ack=True)
    book.take()
    assert book.settle(3, ack=False)


def test_a_take_with_nothing_settled_sends_nothing() -> None:
    assert delivered(1).take().in_order() == []


def test_settling_a_tag_twice_or_one_never_delivered_raises_key_error() -> None:
    book = delivered(1)
    book.settle(1, ack=True)
    with pytest.raises(KeyError):
        book.settle(1, ack=True)
    with pytest.raises(KeyError):
        book.settle(9, ack=False)
