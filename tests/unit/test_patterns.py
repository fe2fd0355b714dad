"""Event patterns behave like AMQP topic bindings, and PatternIndex agrees with matches()."""

from __future__ import annotations

import random

import pytest

from workers.errors import InvalidSubscription
from workers.subscriptions.patterns import PatternIndex, matches, validate_pattern


def amqp_topic_match(pattern: str, event_type: str) -> bool:
    """A deliberately naive reference: RabbitMQ's topic matching, segment by segment."""

    def match(words: list[str], segments: list[str]) -> bool:
        if not words:
            return not segments
        head, rest = words[0], words[1:]
        if head == "#":
            return any(match(rest, segments[skip:]) for skip in range(len(segments) + 1))
        if not segments:
            return False
        return (head in ("*", segments[0])) and match(rest, segments[1:])

    return match(pattern.split("."), event_type.split("."))


@pytest.mark.parametrize(
    "pattern",
    ["order", "order.created", "Order_2.v1", "*", "#", "order.*", "order.#", "#.created", "a.#.b", "*.*.#"],
)
def test_validate_pattern_accepts_words_and_whole_segment_wildcards(pattern: str) -> None:
    assert validate_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", "must not be empty"),
        (".order", "empty segment"),
        ("order.", "empty segment"),
        ("order..created", "empty segment"),
        ("ord*", "'*' and '#' must stand alone"),
        ("order.#created", "'*' and '#' must stand alone"),
        ("order.**", "'*' and '#' must stand alone"),
        ("order-created", "only letters, digits and '_'"),
        ("order created", "only letters, digits and '_'"),
        ("a." * 128 + "a", "longer than 255"),
    ],
)
def test_validate_pattern_refuses_malformed_patterns_with_the_reason(pattern: str, reason: str) -> None:
    with pytest.raises(InvalidSubscription, match="event pattern") as caught:
        validate_pattern(pattern)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("order.created", "order.created", True),
        ("order.created", "order.created.v2", False),
        ("order.created", "order", False),
        ("order.*", "order.created", True),
        ("order.*", "order", False),
        ("order.*", "order.created.v2", False),
        ("*", "order", True),
        ("*", "order.created", False),
        ("#", "order", True),
        ("#", "order.created.v2", True),
        ("order.#", "order", True),
        ("order.#", "order.created", True),
        ("order.#", "order.created.v2", True),
        ("order.#", "orders.created", False),
        ("#.created", "created", True),
        ("#.created", "order.created", True),
        ("#.created", "order.created.v2", False),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.b.c", False),
        ("a.#.#.b", "a.b", True),
        ("#.*", "a", True),
        ("#.*", "a.b.c", True),
        ("*.#.*", "a", False),
        ("*.#.*", "a.b", True),
        ("Order", "order", False),
        ("order.*", "order.crea.ted", False),
    ],
)
def test_matches_follows_amqp_topic_semantics(pattern: str, event_type: str, expected: bool) -> None:
    assert matches(pattern, event_type) is expected
    assert amqp_topic_match(pattern, event_type) is expected  # the reference agrees with the table


def test_matches_refuses_an_invalid_pattern() -> None:
    with pytest.raises(InvalidSubscription):
        matches("ord*", "order")


WORDS = ["a", "b", "c", "order"]


def random_pattern(rng: random.Random) -> str:
    return ".".join(rng.choice([*WORDS, "*", "#"]) for _ in range(rng.randint(1, 5)))


def random_event_type(rng: random.Random) -> str:
    return ".".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))


@pytest.mark.parametrize("seed", range(20))
def test_matches_agrees_with_the_amqp_reference_on_random_patterns(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        pattern, event_type = random_pattern(rng), random_event_type(rng)
        assert matches(pattern, event_type) is amqp_topic_match(pattern, event_type), (pattern, event_type)


@pytest.mark.parametrize("seed", range(20))
def test_pattern_index_returns_exactly_the_values_matches_would_pick_in_insertion_order(seed: int) -> None:
    rng = random.Random(seed)
    entries = [(random_pattern(rng), rng.randrange(15)) for _ in range(rng.randint(0, 30))]
    index = PatternIndex(entries)
    first_seen = list(dict.fromkeys(value for _, value in entries))
    for _ in range(100):
        event_type = random_event_type(rng)
        picked = {value for pattern, value in entries if matches(pattern, event_type)}
        expected = tuple(value for value in first_seen if value in picked)
        assert index.match(event_type) == expected, (entries, event_type)


def test_pattern_index_returns_a_value_once_even_when_several_of_its_patterns_match() -> None:
    index = PatternIndex([("order.created", "s1"), ("order.*", "s1"), ("#", "s1"), ("order.#", "s2")])

    assert index.match("order.created") == ("s1", "s2")


def test_pattern_index_orders_values_by_first_insertion_not_by_pattern_kind() -> None:
    entries = [("#", "wild"), ("order.created", "exact"), ("order.*", "wild"), ("*.created", "late")]
    index = PatternIndex(entries)

    assert index.match("order.created") == ("wild", "exact", "late")


def test_pattern_index_lets_hash_match_zero_segments() -> None:
    index = PatternIndex([("order.#", "all-orders"), ("a.#.b", "ab"), ("#.created", "created")])

    assert index.match("order") == ("all-orders",)
    assert index.match("a.b") == ("ab",)
    assert index.match("created") == ("created",)
    assert index.match("orders") == ()


def test_pattern_index_memoises_results_per_event_type() -> None:
    index = PatternIndex([("order.*", "s1"), ("order.created", "s2")])

    first = index.match("order.created")

    assert index.match("order.created") is first
    assert index.match("order.paid") == ("s1",)
    assert (index.cache_info().hits, index.cache_info().misses) == (1, 2)


def test_pattern_index_memo_is_bounded_and_still_right_after_eviction() -> None:
    index = PatternIndex([("order.*", "s1")], cache_size=2)

    results = [index.match(f"order.e{number}") for number in range(5)]

    assert results == [("s1",)] * 5
    assert index.cache_info().currsize == 2
    assert index.match("order.e0") == ("s1",)


def test_pattern_index_counts_distinct_values() -> None:
    assert len(PatternIndex([("a", 1), ("b", 1), ("c", 2)])) == 2
    assert PatternIndex([]).match("order.created") == ()


def test_pattern_index_refuses_an_invalid_pattern_when_built() -> None:
    with pytest.raises(InvalidSubscription, match="ord\\*"):
        PatternIndex([("order.created", "s1"), ("ord*", "s2")])
