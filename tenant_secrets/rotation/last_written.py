"""What the stores record of each declared secret: when its current value was written, and its version.

`tenantctl rotation status` dates each policy from these records, and `tenantctl rotation notify`
compares two of them (before and after a `pulumi up`): the stores are the clock, so a rotation counts
from when the value was written, not from a date someone typed (docs/decisions/0026-rotation-policies.md).

* Infisical: one recursive listing per environment without values; each secret's `updatedAt` and
  `version`.
* The database: the audit trail's time of the write of each row's current version (store/written.py).
* The master key: the key folder's `MASTER_ENCRYPTION_KEY` (published once every row is on the active
  key: the end of the last rotation), else the first audit record written with the active key version.

A record holds names, times and version numbers: never a value. It is also what a snapshot file holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

import psycopg

from tenant_secrets.secret.keyfolder import CURRENT_KEY, CURRENT_VERSION, is_keyring_secret
from tenant_secrets.stack.settings import StackSettings
from tenant_secrets.store.companies import find_companies
from tenant_secrets.store.written import key_version_since, written_times
from tenant_secrets.tenants_file.model import EnvironmentPlan
from tenant_secrets.tenants_file.names import TENANTS_FOLDER

INFISICAL = "infisical"
DATABASE = "database"


class WrittenLister(Protocol):
    """What the records need from Infisical (InfisicalClient has it)."""

    def list_tree_written(self, environment: str, path: str = "/") -> dict[str, dict[str, tuple[str, int]]]: ...

    def get_secret(self, environment: str, path: str, key: str) -> str | None: ...


@dataclass(frozen=True)
class Record:
    """When a store's current value was written (None: the store keeps no date for it) and its version."""

    at: datetime | None
    version: int | None


@dataclass(frozen=True)
class MasterKeyRecord:
    key_version: int | None
    """The active master key version."""
    at: datetime | None
    """When it became the key every row is on (or was first used); None when nothing records it."""
    source: str
    """Where `at` comes from, for the report."""


@dataclass(frozen=True)
class SnapshotRow:
    """One secret's record as `tenantctl rotation snapshot` writes it (JSON), never a value."""

    store: str
    owner: str
    key: str
    at: str | None = None
    """ISO 8601, or None when the store keeps no date for the value."""
    version: int | None = None


@dataclass(frozen=True)
class Records:
    environment: str
    secrets: Mapping[tuple[str, str, str], Record] = field(default_factory=dict)
    """(store, owner, key) -> record; owner is a subdomain or a platform folder's name."""
    master_key: MasterKeyRecord | None = None

    def to_json(self) -> str:
        rows = [asdict(SnapshotRow(s, o, k, _iso(r.at), r.version)) for (s, o, k), r in sorted(self.secrets.items())]
        master = None
        if self.master_key is not None:
            m = self.master_key
            master = {"key_version": m.key_version, "at": _iso(m.at), "source": m.source}
        return json.dumps({"environment": self.environment, "secrets": rows, "master_key": master}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Records:
        """Raises ValueError for a file that is not a snapshot."""
        data: Any = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("secrets"), list):
            raise ValueError("not a snapshot written by `tenantctl rotation snapshot`")  # noqa: TRY004 - the file's fault
        try:
            rows = [SnapshotRow(**r) for r in data["secrets"]]
        except TypeError:
            raise ValueError("not a snapshot written by `tenantctl rotation snapshot`") from None
        secrets = {(r.store, r.owner, r.key): Record(_parse(r.at), r.version) for r in rows}
        m = data.get("master_key")
        master = MasterKeyRecord(m.get("key_version"), _parse(m.get("at")), str(m.get("source"))) if m else None
        return cls(str(data.get("environment", "")), secrets, master)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _parse(text: Any) -> datetime | None:
    """An ISO 8601 time (Infisical's `2026-11-29T10:00:00.000Z` included); None for none."""
    if not text:
        return None
    return datetime.fromisoformat(str(text))


def gather(
    plan: EnvironmentPlan,
    settings: StackSettings,
    *,
    infisical: WrittenLister | None,
    database: psycopg.Connection[Any] | None,
) -> Records:
    """The records of every live owner of the plan, and of the master key, from the stores given."""
    secrets: dict[tuple[str, str, str], Record] = {}
    master: MasterKeyRecord | None = None
    if infisical is not None:
        tree = infisical.list_tree_written(plan.environment, "/")
        owners = [(f.name, f"/{f.name}", True) for f in plan.platform]
        owners += [(t.subdomain, f"/{TENANTS_FOLDER}/{t.subdomain}", False) for t in plan.tenants if not t.decommission]
        for owner, folder, platform in owners:
            for key, (updated, version) in tree.get(folder, {}).items():
                if not (platform and is_keyring_secret(key)):
                    secrets[INFISICAL, owner, key] = Record(_parse(updated), version)
        current = tree.get(settings.key_folder, {}).get(CURRENT_KEY)
        if current is not None:
            master = MasterKeyRecord(
                _active_version(settings, infisical, plan.environment),
                _parse(current[0]),
                f"{settings.key_folder}/{CURRENT_KEY} updatedAt",
            )
    tenants = [t for t in plan.tenants if "database" in t.storage and not t.decommission]
    if database is not None and tenants:
        given = {t.subdomain: t.company_id for t in tenants if t.company_id}
        try:
            found = find_companies(database, settings.store, [t.subdomain for t in tenants], list(given.values()))
        except psycopg.errors.UndefinedTable:
            found = {}
        owner_of: dict[str, str] = {}
        for tenant in tenants:
            company = given.get(tenant.subdomain) or found.get(tenant.subdomain)
            if company is not None:  # not created yet: nothing stored, nothing to date
                owner_of[company] = tenant.subdomain
        for (company, key), (at, version) in written_times(database, settings.store, list(owner_of)).items():
            secrets[DATABASE, owner_of[company], key] = Record(at, version)
        if master is None and settings.key_version is not None:
            since = key_version_since(database, settings.store, settings.key_version)
            master = MasterKeyRecord(settings.key_version, since, "the audit trail: first write with the active key")
    return Records(plan.environment, secrets, master)


def _active_version(settings: StackSettings, infisical: WrittenLister, environment: str) -> int | None:
    """The version the key folder's MASTER_ENCRYPTION_KEY has (a number, not a key): the one in effect,
    which a new `activeKeyVersion` becomes only when `pulumi up` has moved every row to it."""
    raw = infisical.get_secret(environment, settings.key_folder, CURRENT_VERSION)
    if raw is not None and raw.isdigit():
        return int(raw)
    return 1 if settings.master_key_source == "infisical" else settings.key_version  # the seed's layout: version 1
