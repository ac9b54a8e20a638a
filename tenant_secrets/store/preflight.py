"""Before a provisioning run declares or writes anything: is the database ready for this run?

:func:`inspect` answers, read-only and in four statements whatever the number of tenants (two more when
a provisioning role is configured, to check it is not the application's), what
`pulumi up` must know up front: whether the companies table exists, which company each tenant is
(by the id tenants.yaml gives, else by subdomain), and which master key versions the stored values
still need, with one stored value per version decrypted as a proof that the configured key is the
one it was written with. Every problem found is reported in one :class:`PreflightError`, naming
subdomains and key versions, never a value. It also checks that every stored ciphertext is bound to its
row (:mod:`tenant_secrets.secret.binding`); what is not is returned, for the run to name and overwrite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from tenant_secrets.secret.binding import BindingProblem, BoundRow, Problem, check_rows
from tenant_secrets.secret.envelope import EnvelopeError, Keyring
from tenant_secrets.store.companies import company_id, find_companies
from tenant_secrets.store.errors import StoreError
from tenant_secrets.store.roles import provisioner_problems, writer_refusals
from tenant_secrets.store.settings import APP_ROLES, AUDIT, COMPANIES, HISTORY, MIGRATIONS, SECRETS, StoreSettings
from tenant_secrets.tenants_file.names import few


class PreflightError(StoreError):
    """The database is not ready for this run; ``problems`` lists each reason, one a line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(f"- {p}" for p in self.problems) + "\nnothing was written")


@dataclass(frozen=True)
class TenantRef:
    """A tenant as the run declares it: its subdomain, the company id tenants.yaml gives, if any."""

    subdomain: str
    company_id: str | None = None
    decommission: bool = False


@dataclass(frozen=True)
class Inspection:
    """What the database holds that the run depends on."""

    company_ids: Mapping[str, str]
    """subdomain -> company id, for the tenants whose company exists."""
    key_usage: Mapping[int, Mapping[str, int]]
    """key version -> {"secrets": rows, "history entries": rows}, for every version still stored."""
    schema_exists: bool
    """Whether company_secrets exists yet (it does not before the first run)."""
    undecryptable: tuple[str, ...] = ()
    """``<subdomain> <KEY>`` of stored values that do not decrypt although others of their key version
    do: corrupt rows, not a wrong key. A run that declares a new value for one overwrites it."""
    binding_problems: tuple[BindingProblem, ...] = ()
    """Rows and history entries whose ciphertext is not bound to them (moved, copied, altered)."""
    bindings_pending: bool = False
    """Whether some row or history entry has no binding yet (written before migration 0005, or by a writer
    without the keyring: the application, decision 0049)."""
    pending: tuple[BoundRow, ...] = ()
    """The rows of company_secrets (not history) that have no binding yet; the ciphertext is never shown."""
    stored_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """subdomain -> the keys stored for a decommissioned tenant's company (names only): its `up` deletes every
    one, the application's own included (decision 0049), so the plan lists them."""

    def rotation_pending(self, active: int) -> bool:
        """Whether some stored value is on another key version than ``active``."""
        return any(version != active for version in self.key_usage)


