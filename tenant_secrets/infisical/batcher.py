"""Coalescing the folder writes of one process's concurrent calls into shared batch upserts.

Each Infisical folder is its own resource, written by its own provider call; the provider plugin
serves as many at once as the engine sends (its `--parallel`; a pool of 64 threads, decision 0039).
Infisical's batch upsert (``PATCH /api/v3/secrets/batch/raw``, ``mode: upsert``) takes a ``secretPath``
per item, so the writes of the calls in flight can go in one request: a call submits its folder's items
and waits; the first one due sends everything queued for the environment once every folder write in
progress has submitted and either every thread that writes in this process is waiting (no other write
can come) or the oldest has waited :data:`LINGER` (for the engine's next calls); a write still creating
its folder is waited for :data:`MAX_WAIT` at most. Measured in docs/decisions/0037-fewer-infisical-requests.md.

What each call gets back is its own answer: a batch is atomic upstream, so when a shared batch is
refused (a missing folder answers 404 without saying which; a 403 or 400 names no folder either), each
call sends its items again alone, and the answer it then gets is its folder's. A batch whose answer was
lost (5xx, dropped connection) is looked at before it is sent again: it is applied when every folder
holds what was sent. Bodies stay under Infisical's 1 MiB limit: a flush is cut into as many requests as
that takes, a folder never split unless it alone is too large.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from tenant_secrets.infisical.errors import InfisicalError
from tenant_secrets.infisical.transport import BODY_LIMIT, _Reply

LINGER = 0.2
"""Seconds a submitted write waits for writes not begun yet (the engine's next calls), unless every thread
that writes in this process is already waiting."""
MAX_WAIT = 0.5
"""Seconds a submitted write waits, at most, for the writes in progress to submit theirs."""
BUDGET = BODY_LIMIT - 1024
"""Bytes of one request body: the limit, less a margin for what the HTTP layer might add."""


@dataclass(frozen=True)
class BatchCalls:
    """What the coalescer needs of one client: its calls, not the client, so either can change alone."""

    body: Callable[[str, Iterable[tuple[str, str, str]]], bytes]
    """The encoded body of a batch upsert of ``(folder path, key, value)`` items in an environment."""
    send: Callable[..., _Reply]
    """Sends a body with the client's retry policy: ``send(environment, body, *, what, keys, sensitive, applied)``,
    where ``applied`` says whether a batch whose answer was lost is in place."""
    read: Callable[[str, str], dict[str, str] | None]
    """A folder's secrets by key (None when it does not exist), given (environment, path)."""


@dataclass(eq=False)
class _Write:
    """One call's items for one folder, and, once ``done``, its answer."""

    environment: str
    path: str
    items: dict[str, str]
    submitted: float
    done: threading.Event = field(default_factory=threading.Event)
    reply: _Reply | None = None
    error: BaseException | None = None
    alone: bool = False  # the shared batch was refused: send again alone, so the answer is this folder's
    parts: int = 0


def _item_size(path: str, key: str, value: str) -> int:
    """Bytes the item adds to a body made by ``Transport.upsert_body`` (its JSON and a comma)."""
    item = {"secretPath": path, "secretKey": key, "secretValue": value}
    return len(json.dumps(item, separators=(",", ":")).encode()) + 1


def _chunks(writes: list[_Write], envelope: int) -> list[list[tuple[_Write, list[str]]]]:
    """The writes packed in order into bodies of at most :data:`BUDGET` bytes; a folder is split only when
    its items alone do not fit."""
    chunks: list[list[tuple[_Write, list[str]]]] = [[]]
    size = envelope
    for write in writes:
        sizes = {k: _item_size(write.path, k, v) for k, v in write.items.items()}
        whole = sum(sizes.values())
        if size + whole > BUDGET and chunks[-1]:
            chunks.append([])
            size = envelope
        if size + whole <= BUDGET:
            chunks[-1].append((write, list(write.items)))
            size += whole
            write.parts += 1
            continue
        keys: list[str] = []
        for key in write.items:
            if size + sizes[key] > BUDGET and keys:
                chunks[-1].append((write, keys))
                write.parts += 1
                chunks.append([])
                keys, size = [], envelope
            keys.append(key)
            size += sizes[key]
        chunks[-1].append((write, keys))
        write.parts += 1
    return [chunk for chunk in chunks if chunk]


class Coalescer:
    """The shared batch upserts of one identity's writes to one project, in one process."""

    def __init__(self, linger: float = LINGER, max_wait: float = MAX_WAIT) -> None:
        self._linger, self._max_wait = linger, max_wait
        self._cond = threading.Condition()
        self._queues: dict[str, list[_Write]] = {}
        self._working = 0  # folder writes in progress that have not submitted (creating or reading their folder)
        self._threads: set[int] = set()  # the threads that have written: the host's pool, as far as seen

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around one folder write: while it is in progress, a batch waits (a bounded time) for its items."""
        with self._cond:
            self._working += 1
            self._threads.add(threading.get_ident())
        try:
            yield
        finally:
            with self._cond:
                self._working -= 1
                self._cond.notify_all()

    def upsert(self, calls: BatchCalls, environment: str, path: str, items: Mapping[str, str]) -> _Reply:
        """Write ``items`` to the folder in a batch shared with the other writes in flight; the answer for
        this folder (a refusal is this folder's own). Called inside :meth:`writing`."""
        write = _Write(environment, path, dict(items), time.monotonic())
        envelope = len(calls.body(environment, []))
        for key, value in write.items.items():
            if envelope + _item_size(path, key, value) > BUDGET:
                raise InfisicalError(
                    f"the value of {key} in {environment}:{path} is larger than Infisical accepts in one "
                    f"request ({BODY_LIMIT // 1024} KiB); store it elsewhere",
                    environment=environment,
                    path=path,
                    keys=[key],
                )
        taken = self._enqueue(write)
        if taken:
            self._send(calls, environment, taken)
        write.done.wait()
        if write.alone:
            write.done.clear()
            write.alone, write.parts = False, 0
            self._send(calls, environment, [write])
        if write.error is not None:
            raise write.error
        if write.reply is None:
            raise RuntimeError("a coalesced write ended without an answer")
        return write.reply

    def _enqueue(self, write: _Write) -> list[_Write]:
        """Queue the write; the writes to send now if this call is the one to send them, else []."""
        with self._cond:
            queue = self._queues.setdefault(write.environment, [])
            queue.append(write)
            self._working -= 1
            self._cond.notify_all()
            try:
                while write in self._queues[write.environment]:
                    queued = self._queues[write.environment]
                    waited = time.monotonic() - queued[0].submitted
                    everyone = len(queued) >= len(self._threads)  # no other thread can bring a write
                    due = self._working <= 0 and (everyone or waited >= self._linger)
                    left = (self._max_wait if self._working > 0 else self._linger) - waited
                    if due or left <= 0:
                        taken = self._queues[write.environment]
                        self._queues[write.environment] = []
                        return taken
                    self._cond.wait(left)
                return []
            finally:
                self._working += 1

    def _send(self, calls: BatchCalls, environment: str, writes: list[_Write]) -> None:
        """Send the writes in as few requests as fit, and give each its answer."""
        try:
            for chunk in _chunks(writes, len(calls.body(environment, []))):
                live = [(w, keys) for w, keys in chunk if not w.done.is_set()]
                if live:
                    self._send_chunk(calls, environment, live)
        except BaseException as err:  # each unanswered write gets the error; the sender's own is one of them
            for write in writes:
                if not write.done.is_set():
                    write.error = err
                    write.done.set()
            if not isinstance(err, Exception):
                raise

    def _send_chunk(self, calls: BatchCalls, environment: str, chunk: list[tuple[_Write, list[str]]]) -> None:
        items = [(w.path, key, w.items[key]) for w, keys in chunk for key in keys]
        folders = list(dict.fromkeys(w.path for w, _ in chunk))
        keys = [key for _, keys in chunk for key in keys]
        if len(folders) == 1:
            what = f"batch upsert of {', '.join(keys)} in {environment}:{folders[0]}"
        else:
            what = f"batch upsert of {len(items)} secrets in {len(folders)} folders of {environment}"

        def applied() -> bool:
            """Whether a batch whose answer was lost is in place (every folder holds what was sent)."""
            try:
                for folder in folders:
                    held = calls.read(environment, folder) or {}
                    if any(held.get(k) != v for path, k, v in items if path == folder):
                        return False
            except InfisicalError:
                return False
            return True

        reply = calls.send(
            environment,
            calls.body(environment, items),
            what=what,
            keys=keys,
            sensitive=[value for _, _, value in items],
            applied=applied,
        )
        for write, _ in chunk:
            if reply.status >= 400 and len(folders) > 1:
                write.alone = True
                write.done.set()
                continue
            write.parts -= 1
            if reply.status >= 400 or write.parts == 0:
                write.reply = reply
                write.done.set()


_COALESCERS: dict[tuple[str, str, str], Coalescer] = {}
_COALESCERS_LOCK = threading.Lock()


def coalescer(site_url: str, client_id: str, project_id: str) -> Coalescer:
    """The process's coalescer for one identity and project."""
    key = (site_url, client_id, project_id)
    with _COALESCERS_LOCK:
        if key not in _COALESCERS:
            _COALESCERS[key] = Coalescer()
        return _COALESCERS[key]
