"""Reading and applying tenants' secrets in ``company_secrets``.

:func:`apply_tenants` makes the rows of the given companies match what the caller wants in one
transaction and a fixed handful of statements, whatever the number of rows:

1. lock (one provisioning run at a time), check the companies exist, read their rows ``FOR UPDATE``;
2. decide in Python, decrypting current values: a value that is equal, on the active key and bound to
   its row (:mod:`tenant_secrets.secret.binding`) is left alone (no write, so no fresh IV and no churn); a value
   that is equal but on an older key or not yet bound is re-encrypted in place; a different value is
   updated, its previous ciphertext kept as history; a row holding a ciphertext that was not written for
   it (moved from another row, altered) is overwritten without reading it, and not kept as history;
3. write: delete, copy to history, update, prune history, insert, each one batched statement.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import psycopg
from psycopg import sql

from tenant_secrets.secret.binding import BoundRow, Problem, bind, check_row, check_rows
from tenant_secrets.secret.envelope import EnvelopeError, Keyring, KeyringError
from tenant_secrets.store.companies import company_id
from tenant_secrets.store.errors import CompanyNotFoundError, StoreError
from tenant_secrets.store.moved import moved_ciphertexts
from tenant_secrets.store.settings import COMPANIES, HISTORY, SECRETS, StoreSettings

MAX_KEY_LENGTH = 255  # company_secrets.secret_key is varchar(255)


@dataclass(frozen=True)
class StoredSecret:
    """A decrypted secret as stored; its repr never shows the value."""

    value: str = field(repr=False)
    version: int
    key_version: int


@dataclass(frozen=True, repr=False)
class TenantChange:
    """What one company's secrets should become: keys to set (to these values) and keys to delete.

    Keys in neither are left alone: removing a key from tenants.yaml deletes nothing by itself.
    """

    desired: Mapping[str, str] = field(default_factory=dict)
    delete: Collection[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "desired", MappingProxyType(dict(self.desired)))
        object.__setattr__(self, "delete", frozenset(self.delete))
        for key in (*self.desired, *self.delete):
            _check_key_name(key)
        if both := sorted(self.desired.keys() & self.delete):
            raise ValueError(f"keys {', '.join(both)} are both set and deleted: choose one")

    def __repr__(self) -> str:
        return f"TenantChange(desired={sorted(self.desired)}, delete={sorted(self.delete)})"


@dataclass(frozen=True)
class CompanyResult:
    """The keys of one company, by what :func:`apply_tenants` did to them."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    reencrypted: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApplyResult:
    """Per company id, what changed; the properties count keys across companies."""

    companies: Mapping[str, CompanyResult]

    @property
    def created(self) -> int:
        return sum(len(c.created) for c in self.companies.values())

    @property
    def updated(self) -> int:
        return sum(len(c.updated) for c in self.companies.values())

    @property
    def reencrypted(self) -> int:
        return sum(len(c.reencrypted) for c in self.companies.values())

    @property
    def deleted(self) -> int:
        return sum(len(c.deleted) for c in self.companies.values())

    @property
    def unchanged(self) -> int:
        return sum(len(c.unchanged) for c in self.companies.values())

    @property
    def wrote(self) -> bool:
        """Whether anything was written."""
        return bool(self.created or self.updated or self.reencrypted or self.deleted)


def read_tenant(
    conn: psycopg.Connection[Any],
    settings: StoreSettings,
    company: str,
    keyring: Keyring,
    keys: Collection[str] | None = None,
) -> dict[str, StoredSecret]:
    """One company's secrets, decrypted, by key; only ``keys`` when given (the others are not decrypted)."""
    return read_tenants(conn, settings, [company], keyring, keys).get(company_id(company, label=company), {})