def inspect(
    conn: psycopg.Connection[Any],
    settings: StoreSettings,
    tenants: Sequence[TenantRef],
    keyring: Keyring,
    *,
    key_field: str = "masterKeys",
    app_role: str | None = None,
    provisioner_role: str | None = None,
    writer_role: str | None = None,
) -> Inspection:
    """Check companies and keyring against the database; :class:`PreflightError` lists what is wrong.

    Companies must exist unless ``settings.create_companies_table`` (the demo creates them) or the
    tenant is decommissioned (its rows go with it either way). A company id given in tenants.yaml
    must belong to that subdomain. The keyring must hold every key version still stored, and each of
    those keys must decrypt a value stored with it. ``key_field`` names the keys in messages
    (``<key_field>.v<version>``), so they point at the configuration to fix. A ``provisioner_role`` that
    is, was or is tied to the application's role is refused (:func:`~tenant_secrets.store.roles.provisioner_problems`),
    so a swap of the two fails the preview, not only the `up`; so is a ``writer_role`` that is the owner, the
    read role or the provisioner (:func:`~tenant_secrets.store.roles.writer_refusals`).
    """
    problems: list[str] = []
    given: dict[str, str] = {}
    for tenant in tenants:
        if tenant.company_id:
            try:
                given[tenant.subdomain] = company_id(tenant.company_id, label=tenant.subdomain)
            except ValueError as err:
                problems.append(str(err))
    companies_exist, secrets_exist, history_exist, bound = _tables(conn, settings)
    found: dict[str, str] = {}
    if companies_exist:
        found = find_companies(conn, settings, [t.subdomain for t in tenants], list(given.values()))
        problems += _company_problems(settings, tenants, given, found)
    elif not settings.create_companies_table:
        problems.append(
            f"table {settings.name(COMPANIES)!r} does not exist: company_secrets references the application's "
            "companies table, so run the application's migrations first (or, for a demo only, create companies)"
        )
    usage: dict[int, dict[str, int]] = {}
    corrupt: list[str] = []
    bindings: list[BindingProblem] = []
    if secrets_exist and history_exist:
        usage, samples = _key_usage(conn, settings)
        wrong_key, corrupt = _undecryptable(conn, settings, samples, keyring)
        problems += _key_problems(usage, wrong_key, keyring, key_field)
        if not problems:
            bindings = _binding_problems(conn, settings, keyring, has_column=bound)
    if provisioner_role is not None and secrets_exist:
        problems += provisioner_problems(conn, settings, provisioner_role, app_role)
    if writer_role is not None and secrets_exist:
        problems += writer_refusals(conn, settings, writer_role, app_role, provisioner_role)
    if problems:
        raise PreflightError(problems)
    resolved = {t.subdomain: found[t.subdomain] for t in tenants if t.subdomain in found}
    gone = {resolved[t.subdomain]: t.subdomain for t in tenants if t.decommission and t.subdomain in resolved}
    stored: dict[str, list[str]] = {}
    if gone and secrets_exist:  # one more statement, only when a tenant is decommissioned
        for company, key in conn.execute(
            sql.SQL("SELECT company_id::text, secret_key FROM {} WHERE company_id = ANY(%s::uuid[]) ORDER BY 2").format(
                settings.table(SECRETS)
            ),
            [list(gone)],
        ).fetchall():
            stored.setdefault(gone[str(company)], []).append(str(key))
    return Inspection(
        stored_keys={subdomain: tuple(keys) for subdomain, keys in stored.items()},
        company_ids=resolved,
        key_usage=usage,
        schema_exists=secrets_exist,
        undecryptable=tuple(corrupt),
        binding_problems=tuple(p for p in bindings if p.problem is not Problem.MISSING),
        bindings_pending=any(p.problem is Problem.MISSING for p in bindings),
        pending=tuple(
            p.row for p in bindings if p.problem is Problem.MISSING and p.row.table == settings.name(SECRETS)
        ),
    )


def _tables(conn: psycopg.Connection[Any], settings: StoreSettings) -> tuple[bool, bool, bool, bool]:
    """Whether companies, company_secrets and its history exist, and whether rows have a binding column."""
    names = [sql.Identifier(settings.name(base)).as_string(conn) for base in (COMPANIES, SECRETS, HISTORY)]
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL,"
        " EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'binding'"
        " AND NOT attisdropped)",
        [*names, names[1]],
    ).fetchone()
    if row is None:  # pragma: no cover - a SELECT without FROM returns one row
        raise StoreError("could not look up the store's tables")
    return bool(row[0]), bool(row[1]), bool(row[2]), bool(row[3])


def _company_problems(
    settings: StoreSettings, tenants: Sequence[TenantRef], given: Mapping[str, str], found: Mapping[str, str]
) -> list[str]:
    by_id = {cid: subdomain for subdomain, cid in found.items()}
    table = settings.name(COMPANIES)
    problems: list[str] = []
    missing: list[str] = []
    for tenant in tenants:
        wanted = given.get(tenant.subdomain)
        actual = found.get(tenant.subdomain)
        if wanted and wanted in by_id and by_id[wanted] != tenant.subdomain:
            problems.append(
                f"{tenant.subdomain}: the company_id in tenants.yaml is the company with subdomain "
                f"{by_id[wanted]!r} in {table!r}: fix the company_id, or leave it out to look the company up"
            )
        elif wanted and actual and actual != wanted:
            problems.append(
                f"{tenant.subdomain}: the company with this subdomain in {table!r} has another id than the "
                "company_id in tenants.yaml: fix the company_id, or leave it out to look the company up"
            )
        elif actual is None and not tenant.decommission and not settings.create_companies_table:
            missing.append(tenant.subdomain + (" (company_id given in tenants.yaml)" if wanted else ""))
    if missing:
        problems.append(
            f"no company with subdomain {few(missing)} in {table!r}: create the "
            f"compan{'y' if len(missing) == 1 else 'ies'} in the application first, or fix the subdomain "
            "in tenants.yaml"
        )
    return problems


