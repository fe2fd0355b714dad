"""What ``replay`` and ``purge`` of a parking queue print: done on stdout, refused and missing on stderr.

Shared by ``hookline dlq``, ``hookline invalid`` and ``hookline crashed``, so
that a script reads each of them the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from workers.cli.output import print_json
from workers.ops.dlq import PurgeReport, ReplayReport


def print_replay(report: ReplayReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_record())
        return
    for replayed_id in report.replayed:
        click.echo(f"replayed   {replayed_id}")
    for refusal in report.refused:
        click.echo(f"refused    {refusal.id}: {refusal.reason}", err=True)
    for missing_id in report.not_found:
        click.echo(f"not found  {missing_id}", err=True)
    summary = f"{len(report.replayed)} replayed, {len(report.refused)} refused"
    click.echo(summary + (f", {len(report.not_found)} not found" if report.not_found else ""))


def print_purge(report: PurgeReport, as_json: bool, counted: Callable[[int], str]) -> None:
    """``counted(n)`` names n of what was purged: "3 dead letters", "1 message"."""
    if as_json:
        print_json(report.to_record())
        return
    for purged_id in report.ids or ():
        click.echo(f"purged     {purged_id}")
    for missing_id in report.not_found:
        click.echo(f"not found  {missing_id}", err=True)
    click.echo(f"{counted(report.purged)} purged")
