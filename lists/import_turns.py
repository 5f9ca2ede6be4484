"""Writing an import's chunks on two database connections, committed in file order.

A chunk's write is PostgreSQL's work (the heap, nine indexes on subscribers, five on
subscriptions, the WAL): one server process on one core, while the parsing thread
leaves most of the other core idle. Two writer threads, each on its own connection,
write two chunks at once; a chunk's transaction then waits for its turn before it
saves the job's progress and commits, so chunks still commit in the order of the file.
That keeps what a single writer guarantees: the job's resume point only moves forward
over committed chunks, and a failed chunk commits nothing after it (the chunk behind it
rolls back, and a resumed run writes both again).

The two chunks never touch the same rows: the file's duplicates are rejected before
chunks are made (lists.imports._chunks), so their addresses, and the subscribers and
subscriptions written for them, are disjoint. What they do share (the job's row, the
list's counts) is written only in turn.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TypeVar

from django.db import connection, connections

T = TypeVar("T")
R = TypeVar("R")

WRITERS = 2


class TurnAbandoned(Exception):
    """A chunk before this one failed: this one must not commit."""


class Turns:
    """Hands the right to commit from chunk n to chunk n + 1."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._next = 0
        self._failed: int | None = None  # the first chunk that failed

    def _behind_failure(self, n: int) -> bool:
        return self._failed is not None and self._failed < n

    def wait(self, n: int) -> None:
        """Returns when every chunk before n has committed; raises TurnAbandoned if one
        of them failed. A failure behind n does not concern it: n still commits."""
        with self._changed:
            self._changed.wait_for(lambda: self._next == n or self._behind_failure(n))
            if self._next != n:
                raise TurnAbandoned(f"chunk {self._failed}, before chunk {n}, failed")

    def done(self, n: int) -> None:
        with self._changed:
            self._next = n + 1
            self._changed.notify_all()

    def fail(self, n: int) -> None:
        with self._changed:
            self._failed = n if self._failed is None else min(self._failed, n)
            self._changed.notify_all()


def usable() -> bool:
    """Whether chunks may go to other connections: PostgreSQL, and no transaction open
    around the import (rows it wrote would be invisible to the other connections)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def write_in_turn(
    chunks: Iterable[T],
    write: Callable[[T, Callable[[], None]], R],
    on_committed: Callable[[R], None],
    max_chunks: int | None = None,
) -> bool:
    """Writes each chunk with ``write(chunk, wait_for_turn)`` on one of WRITERS threads.

    ``write`` opens the chunk's transaction, does its heavy work, calls
    ``wait_for_turn()`` before it touches shared rows, and commits. ``on_committed``
    runs in the calling thread, in file order, with what ``write`` returned. Returns
    True when the chunks ran out, False when ``max_chunks`` stopped it first. The
    first exception of a chunk (or of the chunk source) is raised once every chunk
    already handed out has committed or rolled back.
    """
    turns = Turns()
    pending: deque[Future] = deque()
    with _writers() as submit:
        try:
            for n, chunk in enumerate(chunks):
                if max_chunks is not None and n >= max_chunks:
                    _settle(pending, on_committed, keep=0)
                    return False
                pending.append(submit(lambda n=n, chunk=chunk: _in_turn(turns, n, chunk, write)))
                _settle(pending, on_committed, keep=WRITERS - 1)
            _settle(pending, on_committed, keep=0)
        except BaseException:
            # A failed chunk has already called off the chunks behind it (see _in_turn);
            # a failure of the chunk source leaves the chunks in flight, all ahead of it,
            # to commit, as they would have one at a time.
            _drain(pending, on_committed)
            raise
    return True


def _in_turn(turns: Turns, n: int, chunk: T, write: Callable[[T, Callable[[], None]], R]) -> R:
    try:
        result = write(chunk, lambda: turns.wait(n))
    except BaseException:
        turns.fail(n)
        raise
    turns.done(n)
    return result


def _settle(pending: deque[Future], on_committed: Callable[[R], None], keep: int) -> None:
    """Waits for the oldest chunks until at most ``keep`` are in flight (raises the
    first failure)."""
    while len(pending) > keep:
        on_committed(pending.popleft().result())


def _drain(pending: deque[Future], on_committed: Callable[[R], None]) -> None:
    # After a failure: let the chunks in flight finish (ahead of a failed chunk they
    # commit, behind it they roll back) without raising their errors over the first one.
    for future in pending:
        try:
            result = future.result()
        except BaseException:  # noqa: BLE001, S112
            continue
        on_committed(result)
    pending.clear()


@contextmanager
def _writers() -> Iterator[Callable[[Callable[[], R]], Future]]:
    """WRITERS threads taking work from one queue; yields the function that submits.

    Not a ThreadPoolExecutor: each thread must close its own database connection when
    the import ends (Django's connections are per thread), and an executor has no hook
    that runs in every worker thread on shutdown.
    """
    work: queue.SimpleQueue = queue.SimpleQueue()

    def serve() -> None:
        try:
            while (item := work.get()) is not None:
                future, call = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(call())
                except BaseException as exc:  # handed to the submitter through the future
                    future.set_exception(exc)
        finally:
            # The thread's own connection (Django's connections are per thread).
            connections.close_all()

    threads = [
        threading.Thread(target=serve, name=f"import-write-{i}", daemon=True)
        for i in range(WRITERS)
    ]
    for thread in threads:
        thread.start()

    def submit(call: Callable[[], R]) -> Future:
        future: Future = Future()
        work.put((future, call))
        return future

    try:
        yield submit
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