def read_tenants(
    conn: psycopg.Connection[Any],
    settings: StoreSettings,
    companies: Collection[str],
    keyring: Keyring,
    keys: Collection[str] | None = None,
) -> dict[str, dict[str, StoredSecret]]:
    """Several companies' secrets, decrypted, by company id then key, in one query; only ``keys`` when given,
    so that a row someone else owns (the application's, decision 0049) never fails the caller's read."""
    ids = [company_id(c, label=c) for c in companies]
    with conn.transaction():
        rows = _select_rows(conn, settings, ids, lock=False)
    if keys is not None:
        wanted = set(keys)
        rows = {where: row for where, row in rows.items() if row.secret_key in wanted}
    _require_key_versions(rows.values(), keyring)
    found: dict[str, dict[str, StoredSecret]] = {}
    for row in rows.values():
        found.setdefault(row.company_id, {})[row.secret_key] = StoredSecret(
            _decrypt(row, keyring), row.version, row.key_version
        )
    return found


def stored_keys(conn: psycopg.Connection[Any], settings: StoreSettings, company: str) -> list[str]:
    """The keys one company has rows for, whoever wrote them; nothing is decrypted (a row the keyring cannot
    open is listed too)."""
    cid = company_id(company, label=company)
    with conn.transaction():
        rows = conn.execute(
            sql.SQL("SELECT secret_key FROM {} WHERE company_id = %s ORDER BY secret_key").format(
                settings.table(SECRETS)
            ),
            [cid],
        ).fetchall()
    return [str(row[0]) for row in rows]


def row_counts(conn: psycopg.Connection[Any], settings: StoreSettings, companies: Collection[str]) -> dict[str, int]:
    """How many rows each of these companies has (those with none left out), in one query; nothing is
    decrypted, and no table yet reads as no rows."""
    ids = [company_id(c, label=c) for c in companies]
    if not ids:
        return {}
    try:
        with conn.transaction():
            rows = conn.execute(
                sql.SQL(
                    "SELECT company_id::text, count(*) FROM {} WHERE company_id = ANY(%s::uuid[]) GROUP BY 1"
                ).format(settings.table(SECRETS)),
                [ids],
            ).fetchall()
    except psycopg.errors.UndefinedTable:
        return {}
    return {str(cid): int(count) for cid, count in rows}


@dataclass(frozen=True)
class RowReading:
    """One stored row as a reader finds it: its value, or why it cannot be read. The repr hides the value."""

    company_id: str
    secret_key: str
    key_version: int
    value: str | None = field(repr=False)
    """None when the row cannot be read (``problem`` says why)."""
    problem: str | None = None
    """None, ``"key-version"`` (the keyring lacks the row's key version), ``"undecryptable"``, or
    ``"unbound"`` (its ciphertext was not written for it: ``detail`` says where it came from)."""
    detail: str | None = None


def open_row(row: _Row, keyring: Keyring) -> RowReading:
    """Decrypt one row in memory, reporting rather than raising when it cannot be read (pure)."""
    if row.key_version not in keyring.keys:
        return RowReading(row.company_id, row.secret_key, row.key_version, None, "key-version")
    try:
        value = keyring.decrypt(row.ciphertext, row.key_version)
    except EnvelopeError:
        return RowReading(row.company_id, row.secret_key, row.key_version, None, "undecryptable")
    return RowReading(row.company_id, row.secret_key, row.key_version, value)


def read_rows(
    conn: psycopg.Connection[Any], settings: StoreSettings, companies: Collection[str], keyring: Keyring
) -> list[RowReading]:
    """Every row of these companies, each decrypted or marked unreadable, in one query.

    Unlike :func:`read_tenants`, a row that does not decrypt is reported, not raised: a verifier lists
    every such row with the others. No table yet reads as no rows.
    """
    ids = [company_id(c, label=c) for c in companies]
    if not ids:
        return []
    try:
        with conn.transaction():
            rows = _select_rows(conn, settings, ids, lock=False)
            history = _select_history(conn, settings, ids)
    except psycopg.errors.UndefinedTable:
        return []
    readable = [row.bound() for row in rows.values() if row.key_version in keyring.keys]
    # history entries too: a ciphertext moved with a plain UPDATE left the row's previous one there
    checked = [*readable, *(h for h in history if h.key_version in keyring.keys)]
    unbound = {
        (p.row.company_id, p.row.secret_key): p
        for p in check_rows(keyring, checked)
        # without a binding: written before the binding column, or by the application; bound by the next `up`
        if p.problem is not Problem.MISSING and p.row.table != settings.name(HISTORY)
    }
    readings = []
    for key, row in sorted(rows.items()):
        reading = open_row(row, keyring)
        if reading.problem is None and key in unbound:  # decrypts, but to another row's value: never returned
            reading = RowReading(row.company_id, row.secret_key, row.key_version, None, "unbound", str(unbound[key]))
        readings.append(reading)
    return readings


