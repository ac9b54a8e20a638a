"""The private PostgreSQL cluster of `make demo` and the tests (dev/pg.py), where a clone really lives."""

from __future__ import annotations

from pathlib import Path

import psycopg

from dev.pg import Cluster


def test_a_cluster_starts_in_a_directory_deeper_than_a_unix_socket_path_allows(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-clone-in-a-deep-directory"] * 5) / ".state" / "pg"
    assert len(str(deep / ".s.PGSQL.65535")) > 107  # the longest path a Unix-domain socket may have
    cluster = Cluster(deep)
    cluster.ensure_started()
    try:
        with psycopg.connect(cluster.dsn(dbname="postgres")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        cluster.stop()
