"""What a command shows and asks on the terminal, beside its result: progress bars and confirmations.

Both go to stderr, so stdout carries only the result (``--json`` included),
and both stay silent, or refuse, when there is no terminal to show or ask on.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from types import TracebackType

import click

# Smaller batches finish before a bar would tell anything.
PROGRESS_THRESHOLD = 100


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def confirm_or_stop(question: str, *, yes: bool, refusal: str) -> None:
    """Ask ``question`` unless ``yes``; stop with exit 1 on "no", and with ``refusal`` without a terminal."""
    if yes:
        return
    if not stdin_is_terminal():
        raise click.ClickException(refusal)
    if not click.confirm(question, err=True):
        click.echo("Nothing done.", err=True)
        click.get_current_context().exit(1)


class Progress:
    """An ``on_progress`` callback: a bar on stderr for a large batch on a terminal, else silent.

    The size of a batch is known only once the queue is counted, so the bar
    starts on the first report rather than up front.
    """

    def __init__(self, label: str) -> None:
        self._label = label
        self._stack = contextlib.ExitStack()
        self._update: Callable[[int], None] | None = None
        self._silent = False
        self._shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self._update is None and not self._silent:
            self._silent = total <= PROGRESS_THRESHOLD or not sys.stderr.isatty()
            if not self._silent:
                bar = click.progressbar(length=total, label=self._label, file=sys.stderr)
                self._update = self._stack.enter_context(bar).update
        if self._update is not None:
            self._update(done - self._shown)
            self._shown = done

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stack.close()
