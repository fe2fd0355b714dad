"""A PNG of a bench run: deliveries per second, and latency p50/p99, over time, hookline and baseline.

matplotlib is imported only here, and only when a plot is asked for: it is
slow to import and in the ``bench`` extra, not the ``worker`` one. The
``Figure`` is drawn with the Agg canvas directly, so no display or pyplot
global state is involved.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.errors import BenchError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLOURS = {"hookline": "tab:blue", "hookline_log_off": "tab:green", "baseline": "tab:orange"}


def check_available() -> None:
    """:class:`BenchError` before a run if matplotlib is missing, not after it."""
    if importlib.util.find_spec("matplotlib") is None:
        raise BenchError("--plot needs matplotlib: pip install 'hookline[worker,bench]'")


def write_plot(result: dict[str, Any], path: Path) -> None:
    """Draw ``result`` (as :func:`workers.bench.run.run` returns it) into the PNG file ``path``."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - see the module docstring

    figure = Figure(figsize=(10, 7), layout="constrained")
    throughput, latency = figure.subplots(2, 1, sharex=True)
    for name in COLOURS:
        if result.get(name):
            _draw(throughput, latency, name, result[name])
    throughput.set_ylabel("deliveries/s")
    throughput.set_ylim(bottom=0)
    throughput.legend(loc="best")
    latency.set_ylabel("latency, event timestamp to receipt (ms)")
    latency.set_yscale("log")
    latency.set_xlabel("seconds since the first publish")
    latency.legend(loc="best")
    figure.suptitle(_title(result))
    figure.savefig(path, dpi=100, format="png")


def _draw(throughput: Axes, latency: Axes, name: str, figures: dict[str, Any]) -> None:
    rows, width, colour = figures["timeline"], figures["timeline_bucket_s"], COLOURS[name]
    if not rows:
        return
    # A bucket's rate holds from its start to the next one's: close the last step at its end.
    starts = [row["t"] for row in rows] + [rows[-1]["t"] + width]
    rates = [row["deliveries_per_s"] for row in rows] + [rows[-1]["deliveries_per_s"]]
    label = f"{name} ({width:g} s buckets)"
    throughput.step(starts, rates, where="post", color=colour, label=label)
    middles = [row["t"] + width / 2 for row in rows]
    dots = "." if len(rows) <= 40 else ""  # points on a short run, where a line alone may hide one
    for key, style in (("p50_ms", f"{dots}-"), ("p99_ms", f"{dots}:")):
        values = [float("nan") if row[key] is None else row[key] for row in rows]
        latency.plot(middles, values, style, color=colour, label=f"{name} {key[:3]}")


def _title(result: dict[str, Any]) -> str:
    settings = result["settings"]
    ratio = f", hookline/baseline {result['ratio']:.2f}x" if result.get("ratio") is not None else ""
    return (
        f"hookline bench: {settings['events']} events x {settings['subscriptions']} subscription(s), "
        f"{settings['processes']} process(es){ratio}"
    )
