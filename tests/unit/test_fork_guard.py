"""The metrics server's threads and dramatiq's forks keep apart."""

from __future__ import annotations

import os
import socket
import threading
import time

from workers.ops.server import ForkGuard


def fork_and_wait(guard: ForkGuard) -> float:
    """Fork as dramatiq does (with the guard's hooks run around it); return when the fork happened."""
    guard.before_fork()
    pid = os.fork()
    if pid == 0:  # the child: run the child hook, report whether it worked, and leave at once
        guard.after_fork_in_child()
        os._exit(0)
    forked_at = time.monotonic()
    guard.after_fork_in_parent()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return forked_at


def test_a_fork_waits_for_the_request_being_answered() -> None:
    guard = ForkGuard()
    entered = threading.Event()
    finished_at: list[float] = []

    def answer_slowly() -> None:
        with guard.working():
            entered.set()
            time.sleep(0.3)
            finished_at.append(time.monotonic())

    thread = threading.Thread(target=answer_slowly)
    thread.start()
    entered.wait()
    forked_at = fork_and_wait(guard)
    thread.join()
    assert forked_at >= finished_at[0]


def test_no_request_starts_while_a_fork_is_under_way() -> None:
    guard = ForkGuard()
    guard.before_fork()
    started = threading.Event()

    def answer() -> None:
        with guard.working():
            started.set()

    thread = threading.Thread(target=answer)
    thread.start()
    assert not started.wait(0.2)
    guard.after_fork_in_parent()
    assert started.wait(5)
    thread.join()


def test_the_child_closes_the_listening_socket_and_the_parent_keeps_it() -> None:
    guard = ForkGuard()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    guard.child_cleanups.append(listener.close)
    reader, writer = os.pipe()
    guard.before_fork()
    pid = os.fork()
    if pid == 0:
        guard.after_fork_in_child()
        os.write(writer, b"closed" if listener.fileno() == -1 else b"open")
        os._exit(0)
    guard.after_fork_in_parent()
    os.waitpid(pid, 0)
    assert os.read(reader, 16) == b"closed"
    assert listener.fileno() != -1
    listener.close()
    os.close(reader)
    os.close(writer)
