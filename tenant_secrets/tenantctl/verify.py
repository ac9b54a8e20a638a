"""`tenantctl verify`: do the stores hold what tenants.yaml and the stack's config declare?

    check(plan, settings, ...)   gathers both sides as fingerprints and compares them (tenantctl/drift.py)
    run_verify(...)              what the command does: the stack's config, the clients, the report

The declared side is resolved exactly as the program resolves it (`Resolver`, the stack's `secrets`
config object, this process's environment, Infisical) and fingerprinted with the same function over
the same owner, key and value, so a fingerprint here equals the one the program's resources record.

Reads are bounded whatever the number of tenants: Infisical once per environment (one recursive
listing of the whole environment, each secret with its `secretPath`, values decrypted in memory and
fingerprinted at once), and the database in three queries (the companies, every row of those
companies, and their history entries, whose bindings show a ciphertext moved by hand), then, when the
stack names the application's roles, the catalog's view of their rights (`role-rights`: what `up` would
refuse, granted since). A row that does not decrypt is a finding, not a failure: every such row is listed.

On a region's stack, residency too (docs/decisions/0054-regions.md): a folder, or rows (with a database
connection), of a tenant whose `regions` exclude the stack's region is an `out-of-region` finding, read from
the same listing and one more query.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg

from tenant_secrets import store
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.secret.keyfolder import is_keyring_secret
from tenant_secrets.secret.values import Resolver, UnresolvedValueError, fingerprint
from tenant_secrets.stack.settings import NAMESPACE, StackConfigError, StackSettings
from tenant_secrets.store.companies import company_id
from tenant_secrets.store.roles import app_role_problems, writer_role_problems
from tenant_secrets.store.settings import COMPANIES, SECRETS
from tenant_secrets.tenantctl.drift import (
    OUT_OF_REGION,
    ROLE_RIGHTS,
    WHOLE_OWNER,
    Expected,
    Finding,
    Held,
    Report,
    compare,
)
from tenant_secrets.tenants_file.model import Elsewhere, EnvironmentPlan, TenantsFileError, plan_environment
from tenant_secrets.tenants_file.names import TENANTS_FOLDER, few
from tenant_secrets.tenants_file.sources import InfisicalSource, ValueSource

Progress = Callable[[str], None]


class TreeReader(Protocol):
    """What verify needs from Infisical (InfisicalClient has it)."""

    def list_tree(self, environment: str, path: str = "/") -> dict[str, dict[str, str]]: ...


class CannotCheckError(Exception):
    """Something needed for the check is missing or unreachable; the message says what and how to fix it."""


def keyring(settings: StackSettings, listings: _Listings) -> Keyring:
    """The master keys the stored rows are read with: the stack's config, or (masterKeySource infisical)
    the key folder, taken from the environment's one listing."""
    try:
        return settings.load_keyring(lambda environment, path: listings.tree(environment).get(path, {}))
    except StackConfigError as err:
        raise CannotCheckError(str(err)) from None


@dataclass
class _Listings:
    """Infisical, listed once per environment on first use, as folder -> key -> value (in memory only)."""

    reader: TreeReader | None
    progress: Progress
    trees: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def tree(self, environment: str) -> dict[str, dict[str, str]]:
        if environment not in self.trees:
            if self.reader is None:
                raise CannotCheckError("Infisical is needed but not configured")
            self.progress(f"listing Infisical {environment} (one recursive request)")
            tree = self.reader.list_tree(environment, "/")
            self.progress(f"Infisical {environment}: {sum(map(len, tree.values()))} secret(s) in {len(tree)} folder(s)")
            self.trees[environment] = tree
        return self.trees[environment]

    def lookup(self, environment: str, path: str, key: str) -> str | None:
        return self.tree(environment).get(path, {}).get(key)