_WELL_FORMED = sql.SQL("secret_value_encrypted ~ '^[0-9a-fA-F]{24}:([0-9a-fA-F]{2})*:[0-9a-fA-F]{32}$'")


def _key_usage(
    conn: psycopg.Connection[Any], settings: StoreSettings
) -> tuple[dict[int, dict[str, int]], dict[int, str]]:
    """Rows per key version in both tables, and one well-formed stored ciphertext per version (a truncated
    one is named by the binding check, not taken for a wrong key), in one query."""
    rows = conn.execute(
        sql.SQL(
            "SELECT 'secrets', key_version, count(*), min(secret_value_encrypted) FILTER (WHERE {2}) FROM {0}"
            " GROUP BY key_version"
            " UNION ALL"
            " SELECT 'history entries', key_version, count(*), min(secret_value_encrypted) FILTER (WHERE {2})"
            " FROM {1} GROUP BY key_version"
        ).format(settings.table(SECRETS), settings.table(HISTORY), _WELL_FORMED)
    ).fetchall()
    usage: dict[int, dict[str, int]] = {}
    samples: dict[int, str] = {}
    for label, version, count, sample in rows:
        usage.setdefault(int(version), {})[str(label)] = int(count)
        if sample is not None:
            samples.setdefault(int(version), str(sample))
    return usage, samples


def _undecryptable(
    conn: psycopg.Connection[Any], settings: StoreSettings, samples: Mapping[int, str], keyring: Keyring
) -> tuple[set[int], list[str]]:
    """The key versions whose key is wrong, and the corrupt values (``<subdomain> <KEY>``, history entries
    marked), told apart: one sample per version is decrypted; only when it fails are all of that version's
    values tried (one more statement, on a path that is rare). No value decrypts: the key is wrong. Some do:
    the others are corrupt, and the key is right."""
    wrong_key: set[int] = set()
    corrupt: list[str] = []
    for version in sorted(v for v in samples if v in keyring.keys):
        try:
            keyring.decrypt(samples[version], version)
            continue
        except EnvelopeError:
            pass
        rows = conn.execute(
            sql.SQL(
                "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted, '' FROM {} s"
                " LEFT JOIN {} c ON c.id = s.company_id WHERE s.key_version = %s"
                " UNION ALL SELECT c.subdomain, h.secret_key, h.secret_value_encrypted, ' (history entry)' FROM {} h"
                " LEFT JOIN {} c ON c.id = h.company_id WHERE h.key_version = %s ORDER BY 1, 2"
            ).format(
                settings.table(SECRETS), settings.table(COMPANIES), settings.table(HISTORY), settings.table(COMPANIES)
            ),
            [version, version],
        ).fetchall()
        bad: list[str] = []
        for subdomain, key, ciphertext, where in rows:
            try:
                keyring.decrypt(str(ciphertext), version)
            except EnvelopeError:
                bad.append(f"{subdomain or '(no company)'} {key}{where}")
        if len(bad) == len(rows):
            wrong_key.add(version)
        else:
            corrupt += bad
    return wrong_key, corrupt


def _binding_problems(
    conn: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, *, has_column: bool
) -> list[BindingProblem]:
    """Every row and history entry checked against its binding, in one query; before migration 0005
    (no binding column yet) every row counts as unbound."""
    secrets, history = settings.table(SECRETS), settings.table(HISTORY)
    binding = sql.SQL("binding" if has_column else "NULL::text")
    rows = conn.execute(
        sql.SQL(
            "SELECT %s, company_id::text, secret_key, key_version, version, secret_value_encrypted, {2} FROM {0}"
            " UNION ALL"
            " SELECT %s, company_id::text, secret_key, key_version, version, secret_value_encrypted, {2} FROM {1}"
        ).format(secrets, history, binding),
        [settings.name(SECRETS), settings.name(HISTORY)],
    ).fetchall()
    stored = [
        BoundRow(company, key, int(key_version), int(version), ciphertext, bound, table)
        for table, company, key, key_version, version, ciphertext, bound in rows
    ]
    return check_rows(keyring, stored)


