"""Issue 31: a row the application wrote with the seed's own setTenantSecret has no binding until the stack's
next `up`; the reader says so and does not serve it, unless told to (decision 0049), and serves it once bound."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tenant_secrets.reader import SecretReader, UndecryptableSecretError
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import bind_rows
from tests.conftest import fake_value
from tests.reader.conftest import ACME, Connections, Database
from tests.seed_writes import run_seed, set_op


def test_an_application_row_is_served_once_bound_or_when_the_reader_allows_unbound_rows(
    database: Database, pg_dsn: str, make_connections: Callable[..., Connections]
) -> None:
    keyring = Keyring({1: os.urandom(32)}, active=1)  # the migration records version 1 for keyless writers
    value = fake_value("acme-app-webhook")
    assert run_seed(pg_dsn, [set_op(ACME, "WEBHOOK_SECRET", value)], keyHex=keyring.key(1).hex()) == [{"ok": True}]
    app = make_connections(database.app_dsn)

    strict = SecretReader(database=app, keyring=keyring)
    with pytest.raises(UndecryptableSecretError, match="a writer without the master keys wrote it") as refused:
        strict.get("acme", "WEBHOOK_SECRET")
    assert value not in str(refused.value)
    assert SecretReader(database=app, keyring=keyring, allow_unbound=True).get("acme", "WEBHOOK_SECRET") == value

    assert bind_rows(database.owner, database.settings, keyring) == 1  # what the next `up` does
    assert strict.get("acme", "WEBHOOK_SECRET") == value
