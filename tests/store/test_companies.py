"""Companies: looked up by subdomain; created only for demos."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tenant_secrets.store import StoreError, StoreSettings, ensure_companies, lookup_companies
from tests.conftest import ACME, GLOBEX


def test_lookup_returns_only_existing_companies(db: psycopg.Connection[Any], settings: StoreSettings) -> None:
    assert lookup_companies(db, settings, ["acme", "globex", "initech"]) == {"acme": ACME, "globex": GLOBEX}
    assert lookup_companies(db, settings, []) == {}


def test_ensure_companies_is_idempotent_and_fills_defaults(
    db: psycopg.Connection[Any], settings: StoreSettings
) -> None:
    first = ensure_companies(db, settings, {"initech": (None, None), "acme": (None, "Renamed? No")})
    assert first["acme"] == ACME
    uuid.UUID(first["initech"])
    assert ensure_companies(db, settings, {"initech": (first["initech"].upper(), None)}) == {
        "initech": first["initech"]
    }
    rows = db.execute("SELECT subdomain, name FROM companies ORDER BY subdomain").fetchall()
    assert rows == [("acme", "Acme Test Co"), ("globex", "globex"), ("initech", "initech")]


def test_ensure_companies_refuses_an_id_clash_and_writes_nothing(
    db: psycopg.Connection[Any], settings: StoreSettings
) -> None:
    with pytest.raises(StoreError, match="companies acme already exist with another id"):
        ensure_companies(db, settings, {"acme": (GLOBEX.replace("b", "c"), None), "hooli": (None, None)})
    assert lookup_companies(db, settings, ["hooli"]) == {}
    with pytest.raises(ValueError, match="hooli: company id must be a UUID"):
        ensure_companies(db, settings, {"hooli": ("not-a-uuid", None)})
