"""Dynamic providers of the naive design, the way the Infisical Terraform provider works.

A `NaiveTenant` makes the tenant's folder (one call to the official SDK, `infisicalsdk`) and its
company row (one SQL statement). A `NaiveSecret` writes one key: one SDK call (create, or update when
the value changed) and one SQL statement (the seed's upsert, `INSERT ... ON CONFLICT DO UPDATE`, with
a fresh ciphertext). A master key change re-encrypts with that one statement and no API call.

Not a straw man otherwise: the SDK client (with its token) and the database connection are kept per
provider thread, as the project's providers do, and the engine's own input diff decides what changes.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import psycopg
from infisical_sdk import InfisicalSDKClient
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from tenant_secrets.secret.envelope import Keyring

PROVIDER_KEY = "__provider"
_local = threading.local()


def _sdk() -> InfisicalSDKClient:
    client: InfisicalSDKClient | None = getattr(_local, "sdk", None)
    if client is None:
        client = InfisicalSDKClient(host=os.environ["INFISICAL_SITE_URL"], cache_ttl=None)
        client.auth.universal_auth.login(os.environ["INFISICAL_CLIENT_ID"], os.environ["INFISICAL_CLIENT_SECRET"])
        _local.sdk = client
    return client


def _db() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_local, "db", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        _local.db = conn
    return conn


def _project() -> str:
    return os.environ["INFISICAL_PROJECT_ID"]


def _props(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


class NaiveTenantProvider(ResourceProvider):
    """A tenant's folder in Infisical and its row in companies."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=_props(olds) != _props(news), replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        """First `up` for this tenant: one folder call, one statement."""
        parent, _, name = props["path"].rpartition("/")
        _sdk().folders.create_folder(
            name=name, environment_slug=props["environment"], project_id=_project(), path=parent or "/"
        )
        row = (
            _db()
            .execute(
                "INSERT INTO companies (subdomain, name) VALUES (%s, %s)"
                " ON CONFLICT (subdomain) DO UPDATE SET name = EXCLUDED.name RETURNING id::text",
                [props["owner"], props["name"]],
            )
            .fetchone()
        )
        assert row is not None  # noqa: S101 - RETURNING always yields the row
        return CreateResult(props["owner"], {**_props(props), "company_id": row[0]})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult({**_props(news), "company_id": olds.get("company_id")})


class NaiveSecretProvider(ResourceProvider):
    """One secret in both stores."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=_props(olds) != _props(news), replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        """One SDK create and one upsert."""
        _sdk().secrets.create_secret_by_name(
            secret_name=props["key"],
            secret_path=props["path"],
            environment_slug=props["environment"],
            project_id=_project(),
            secret_value=props["value"],
        )
        self._upsert(props)
        return CreateResult(f"{props['path']}/{props['key']}", _props(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """A new value: one SDK update and one upsert; a new master key only: the upsert."""
        if olds.get("value") != news["value"]:
            _sdk().secrets.update_secret_by_name(
                current_secret_name=news["key"],
                secret_path=news["path"],
                environment_slug=news["environment"],
                project_id=_project(),
                secret_value=news["value"],
            )
        self._upsert(news)
        return UpdateResult(_props(news))

    @staticmethod
    def _upsert(props: dict[str, Any]) -> None:
        keyring = Keyring.from_hex(props["keyring"], int(props["key_version"]))
        _db().execute(
            "INSERT INTO company_secrets (company_id, secret_key, secret_value_encrypted, key_version)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (company_id, secret_key) DO UPDATE"
            " SET secret_value_encrypted = EXCLUDED.secret_value_encrypted,"
            " key_version = EXCLUDED.key_version, updated_at = now()",
            [props["company_id"], props["key"], keyring.encrypt(str(props["value"])), keyring.active],
        )