def apply_tenants(
    conn: psycopg.Connection[Any],
    settings: StoreSettings,
    changes: Mapping[str, TenantChange],
    keyring: Keyring,
) -> ApplyResult:
    """Make the secrets of the companies in ``changes`` (by company id) match them, in one transaction.

    Raises before any write if a company does not exist or a stored value needs a key the keyring
    lacks; any failure rolls the whole call back, so the next call starts from where this one did.
    """
    plan = {company_id(cid, label=cid): change for cid, change in changes.items()}
    if not plan:
        return ApplyResult({})
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"tenant_secrets.apply:{settings.table_prefix}"],
        )
        _require_company_ids(conn, settings, list(plan))
        rows = _select_rows(conn, settings, list(plan), lock=True)
        moved = moved_ciphertexts(conn, settings, [r.ciphertext for r in rows.values() if r.binding is None])
        writes, result = _decide(plan, rows, keyring, moved)
        _write(conn, settings, writes, keyring.active)
    return result


def insert_if_absent(
    conn: psycopg.Connection[Any], settings: StoreSettings, company: str, key: str, value: str, *, keyring: Keyring
) -> bool:
    """Store ``value`` under the active key only if the company has no ``key`` yet; True if this call wrote it.

    One ``INSERT ... ON CONFLICT DO NOTHING``, so a row that exists (whatever it holds, and whoever wrote
    it a moment ago) is never changed. The row the server stored is decrypted and compared with ``value``
    before the transaction commits; :class:`StoreError` and nothing written when they differ.
    """
    _check_key_name(key)
    cid = company_id(company, label=company)
    ciphertext = keyring.encrypt(value)
    binding = bind(keyring, BoundRow(cid, key, keyring.active, 1, ciphertext))
    with conn.transaction():
        stored = conn.execute(
            sql.SQL(
                "INSERT INTO {} (company_id, secret_key, secret_value_encrypted, key_version, version, binding)"
                " VALUES (%s, %s, %s, %s, 1, %s) ON CONFLICT (company_id, secret_key) DO NOTHING"
                " RETURNING {}"
            ).format(settings.table(SECRETS), _COLUMNS),
            [cid, key, ciphertext, keyring.active, binding],
        ).fetchone()
        if stored is None:
            return False
        if _decrypt(_Row(*stored), keyring) != value:
            raise StoreError(
                f"the stored {key!r} of company {cid} does not read back as the value written; nothing was written"
            )
    return True


# --- deciding ------------------------------------------------------------------------------------


_COLUMNS = sql.SQL("id::text, company_id::text, secret_key, secret_value_encrypted, key_version, version, binding")


@dataclass(frozen=True)
class _Row:
    id: str
    company_id: str
    secret_key: str
    ciphertext: str = field(repr=False)
    key_version: int
    version: int
    binding: str | None = field(default=None, repr=False)

    def bound(self) -> BoundRow:
        return BoundRow(self.company_id, self.secret_key, self.key_version, self.version, self.ciphertext, self.binding)


@dataclass(frozen=True)
class _Update:
    row_id: str
    ciphertext: str
    binding: str
    bump: bool  # a new value: version + 1
    keep: bool  # the previous ciphertext goes to history