def _key_problems(
    usage: Mapping[int, Mapping[str, int]], wrong_key: set[int], keyring: Keyring, key_field: str
) -> list[str]:
    problems: list[str] = []
    for version in sorted(usage):
        counts = ", ".join(f"{label}: {n}" for label, n in sorted(usage[version].items()))
        if version not in keyring.keys:
            problems.append(
                f"{key_field}.v{version} is missing, but values stored with key version {version} still need it "
                f"({counts}): keep it until a run with another active key has re-encrypted them"
            )
            continue
        if version in wrong_key:
            problems.append(
                f"{key_field}.v{version} does not decrypt the values stored with key version {version} ({counts}): "
                "it is not the key they were written with; restore the original key for this version"
            )
    return problems


_WRITE_CHECKS = (
    ("INSERT", "has_any_column_privilege(c.oid, 'INSERT')"),
    ("UPDATE", "has_any_column_privilege(c.oid, 'UPDATE')"),
    ("DELETE", "has_table_privilege(c.oid, 'DELETE')"),
    ("TRUNCATE", "has_table_privilege(c.oid, 'TRUNCATE')"),
    ("owns", "pg_has_role(c.relowner, 'USAGE')"),
)


def preview_role_problems(conn: psycopg.Connection[Any], settings: StoreSettings) -> list[str]:
    """Why the connected role is not fit for a pull request's preview: what it could write, and whether
    row-level security hides rows of company_secrets from it (the preflight would then count too few
    key versions and pass). Empty when the role can read the store's tables and write nothing.

    Checked with the catalog's privilege functions, which count inherited roles and ownership; nothing
    is attempted. Tables that do not exist yet are skipped (a stack before its first `up`)."""
    role = conn.execute(
        "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb,"
        " has_database_privilege(current_database(), 'CREATE'), has_schema_privilege(current_schema(), 'CREATE')"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if role is None:  # pragma: no cover - the connected role is always in pg_roles
        raise StoreError("could not look up the connected role")
    user, superuser, createrole, createdb, create_in_db, create_in_schema = role
    writes = [
        what
        for what, holds in (
            ("is a superuser", superuser),
            ("has CREATEROLE", createrole),
            ("has CREATEDB", createdb),
            ("may CREATE in the database", create_in_db),
            ("may CREATE in the schema", create_in_schema),
        )
        if holds
    ]
    bases = (COMPANIES, SECRETS, HISTORY, AUDIT, MIGRATIONS, APP_ROLES)
    names = [settings.name(base) for base in bases]
    idents = [sql.Identifier(name).as_string(conn) for name in names]
    checks = ", ".join(check for _, check in _WRITE_CHECKS)
    rows = conn.execute(
        f"SELECT t.name, {checks}, row_security_active(c.oid) AND NOT EXISTS ("  # noqa: S608 - constant SQL
        "   SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polpermissive AND p.polcmd IN ('r', '*')"
        "   AND pg_get_expr(p.polqual, p.polrelid) = 'true'"
        "   AND (0 = ANY(p.polroles)"
        "        OR EXISTS (SELECT 1 FROM unnest(p.polroles) r(id) WHERE pg_has_role(r.id, 'USAGE'))))"
        " FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS t(name, ident, n)"
        " JOIN pg_class c ON c.oid = to_regclass(t.ident) ORDER BY t.n",
        [names, idents],
    ).fetchall()
    problems: list[str] = []
    hidden: list[str] = []
    for name, *held in rows:
        granted = [what for (what, _), holds in zip(_WRITE_CHECKS, held[:-1], strict=True) if holds]
        if "owns" in granted:
            writes.append(f"owns {name}")
        elif granted:
            writes.append(f"{'/'.join(granted)} on {name}")
        if held[-1]:
            hidden.append(name)
    if writes:
        problems.append(f"role {user!r} can write ({', '.join(writes)})")
    if hidden:
        problems.append(
            f"row-level security hides rows of {', '.join(hidden)} from role {user!r}: "
            "add a policy FOR SELECT TO it USING (true)"
        )
    return problems
