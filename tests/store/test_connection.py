"""Connecting: clear errors for an unreachable or misconfigured database, never showing the password."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from psycopg.conninfo import conninfo_to_dict

from dev.pg import Cluster, free_port
from tenant_secrets.store import DatabaseUnavailableError, connect, redact_dsn

PASSWORD = "fake-pass:w@rd/with?odd&chars"


@pytest.mark.parametrize(
    ("dsn", "redacted"),
    [
        (
            "postgresql://app:fake-pw@db.example.test:5432/tenants",
            "postgresql://app:***@db.example.test:5432/tenants",
        ),
        (
            "postgres://app:fake%40pw%2F@h1,h2/db?sslmode=require",
            "postgres://app:***@h1,h2/db?sslmode=require",
        ),
        (
            "postgresql://app@host/db?password=fake-pw&sslmode=verify-full",
            "postgresql://app@host/db?password=***&sslmode=verify-full",
        ),
        ("postgresql://host/db", "postgresql://host/db"),
        ("host=db user=app password=fake-pw dbname=t", "host=db user=app password=*** dbname=t"),
        ("host=db password = 'fake pw \\' quoted' dbname=t", "host=db password = *** dbname=t"),
        ("host=db dbname=t", "host=db dbname=t"),
    ],
)
def test_redact_dsn(dsn: str, redacted: str) -> None:
    assert redact_dsn(dsn) == redacted
    assert "fake" not in redact_dsn(dsn)


def test_unreachable_database_is_a_clear_error_without_the_password() -> None:
    dsn = f"postgresql://tenant_admin:{quote(PASSWORD, safe='')}@127.0.0.1:{free_port()}/tenants"
    with pytest.raises(DatabaseUnavailableError) as info:
        connect(dsn, connect_timeout=2)
    message = str(info.value)
    assert message.startswith("cannot connect to postgresql://tenant_admin:***@127.0.0.1:")
    assert "Connection refused" in message or "connection failed" in message
    assert "fake-pass" not in message and "fake" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_wrong_password_is_a_clear_error_without_it(pg_cluster: Cluster, pg_dsn: str) -> None:
    dbname = str(conninfo_to_dict(pg_dsn)["dbname"])
    with pytest.raises(DatabaseUnavailableError, match="password authentication failed") as info:
        connect(pg_cluster.dsn(password=PASSWORD, dbname=dbname))
    assert "fake" not in str(info.value)


def test_a_malformed_dsn_is_named_without_its_secrets() -> None:
    with pytest.raises(DatabaseUnavailableError, match="not a libpq URL or key=value") as info:
        connect("host=db password=fake-pw-in-a-broken-dsn nonsense")
    assert "fake" not in str(info.value)


@pytest.mark.parametrize(
    "password", ["fake-secret@part-two", "fake-secret/part-two", "fake-se@cret/part-two", "fake-a@b@c-part-two"]
)
def test_an_unencoded_at_or_slash_in_the_password_is_never_echoed(password: str) -> None:
    """Issue 13, item 9: libpq ended the password at the '@' or '/' and quoted the rest as a host name."""
    dsn = f"postgresql://tenant_admin:{password}@127.0.0.1:{free_port()}/tenants"
    assert redact_dsn(dsn) == f"postgresql://tenant_admin:***@127.0.0.1:{dsn.rsplit(':', 1)[1]}"
    with pytest.raises(DatabaseUnavailableError) as info:
        connect(dsn, connect_timeout=2)
    message = str(info.value)
    assert "fake" not in message and "part-two" not in message and "secret" not in message
    assert message.endswith("holds an unencoded '@' or '/'; percent-encode them (%40, %2F)")
