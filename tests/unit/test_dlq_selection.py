"""Which messages of the dead-letters queue a selection picks, and how a message is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pika
import pytest

from workers.ops.dlq import NO_ID, Entry, Selection
from workers.pipeline.deadletters import DeadLetter
from workers.pipeline.delivery import Delivery

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def entry(subscription_id: str = "sub_a", *, dead_lettered: datetime = NOW) -> Entry:
    delivery = Delivery(subscription_id, "evt_1", "order.created", "2024-05-01T00:00:00Z", "{}", attempt=3)
    letter = DeadLetter.of(delivery, "exhausted", now=dead_lettered.timestamp())
    return Entry.read(letter.properties(None), letter.to_json())


def garbled(body: bytes = b"{oops", message_id: str | None = "dl_bad") -> Entry:
    headers = {"x-hookline-subscription-id": "sub_a", "x-hookline-cause": "exhausted"}
    return Entry.read(pika.BasicProperties(message_id=message_id, headers=headers), body)


def test_a_dead_letter_is_read_with_its_own_id() -> None:
    read = entry()

    assert read.letter is not None
    assert read.id == read.letter.id
    assert read.problem is None
    assert read.dead_lettered_at == NOW


@pytest.mark.parametrize("body", [b"{oops", b"[1, 2]", b'{"id": "dl_x"}', b"\xff\xfe", b"42"])
def test_a_body_that_is_not_a_dead_letter_is_read_by_its_message_id_with_the_problem(body: bytes) -> None:
    read = garbled(body)

    assert (read.id, read.letter, read.body) == ("dl_bad", None, body)
    assert read.problem is not None
    assert read.problem.startswith("not a dead letter: ")
    assert read.subscription_id == "sub_a"  # from the header, the only place left to find it
    assert read.to_record()["malformed"] is True


def test_a_body_without_a_message_id_is_still_read() -> None:
    assert garbled(message_id=None).id == NO_ID


def test_selecting_everything_picks_every_message_even_one_that_is_not_a_dead_letter() -> None:
    assert Selection().everything
    assert Selection().matches(entry())
    assert Selection().matches(garbled())


def test_selecting_ids_picks_only_those_ids() -> None:
    wanted, other = entry(), entry()

    selection = Selection.of_ids([wanted.id, "dl_bad"])

    assert [selection.matches(read) for read in (wanted, other, garbled())] == [True, False, True]
    assert not selection.everything


def test_selecting_a_subscription_picks_only_its_dead_letters() -> None:
    selection = Selection.of_subscription("sub_a")

    assert selection.matches(entry("sub_a"))
    assert not selection.matches(entry("sub_b"))


def test_selecting_older_than_picks_dead_letters_parked_before_the_cutoff_only() -> None:
    selection = Selection.older_than(3600, now=NOW)

    assert selection.matches(entry(dead_lettered=NOW - timedelta(hours=2)))
    assert not selection.matches(entry(dead_lettered=NOW - timedelta(minutes=59)))


def test_selecting_older_than_never_picks_a_body_without_a_date() -> None:
    assert not Selection.older_than(0, now=NOW + timedelta(days=1)).matches(garbled())


def test_an_id_selection_is_covered_once_every_id_is_found_and_names_the_missing_ones() -> None:
    selection = Selection.of_ids(["dl_b", "dl_a", "dl_c"])

    assert not selection.covers({"dl_a"})
    assert selection.covers({"dl_a", "dl_b", "dl_c", "dl_z"})
    assert selection.missing({"dl_b"}) == ["dl_a", "dl_c"]


def test_other_selections_are_never_covered_early_and_miss_nothing() -> None:
    for selection in (Selection(), Selection.of_subscription("sub_a"), Selection.older_than(60, now=NOW)):
        assert not selection.covers({"dl_a"})
        assert selection.missing({"dl_a"}) == []