@dataclass
class _Writes:
    inserts: list[tuple[str, str, str, str]] = field(default_factory=list)  # company id, key, ciphertext, binding
    updates: list[_Update] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)  # row ids

    def update(self, row: _Row, keyring: Keyring, value: str, *, bump: bool, keep: bool = False) -> None:
        ciphertext = keyring.encrypt(value)
        version = row.version + bump
        binding = bind(keyring, BoundRow(row.company_id, row.secret_key, keyring.active, version, ciphertext))
        self.updates.append(_Update(row.id, ciphertext, binding, bump, keep))


def _decide(
    plan: Mapping[str, TenantChange],
    rows: Mapping[tuple[str, str], _Row],
    keyring: Keyring,
    moved: Collection[str] = frozenset(),
) -> tuple[_Writes, ApplyResult]:
    """``moved``: ciphertexts of unbound rows also held elsewhere (:mod:`tenant_secrets.store.moved`), which are
    treated as any ciphertext not written for its row."""
    compared = [rows[cid, key] for cid, change in plan.items() for key in change.desired if (cid, key) in rows]
    _require_key_versions(compared, keyring)
    unbound = {
        row.id: Problem.COPIED if row.binding is None and row.ciphertext in moved else check_row(keyring, row.bound())
        for row in compared
    }
    writes = _Writes()
    results: dict[str, CompanyResult] = {}
    for cid, change in plan.items():
        outcome: dict[str, list[str]] = {"created": [], "updated": [], "reencrypted": [], "unchanged": []}
        for key, value in sorted(change.desired.items()):
            row = rows.get((cid, key))
            problem = None if row is None else unbound[row.id]
            if row is None:
                ciphertext = keyring.encrypt(value)
                binding = bind(keyring, BoundRow(cid, key, keyring.active, 1, ciphertext))
                writes.inserts.append((cid, key, ciphertext, binding))
                outcome["created"].append(key)
            elif problem not in {None, Problem.MISSING} or (stored := _decrypted_or_none(row, keyring)) is None:
                # not this row's ciphertext, or one that does not decrypt: a declared value overwrites it,
                # and it is never read or kept as history
                writes.update(row, keyring, value, bump=True)
                outcome["updated"].append(key)
            elif stored != value:
                writes.update(row, keyring, value, bump=True, keep=True)
                outcome["updated"].append(key)
            elif row.key_version != keyring.active or problem is Problem.MISSING:
                writes.update(row, keyring, value, bump=False)
                outcome["reencrypted"].append(key)
            else:
                outcome["unchanged"].append(key)
        deleted = sorted(key for key in change.delete if (cid, key) in rows)
        writes.deletes.extend(rows[cid, key].id for key in deleted)
        results[cid] = CompanyResult(
            created=tuple(outcome["created"]),
            updated=tuple(outcome["updated"]),
            reencrypted=tuple(outcome["reencrypted"]),
            deleted=tuple(deleted),
            unchanged=tuple(outcome["unchanged"]),
        )
    return writes, ApplyResult(MappingProxyType(results))


def _decrypted_or_none(row: _Row, keyring: Keyring) -> str | None:
    """The stored value, or None when the row does not decrypt: the preflight has checked, in the same run,
    that the key of its version decrypts the other rows, so the row is corrupt and a declared value may
    replace it (the audit records the update, as any other)."""
    try:
        return keyring.decrypt(row.ciphertext, row.key_version)
    except EnvelopeError:
        return None


def _decrypt(row: _Row, keyring: Keyring) -> str:
    try:
        return keyring.decrypt(row.ciphertext, row.key_version)
    except EnvelopeError as exc:
        raise StoreError(
            f"cannot decrypt the stored {row.secret_key!r} of company {row.company_id} "
            f"(key version {row.key_version}): {exc}; check that the keyring's key {row.key_version} "
            "is the one it was written with"
        ) from None


def _require_key_versions(rows: Iterable[_Row], keyring: Keyring) -> None:
    missing = sorted({row.key_version for row in rows} - set(keyring.keys))
    if missing:
        raise KeyringError(
            f"stored values are encrypted with key version(s) {', '.join(map(str, missing))}, which the "
            f"keyring (versions {', '.join(map(str, keyring.versions))}) lacks: add the old key(s) back"
        )


