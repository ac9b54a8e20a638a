"""The access log off the hot path: every read is journaled in memory and delivered to the logs in batches.

A cache hit must cost about a microsecond (issue 28), and one log record costs several (Python's logging
builds a ``LogRecord``; the table log is a database statement). So :meth:`AccessJournal.add` only appends
a tuple to a deque, and the entries are delivered, in order and none dropped, as :class:`AccessEvent`\\ s
to each :class:`AccessLog` (``record_batch`` when the log has it, else ``record`` one by one):

- by a background thread every ``interval`` seconds;
- by the reading thread itself when ``max_pending`` entries are waiting (back-pressure: a process that
  reads faster than its logs can record is slowed down to their pace, never allowed to drop entries);
- by :meth:`AccessJournal.flush` (and ``SecretReader.close``), and when the journal is garbage-collected
  or the interpreter exits.

Reads are audited or refused, as before, with a bounded lag: a batch that a log refuses stays in the
journal (delivered again, to every log, at the next try: at least once), and from then on every read is
refused with the log's error until a delivery succeeds. ``max_pending=0`` records each access before the
read returns (no thread), so a failing log refuses the very read it failed on. Decision 0048.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Sequence

import psycopg

from tenant_secrets.reader.access_log import AccessEvent, AccessLog, Outcome, Source

Entry = tuple[str | uuid.UUID, str, str | None, Source | None, Outcome, bool]
"""(tenant as the caller named it, key, company id, source, outcome, wrote_back): what the hot path appends,
without building an :class:`AccessEvent` (a frozen dataclass costs about a microsecond to make)."""

MAX_NAME = 255
"""The access table's ``tenant`` column; a caller may pass any text as a subdomain."""

BATCH = 512
"""Entries per delivery call: bounds how long a delivering thread holds the logs."""


class JournalError(Exception):
    """A log refused a batch; the message is the log's error, which never holds a value (events hold none)."""


def event(entry: Entry) -> AccessEvent:
    tenant, key, company_id, source, outcome, wrote_back = entry
    return AccessEvent(str(tenant)[:MAX_NAME], company_id, key, source, outcome, wrote_back)


class _Outbox:
    """The journal's state, shared by the journal, its thread and its finalizer (which must not hold the
    journal itself)."""

    def __init__(self, logs: Sequence[AccessLog]) -> None:
        self.logs = tuple(logs)
        self.pending: deque[Entry] = deque()
        self.lock = threading.Lock()
        self.failure: str | None = None

    def deliver(self) -> None:
        """Deliver every pending entry in order; on a log's error keep the batch and raise :class:`JournalError`."""
        with self.lock:
            while self.pending:
                batch = [self.pending.popleft() for _ in range(min(len(self.pending), BATCH))]
                try:
                    self.send([event(entry) for entry in batch])
                except Exception as error:
                    self.pending.extendleft(reversed(batch))
                    self.failure = describe(error)
                    raise JournalError(self.failure) from None
            self.failure = None

    def send(self, events: list[AccessEvent]) -> None:
        for log in self.logs:
            record_batch = getattr(log, "record_batch", None)
            if record_batch is not None:
                record_batch(events)
            else:
                for one in events:
                    log.record(one)

    def deliver_quietly(self) -> None:
        with contextlib.suppress(JournalError):  # kept, and every read refused, until a delivery succeeds
            self.deliver()


def _deliver_every(outbox: _Outbox, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        outbox.deliver_quietly()


def _after_fork(journal: weakref.ref[AccessJournal]) -> None:
    alive = journal()
    if alive is not None:
        alive._forked()


def _close(outbox: _Outbox, stop: threading.Event) -> None:
    stop.set()
    outbox.deliver_quietly()


class AccessJournal:
    """Entries appended by readers' threads, delivered to ``logs`` in order (module docstring)."""

    def __init__(self, logs: Sequence[AccessLog], *, max_pending: int = 1024, interval: float = 0.05) -> None:
        if max_pending < 0 or interval <= 0:
            raise ValueError("access log: max_pending (entries) must be >= 0 and interval (seconds) > 0")
        self._outbox = _Outbox(logs)
        self._pending = self._outbox.pending
        self._max = max_pending if self._outbox.logs else 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._max:
            self._start()
            # A forked child (a pre-forking server) has no thread: it starts its own, with a fresh lock, and
            # leaves the entries it inherited to the parent, which delivers them.
            os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))
        # at garbage collection or interpreter exit: stop the thread and deliver what is left
        self._finalizer = weakref.finalize(self, _close, self._outbox, self._stop)

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=_deliver_every,
            args=(self._outbox, self._interval, self._stop),
            name="tenant-secrets-access-log",
            daemon=True,
        )
        self._thread.start()

    def _forked(self) -> None:
        self._outbox.lock = threading.Lock()
        self._outbox.pending.clear()
        self._outbox.failure = None
        if not self._stop.is_set():
            self._start()

    def __repr__(self) -> str:
        return f"AccessJournal(pending={len(self._pending)}, max_pending={self._max})"

    def add(self, entry: Entry) -> None:
        """Journal one access; raises :class:`JournalError` (and journals nothing) when the read must be
        refused: the logs refused an earlier batch, or this call had to deliver and they refused it."""
        if not self._max:
            if self._outbox.logs:
                try:
                    self._outbox.send([event(entry)])
                except Exception as error:
                    raise JournalError(describe(error)) from None
            return
        if self._outbox.failure is not None:
            raise JournalError(self._outbox.failure)
        if len(self._pending) >= self._max:
            self._outbox.deliver()
        self._pending.append(entry)

    def flush(self) -> None:
        """Deliver every pending entry now; :class:`JournalError` if a log refuses (the entries are kept)."""
        self._outbox.deliver()

    def close(self) -> None:
        """Stop the delivering thread and deliver what is left; :class:`JournalError` if a log refuses."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._finalizer.detach()
        self._outbox.deliver()


def describe(error: Exception) -> str:
    """A database error without its detail lines (which can quote a row); the store's own are value-free."""
    if isinstance(error, psycopg.Error):
        state = f" (SQLSTATE {error.sqlstate})" if error.sqlstate else ""
        return f"{type(error).__name__}{state}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
    return str(error)
