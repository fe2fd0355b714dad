"""Reading worker metrics pages for `hookline status`: sums over pods, differences over a window."""

from __future__ import annotations

from workers.ops.scrape import parse

PAGE = """# TYPE hookline_deliveries_total counter
hookline_deliveries_total{{outcome="delivered"}} {delivered}
hookline_deliveries_total{{outcome="blocked"}} {blocked}
# TYPE hookline_unrelated gauge
hookline_unrelated 7
"""


def page(delivered: float, blocked: float) -> str:
    return PAGE.format(delivered=delivered, blocked=blocked)


def test_pages_of_several_pods_are_summed_and_unrelated_series_ignored() -> None:
    sample = parse(page(10, 1))
    parse(page(5, 0), sample)
    assert sample.get("hookline_deliveries_total") == {"delivered": 15, "blocked": 1}
    assert "hookline_unrelated" not in sample.values


def test_the_window_counts_what_happened_between_two_reads() -> None:
    recent = parse(page(130, 2)).since(parse(page(100, 1)))
    assert recent.get("hookline_deliveries_total") == {"delivered": 30, "blocked": 1}
    assert recent.success_ratio() == 30 / 31


def test_a_counter_that_went_down_restarted_and_counts_from_zero() -> None:
    recent = parse(page(4, 0)).since(parse(page(100, 1)))
    assert recent.get("hookline_deliveries_total") == {"delivered": 4, "blocked": 0}


def test_no_finished_delivery_means_no_ratio() -> None:
    assert parse(page(3, 0)).since(parse(page(3, 0))).success_ratio() is None