def _check_key_name(key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        raise ValueError(f"secret key {key!r}: 1 to {MAX_KEY_LENGTH} characters, no NUL")


# --- database ------------------------------------------------------------------------------------


def _require_company_ids(conn: psycopg.Connection[Any], settings: StoreSettings, ids: list[str]) -> None:
    found = {
        str(row[0])
        for row in conn.execute(
            sql.SQL("SELECT id::text FROM {} WHERE id = ANY(%s::uuid[])").format(settings.table(COMPANIES)),
            [ids],
        )
    }
    if missing := set(ids) - found:
        raise CompanyNotFoundError(missing, what="id")


def _select_rows(
    conn: psycopg.Connection[Any], settings: StoreSettings, ids: list[str], *, lock: bool
) -> dict[tuple[str, str], _Row]:
    query = sql.SQL("SELECT {} FROM {} WHERE company_id = ANY(%s::uuid[]){}").format(
        _COLUMNS, settings.table(SECRETS), sql.SQL(" FOR UPDATE" if lock else "")
    )
    return {(r.company_id, r.secret_key): r for r in (_Row(*row) for row in conn.execute(query, [ids]))}


def _select_history(conn: psycopg.Connection[Any], settings: StoreSettings, ids: list[str]) -> list[BoundRow]:
    query = sql.SQL(
        "SELECT company_id::text, secret_key, key_version, version, secret_value_encrypted, binding FROM {}"
        " WHERE company_id = ANY(%s::uuid[])"
    ).format(settings.table(HISTORY))
    return [
        BoundRow(cid, key, int(kv), int(v), ct, b, settings.name(HISTORY))
        for cid, key, kv, v, ct, b in conn.execute(query, [ids])
    ]


def _write(conn: psycopg.Connection[Any], settings: StoreSettings, writes: _Writes, active: int) -> None:
    secrets, history = settings.table(SECRETS), settings.table(HISTORY)
    if writes.deletes:
        conn.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s::uuid[])").format(secrets), [writes.deletes])
    kept = [u.row_id for u in writes.updates if u.keep]
    if kept and settings.history_retention:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (secret_id, company_id, secret_key, version, key_version,"
                " secret_value_encrypted, written_at, binding)"
                " SELECT id, company_id, secret_key, version, key_version, secret_value_encrypted, updated_at, binding"
                " FROM {} WHERE id = ANY(%s::uuid[])"
            ).format(history, secrets),
            [kept],
        )
    if writes.updates:
        updates = writes.updates
        conn.execute(
            sql.SQL(
                "UPDATE {} AS s SET secret_value_encrypted = u.ciphertext, key_version = %s,"
                " version = s.version + u.bump::int, binding = u.binding,"
                " updated_at = CASE WHEN u.bump THEN now() ELSE s.updated_at END"
                " FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::bool[]) AS u(id, ciphertext, binding, bump)"
                " WHERE s.id = u.id"
            ).format(secrets),
            [
                active,
                [u.row_id for u in updates],
                [u.ciphertext for u in updates],
                [u.binding for u in updates],
                [u.bump for u in updates],
            ],
        )
    if kept and settings.history_retention:
        conn.execute(
            sql.SQL(
                "DELETE FROM {0} AS h USING ("
                " SELECT id, row_number() OVER (PARTITION BY secret_id ORDER BY version DESC) AS rank"
                " FROM {0} WHERE secret_id = ANY(%s::uuid[])) AS r"
                " WHERE h.id = r.id AND r.rank > %s"
            ).format(history),
            [kept, settings.history_retention],
        )
    if writes.inserts:
        companies, keys, ciphertexts, bindings = (list(column) for column in zip(*writes.inserts, strict=True))
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (company_id, secret_key, secret_value_encrypted, key_version, version, binding)"
                " SELECT u.company_id, u.secret_key, u.ciphertext, %s, 1, u.binding"
                " FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[])"
                " AS u(company_id, secret_key, ciphertext, binding)"
            ).format(secrets),
            [active, companies, keys, ciphertexts, bindings],
        )
