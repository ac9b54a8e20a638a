"""The access journal (decision 0048): entries delivered in order, in batches, off the hot path, by a
thread within its interval, and at close, garbage collection or exit; never dropped."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Sequence

import pytest

from tenant_secrets.reader import AccessEvent, Outcome, Source
from tenant_secrets.reader.journal import AccessJournal, Entry, JournalError


class Batches:
    """A log that takes whole batches, and can be made to refuse them."""

    def __init__(self) -> None:
        self.batches: list[list[AccessEvent]] = []
        self.refuse = False

    def record(self, event: AccessEvent) -> None:  # pragma: no cover - record_batch is preferred
        raise AssertionError("record_batch should have been used")

    def record_batch(self, events: Sequence[AccessEvent]) -> None:
        if self.refuse:
            raise OSError("fake-log-down")
        self.batches.append(list(events))

    @property
    def keys(self) -> list[str]:
        return [event.key for batch in self.batches for event in batch]


def entry(n: int) -> Entry:
    return ("acme", f"KEY_{n}", None, Source.CACHE, Outcome.FOUND, False)


def test_a_thread_delivers_within_the_interval_in_order_as_batches() -> None:
    log = Batches()
    journal = AccessJournal([log], max_pending=1000, interval=0.02)
    for n in range(50):
        journal.add(entry(n))
    deadline = time.monotonic() + 5
    while len(log.keys) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.keys == [f"KEY_{n}" for n in range(50)]
    assert len(log.batches) < 50, "batched, not one call per entry"
    assert log.batches[0][0] == AccessEvent("acme", None, "KEY_0", Source.CACHE, Outcome.FOUND)
    journal.close()


def test_what_is_pending_is_delivered_when_the_journal_is_collected() -> None:
    log = Batches()
    journal = AccessJournal([log], max_pending=1000, interval=3600)
    journal.add(entry(1))
    del journal
    gc.collect()
    assert log.keys == ["KEY_1"]


def test_a_refused_batch_is_kept_and_refuses_new_entries_until_it_is_delivered() -> None:
    log = Batches()
    journal = AccessJournal([log], max_pending=1000, interval=3600)
    journal.add(entry(1))
    log.refuse = True
    with pytest.raises(JournalError, match="fake-log-down"):
        journal.flush()
    with pytest.raises(JournalError, match="fake-log-down"):
        journal.add(entry(2))  # refused: the read it records is not served, so it is not journaled
    log.refuse = False
    with pytest.raises(JournalError):
        journal.add(entry(2))  # refused until a delivery succeeds (the thread's next try, or a flush)
    journal.flush()
    journal.add(entry(3))
    journal.close()
    assert log.keys == ["KEY_1", "KEY_3"]


def test_a_long_tenant_name_is_recorded_cut_to_the_tables_column() -> None:
    log = Batches()
    journal = AccessJournal([log], max_pending=0)
    journal.add(("x" * 1000, "KEY", None, None, Outcome.UNKNOWN_TENANT, False))
    assert [len(event.tenant) for batch in log.batches for event in batch] == [255]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_delivers_its_own_entries_with_its_own_thread() -> None:
    """A pre-forking server: the child's journal has no thread after fork unless it starts one."""
    log = Batches()
    journal = AccessJournal([log], max_pending=1000, interval=0.02)
    journal.add(entry(1))  # the parent's: the parent delivers it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its log received, then leave without running the parent's cleanup
        journal.add(entry(2))
        deadline = time.monotonic() + 5
        while log.keys[-1:] != ["KEY_2"] and time.monotonic() < deadline:
            time.sleep(0.01)
        os.write(write, ",".join(log.keys).encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child = os.read(read, 1000).decode()
    os.close(read)
    journal.close()
    assert os.waitstatus_to_exitcode(status) == 0
    assert child.split(",")[-1] == "KEY_2", "delivered by the child's own thread"
    assert child.split(",").count("KEY_1") <= 1, "the child never delivers what it inherited"
    assert log.keys == ["KEY_1"], "the parent's entry, once, by the parent"
