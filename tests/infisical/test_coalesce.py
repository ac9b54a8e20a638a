"""Many folders written at once (apply_folder): creates and updates share batch upserts with a secretPath
per item, each caller gets its own answer, bodies stay under 1 MiB; reads share one recursive listing."""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from infisical_server.testing import RunningServer
from tenant_secrets.infisical import ApplyResult, InfisicalClient, InfisicalError
from tenant_secrets.infisical.batcher import Coalescer, _chunks, _Write
from tenant_secrets.infisical.listing import LISTINGS
from tenant_secrets.infisical.transport import BODY_LIMIT

BATCH = "/api/v3/secrets/batch/raw"
PATCH = f"PATCH {BATCH}"


@pytest.fixture(autouse=True)
def _fresh_listings() -> Iterator[None]:
    LISTINGS.clear()
    yield
    LISTINGS.clear()


def _parallel(calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls in threads at once; their results (or exceptions) in order."""
    results: list[object] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as err:  # handed back to the test
            results[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def _folders(n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"/tenants/c{run}x{i}" for i in range(n)]


def test_new_folders_written_at_once_share_upserts(
    make_client: Callable[..., InfisicalClient], server: RunningServer
) -> None:
    """Eight folders written by eight threads: one create each, and their secrets in fewer requests
    than folders, each folder holding exactly its own values."""
    paths = _folders(8)
    clients = [make_client() for _ in paths]
    clients[0].list_folders("dev", "/")  # log in before counting
    server.settings(latency_ms=40)  # the folder creates overlap, as a provider host's calls do
    server.reset_requests()
    try:
        results = _parallel(
            [
                functools.partial(
                    c.apply_folder, "dev", p, upsert={"A": f"fake-a-{p[-2:]}", "B": "fake-b"}, folder_is_new=True
                )
                for c, p in zip(clients, paths, strict=True)
            ]
        )
    finally:
        server.settings(latency_ms=0)
    counts = server.request_counts()
    assert results == [ApplyResult(created=("A", "B"), updated=(), deleted=())] * 8
    assert all(isinstance(r, ApplyResult) and r.folder_created for r in results)
    assert counts["POST /api/v2/folders"] == 8
    assert counts[PATCH] <= 3, counts
    assert set(counts) == {"POST /api/v2/folders", PATCH}
    for p in paths:
        assert clients[0].list_secrets("dev", p) == {"A": f"fake-a-{p[-2:]}", "B": "fake-b"}


def test_a_refused_shared_batch_gives_each_folder_its_own_answer(
    make_client: Callable[..., InfisicalClient], server: RunningServer
) -> None:
    """A folder missing from a shared batch fails it whole upstream (404 naming no folder): each write is
    sent again alone, so the existing folder is written and only the missing one gets the 404."""
    here, gone = _folders(2)
    clients = [make_client(), make_client()]
    clients[0].ensure_folder("dev", here)
    coalescer = Coalescer(max_wait=5.0)
    ready = threading.Barrier(2)

    def write(client: InfisicalClient, path: str) -> int:
        with coalescer.writing():
            ready.wait()  # both in progress before either submits: they share one batch
            return coalescer.upsert(client.batch_calls, "dev", path, {"K": "fake-k"}).status

    server.reset_requests()
    statuses = _parallel([lambda: write(clients[0], here), lambda: write(clients[1], gone)])
    assert statuses == [200, 404]
    assert server.request_counts() == {PATCH: 3}, "the shared batch, then each folder alone"
    assert clients[0].list_secrets("dev", here) == {"K": "fake-k"}


def test_a_missing_folder_is_created_and_the_write_resent(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    server.reset_requests()
    result = client.apply_folder("dev", path, upsert={"K": "fake-k"})
    assert result.folder_created and result.created == ("K",)
    assert client.list_secrets("dev", path) == {"K": "fake-k"}


def test_writes_over_one_mebibyte_are_cut_below_the_limit(client: InfisicalClient, server: RunningServer) -> None:
    """Three folders of ~400 KiB each: no body over the limit (a larger one would be answered 500)."""
    paths = _folders(3)
    values = {p: {f"K{i}": f"fake-{p[-1]}-{i}-" + "v" * 4000 for i in range(100)} for p in paths}
    writes = [_Write("dev", p, values[p], 0.0) for p in paths]
    envelope = len(client.upsert_body("dev", []))
    chunks = _chunks(writes, envelope)
    assert len(chunks) == 2
    for chunk in chunks:
        body = client.upsert_body("dev", [(w.path, k, w.items[k]) for w, keys in chunk for k in keys])
        assert len(body) <= BODY_LIMIT
        assert json.loads(body)["mode"] == "upsert"
    sent = sorted((w.path, k) for chunk in chunks for w, keys in chunk for k in keys)
    assert sent == sorted((p, k) for p in paths for k in values[p])


def test_one_folder_too_large_for_one_request_is_split(client: InfisicalClient) -> None:
    big = _Write("dev", "/tenants/big", {f"K{i}": "v" * 20_000 for i in range(120)}, 0.0)
    chunks = _chunks([big], len(client.upsert_body("dev", [])))
    assert len(chunks) == 3 and big.parts == 3
    assert sorted(k for chunk in chunks for _, keys in chunk for k in keys) == sorted(big.items)


def test_a_value_larger_than_a_request_is_refused_before_anything_is_sent(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    client.ensure_folder("dev", path)
    server.reset_requests()
    with pytest.raises(InfisicalError, match="the value of HUGE in dev:") as error:
        client.apply_folder("dev", path, upsert={"HUGE": "v" * BODY_LIMIT})
    assert error.value.keys == ("HUGE",)
    assert PATCH not in server.request_counts()


def test_a_shared_batch_whose_answer_was_lost_is_not_sent_again_once_applied(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    client.apply_folder("dev", path, upsert={"K": "fake-k"})
    server.add_fault(BATCH, method="PATCH", status=503, count=1, after=True)  # applied, then the answer lost
    server.reset_requests()
    assert client.apply_folder("dev", path, upsert={"K": "fake-k2"}).updated == ("K",)
    assert server.request_counts()[PATCH] == 1
    assert client.list_secrets("dev", path) == {"K": "fake-k2"}
    versions = {s.secretKey: s.version for s in client._listing("dev", path, with_values=False, recursive=False) or []}
    assert versions == {"K": 2}, "one new version, not two"


def test_reads_share_one_recursive_listing_and_see_this_process_writes(
    make_client: Callable[..., InfisicalClient], server: RunningServer
) -> None:
    one, two = _folders(2)
    writer = make_client()
    writer.apply_secrets("dev", one, upsert={"A": "fake-a"})
    writer.apply_secrets("dev", two, upsert={"B": "fake-b"})
    readers = [make_client() for _ in range(4)]
    readers[0].list_folders("dev", "/")  # log in before counting
    server.reset_requests()

    def both(reader: InfisicalClient) -> tuple[dict[str, str], str | None]:
        return reader.shared_folder("dev", one), reader.shared_value("dev", two, "B")

    found = _parallel([functools.partial(both, r) for r in readers])
    assert found == [({"A": "fake-a"}, "fake-b")] * 4
    assert readers[0].shared_folder("dev", "/tenants/none-such") == {}
    assert server.request_counts() == {"GET /api/v3/secrets/raw": 1}
    writer.apply_folder("dev", one, upsert={"A": "fake-a2", "C": "fake-c"}, delete=[])
    writer.apply_secrets("dev", two, upsert={}, delete=["B"])
    assert readers[1].shared_folder("dev", one) == {"A": "fake-a2", "C": "fake-c"}
    assert readers[1].shared_value("dev", two, "B") is None
    writer.delete_folder("dev", one)
    assert readers[2].shared_folder("dev", one) == {}


def test_a_write_plans_from_its_folder_never_from_the_shared_listing(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    """The shared listing goes stale when someone else writes; a write lists its own folder, so it restores
    a value changed by hand even though the listing still shows the declared one."""
    client.apply_secrets("dev", path, upsert={"K": "fake-k"})
    assert client.shared_folder("dev", path) == {"K": "fake-k"}
    client._sdk.secrets.update_secret_by_name(
        current_secret_name="K",
        project_id=client._creds.project_id,
        secret_path=path,
        environment_slug="dev",
        secret_value="fake-by-hand",
    )
    assert client.shared_folder("dev", path) == {"K": "fake-k"}, "stale, as read"
    server.reset_requests()
    assert client.apply_folder("dev", path, upsert={"K": "fake-k"}).updated == ("K",)
    assert server.request_counts() == {"GET /api/v3/secrets/raw": 1, PATCH: 1}
    assert client.list_secrets("dev", path) == {"K": "fake-k"}