def check(
    plan: EnvironmentPlan,
    settings: StackSettings,
    *,
    stack: str,
    config: Callable[[tuple[str, ...]], str | None],
    environ: Mapping[str, str],
    infisical: TreeReader | None,
    database: psycopg.Connection[Any] | None,
    progress: Progress = lambda _message: None,
    show_counts: bool = False,
) -> Report:
    """Compare the plan's owners with both stores. CannotCheckError when a declared value has no source
    (other than a missing Infisical secret, which is drift) or a store that is needed is not given."""
    listings = _Listings(infisical, progress)
    resolver = Resolver(
        environment=plan.environment,
        derivation_key=settings.derivation_key,
        config=config,
        environ=settings.sources.environ(environ),  # the allow-listed variables, nothing else
        infisical=listings.lookup,
    )
    fp_key = settings.fingerprint_key
    expected: list[Expected] = []
    unset: list[str] = []
    for owner, stores, sources, retired, platform in _owners(plan):
        fingerprints: dict[str, str] = {}
        unresolved: dict[str, str] = {}
        for key, source in sorted(sources.items()):
            try:
                fingerprints[key] = fingerprint(fp_key, owner, key, resolver.resolve(owner, key, source))
            except UnresolvedValueError as err:
                if isinstance(source, InfisicalSource):
                    where = f"Infisical {source.environment or plan.environment}:{source.path}/{source.key}"
                    unresolved[key] = where
                else:
                    unset.append(str(err))
        expected.append(Expected(owner, stores, fingerprints, unresolved, retired, platform))
    if unset:
        raise CannotCheckError(
            f"{len(unset)} declared value(s) have no value here: {few(unset, sep='; ')}; run where `pulumi up` runs "
            "(its environment variables), or check `tenantctl validate --stack`"
        )
    held: dict[tuple[str, str], Held] = {}
    residency: list[Finding] = []
    if any("infisical" in e.stores or not e.stores for e in expected) or plan.elsewhere:
        tree = listings.tree(plan.environment)
        held.update(_infisical_held(expected, tree, fp_key))
        residency += _folders_elsewhere(plan, tree)
    if any("database" in t.storage for t in plan.tenants):
        if database is None:
            raise CannotCheckError(
                "DATABASE_URL is not set, and tenants with database storage need it: "
                "export DATABASE_URL=postgresql://<role>:<password>@<host>:<port>/<database>"
            )
        held.update(_database_held(plan, settings, database, fp_key, progress, ring=keyring(settings, listings)))
    if plan.elsewhere and database is not None:
        residency += _rows_elsewhere(plan, settings, database)
    progress(f"comparing {len(expected)} tenant(s) or folder(s)")
    findings = compare(expected, held) + residency
    if database is not None:
        findings = sorted([*findings, *_role_findings(database, settings)])
    counts = {
        e.owner: {s: len(held[s, e.owner].keys) if (s, e.owner) in held else 0 for s in sorted(e.stores)}
        for e in expected
    }
    return Report(stack, plan.environment, tuple(findings), counts, show_counts=show_counts)


def _role_findings(conn: psycopg.Connection[Any], settings: StackSettings) -> list[Finding]:
    """What the application's roles can do beyond their jobs, read from the catalog: rights granted by hand
    since the last `up` (which checks the same and fails) show here first."""
    checks = [
        ("appRole", settings.app_role, app_role_problems),
        ("appWriterRole", settings.writer_role, writer_role_problems),
    ]
    return [
        Finding(role, "database", setting, ROLE_RIGHTS, problem)
        for setting, role, problems_of in checks
        if role
        for problem in problems_of(conn, settings.store, role)
    ]


def _owners(plan: EnvironmentPlan) -> list[tuple[str, frozenset[str], Mapping[str, ValueSource], frozenset[str], bool]]:
    """(owner, stores it must be in, its sources, keys marked for deletion, is a platform folder); a
    decommissioned tenant must be in no store."""
    owners = [(f.name, frozenset({"infisical"}), f.secrets, f.decommissioned_keys, True) for f in plan.platform]
    for tenant in plan.tenants:
        stores = frozenset() if tenant.decommission else tenant.storage
        owners.append((tenant.subdomain, stores, tenant.secrets, tenant.decommissioned_keys, False))
    return owners


def _infisical_held(
    expected: list[Expected], tree: Mapping[str, Mapping[str, str]], fp_key: bytes
) -> dict[tuple[str, str], Held]:
    """The managed folders' secrets as fingerprints; the key folder's keyring secrets are never declared."""
    held: dict[tuple[str, str], Held] = {}
    for owner in expected:
        if "infisical" not in owner.stores and owner.stores:
            continue
        path = f"/{owner.owner}" if owner.platform else f"/{TENANTS_FOLDER}/{owner.owner}"
        secrets = tree.get(path)
        if secrets is None:
            continue
        held["infisical", owner.owner] = Held(
            {
                key: fingerprint(fp_key, owner.owner, key, value)
                for key, value in secrets.items()
                if not (owner.platform and is_keyring_secret(key))
            }
        )
    return held


def _where_allowed(tenant: Elsewhere, region: str | None) -> str:
    return (
        f"tenant {tenant.subdomain} may live in {', '.join(tenant.regions)} only, and this stack writes region {region}"
    )


def _folders_elsewhere(plan: EnvironmentPlan, tree: Mapping[str, Mapping[str, str]]) -> list[Finding]:
    """The Infisical folder of each tenant whose regions exclude the stack's, when this region holds one."""
    return [
        Finding(
            tenant.subdomain,
            "infisical",
            WHOLE_OWNER,
            OUT_OF_REGION,
            f"{_where_allowed(tenant, plan.region)}: delete {path} ({len(tree[path])} secret(s)) from this region's "
            "Infisical; no stack of this region declares it",
        )
        for tenant in plan.elsewhere
        if (path := f"/{TENANTS_FOLDER}/{tenant.subdomain}") in tree
    ]


def _rows_elsewhere(plan: EnvironmentPlan, settings: StackSettings, conn: psycopg.Connection[Any]) -> list[Finding]:
    """The rows of each tenant whose regions exclude the stack's, when this region's database holds any."""
    given = {t.subdomain: t.company_id for t in plan.elsewhere if t.company_id}
    try:
        companies = store.find_companies(
            conn, settings.store, [t.subdomain for t in plan.elsewhere], list(given.values())
        )
    except psycopg.errors.UndefinedTable:
        return []
    by_company = {
        company_id(cid, label=t.subdomain): t
        for t in plan.elsewhere
        if (cid := given.get(t.subdomain) or companies.get(t.subdomain))
    }
    rows = store.row_counts(conn, settings.store, list(by_company))
    table = settings.store.name(SECRETS)
    return [
        Finding(
            tenant.subdomain,
            "database",
            WHOLE_OWNER,
            OUT_OF_REGION,
            f"{_where_allowed(tenant, plan.region)}: delete its {rows[cid]} row(s) of {table} (company {cid}) from "
            "this region's database; no stack of this region declares them",
        )
        for cid, tenant in sorted(by_company.items(), key=lambda item: item[1].subdomain)
        if rows.get(cid)
    ]


def _database_held(
    plan: EnvironmentPlan,
    settings: StackSettings,
    conn: psycopg.Connection[Any],
    fp_key: bytes,
    progress: Progress,
    *,
    ring: Keyring,
) -> dict[tuple[str, str], Held]:
    """Each database tenant's rows (and a decommissioned tenant's leftovers), in three queries."""
    tenants = [t for t in plan.tenants if "database" in t.storage]
    given = {t.subdomain: t.company_id for t in tenants if t.company_id}
    progress(f"reading company_secrets for {len(tenants)} tenant(s)")
    try:
        companies = store.find_companies(conn, settings.store, [t.subdomain for t in tenants], list(given.values()))
    except psycopg.errors.UndefinedTable:
        companies = {}
    table = settings.store.name(COMPANIES)
    held: dict[tuple[str, str], Held] = {}
    owner_of: dict[str, str] = {}
    for tenant in tenants:
        company = given.get(tenant.subdomain) or companies.get(tenant.subdomain)
        if company is None:
            if not tenant.decommission:
                absent = f"no company with subdomain {tenant.subdomain!r} in {table!r}"
                held["database", tenant.subdomain] = Held(absent=absent)
            continue
        owner_of[company_id(company, label=tenant.subdomain)] = tenant.subdomain
    readings = store.read_rows(conn, settings.store, list(owner_of), ring)
    progress(f"company_secrets: {len(readings)} row(s) of {len(owner_of)} compan(ies)")
    rows: dict[str, dict[str, str]] = {}
    unreadable: dict[str, dict[str, tuple[str, str]]] = {}
    for row in readings:
        owner = owner_of[row.company_id]
        if row.value is not None:
            rows.setdefault(owner, {})[row.secret_key] = fingerprint(fp_key, owner, row.secret_key, row.value)
        elif row.problem == "unbound":
            unreadable.setdefault(owner, {})[row.secret_key] = ("unbound", row.detail or "not bound to its row")
        elif row.problem == "key-version":
            versions = ", ".join(map(str, ring.versions))
            detail = f"the row is on key version {row.key_version}, which the keyring (versions {versions}) lacks"
            unreadable.setdefault(owner, {})[row.secret_key] = ("key-version", detail)
        else:
            detail = f"the row does not decrypt with key version {row.key_version}: altered, or another key's"
            unreadable.setdefault(owner, {})[row.secret_key] = ("undecryptable", detail)
    for owner in owner_of.values():
        held["database", owner] = Held(rows.get(owner, {}), unreadable.get(owner, {}))
    return held


def _select(plan: EnvironmentPlan, names: Collection[str]) -> EnvironmentPlan:
    """The plan narrowed to the named tenants or platform folders; CannotCheckError names any unknown one."""
    known = (
        {t.subdomain for t in plan.tenants} | {f.name for f in plan.platform} | {e.subdomain for e in plan.elsewhere}
    )
    unknown = sorted(set(names) - known)
    if unknown:
        raise CannotCheckError(
            f"not in tenants.yaml for environment {plan.environment}: {few(unknown)}"
            f" (known: {len(known)} tenant(s) and folder(s))"
        )
    return EnvironmentPlan(
        plan.environment,
        tuple(t for t in plan.tenants if t.subdomain in names),
        tuple(f for f in plan.platform if f.name in names),
        region=plan.region,
        elsewhere=tuple(e for e in plan.elsewhere if e.subdomain in names),
    )


def _progress(message: str) -> None:
    print(f"verify: {message}", file=sys.stderr, flush=True)


class SharedTree:
    """A TreeReader that lists each environment once for every stack checked in this process: `verify
    --environment` checks all of an environment's shards with one Infisical listing."""

    def __init__(self, reader: TreeReader) -> None:
        self._reader = reader
        self._trees: dict[tuple[str, str], dict[str, dict[str, str]]] = {}

    def list_tree(self, environment: str, path: str = "/") -> dict[str, dict[str, str]]:
        if (environment, path) not in self._trees:
            self._trees[environment, path] = self._reader.list_tree(environment, path)
        return self._trees[environment, path]


def run_verify(
    stack: str,
    *,
    tenants: Collection[str] = (),
    fmt: str = "text",
    config_file: str | None = None,
    environ: Mapping[str, str] = os.environ,
    shared: dict[str, SharedTree] | None = None,
) -> Report:
    """What `tenantctl verify` does, from the current directory (the Pulumi project's). A sharded stack checks
    its shard's tenants (and the platform folders on shard 1). ``shared`` keeps one Infisical listing per
    environment across calls (`verify --environment`)."""
    # imported here: `tenantctl validate` and `plan` need none of these (the Infisical SDK pulls in boto3)
    from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials, InfisicalError  # noqa: PLC0415
    from tenant_secrets.stack.config import StackConfigUnavailableError, read_stack_config  # noqa: PLC0415
    from tenant_secrets.stack.shards import select  # noqa: PLC0415
    from tenant_secrets.tenants_file.loader import load_tenants_file  # noqa: PLC0415

    environment = ""
    try:
        _progress(f"reading the config of stack {stack}")
        config = read_stack_config(stack, config_file=config_file)
        settings = StackSettings.load(config.get, stack=stack)
        environment = settings.environment
        tenants_file = load_tenants_file(Path(settings.tenants_file))
        plan = select(plan_environment(tenants_file, environment, settings.region), settings.shard)
        if tenants:
            plan = _select(plan, tenants)
        needs_infisical = bool(plan.platform) or any(
            "infisical" in t.storage or any(isinstance(s, InfisicalSource) for s in t.secrets.values())
            for t in plan.tenants
        )
        client: TreeReader | None = None
        if needs_infisical and shared is not None:
            if environment not in shared:
                shared[environment] = SharedTree(InfisicalClient(InfisicalCredentials.from_env(environ)))
            client = shared[environment]
        elif needs_infisical:
            client = InfisicalClient(InfisicalCredentials.from_env(environ))
        dsn = environ.get("DATABASE_URL")
        wanted = plan.elsewhere or any("database" in t.storage for t in plan.tenants)
        conn = store.connect(dsn) if dsn and wanted else None
        try:
            return check(
                plan,
                settings,
                stack=stack,
                config=config.secret,
                environ=environ,
                infisical=client,
                database=conn,
                progress=_progress,
                show_counts=bool(tenants),
            )
        finally:
            if conn is not None:
                conn.close()
    except TenantsFileError as err:
        issues = f"{len(err.issues)} issue(s); first: {err.issues[0]}"
        return Report(stack, environment, error=f"tenants.yaml is not valid ({issues}): run `tenantctl validate`")
    except StackConfigError as err:
        return Report(stack, environment, error=f"{err} (stack config {NAMESPACE}:*)")
    except (CannotCheckError, StackConfigUnavailableError, InfisicalError, store.StoreError, ValueError) as err:
        # ValueError: a master key or keyring that does not parse, a company_id that is not a UUID; like every
        # error here, its message names the field and never holds a value
        return Report(stack, environment, error=str(err))
    except psycopg.Error as err:  # a permission, a lost connection: its own words, which carry no value
        return Report(stack, environment, error=f"the database refused the read: {err.diag.message_primary or err}")
