"""`tenantctl migrate`: move tenants between the stores as a reviewed change of tenants.yaml.

    choose(tf, direction, names, batch)        which tenants move                        (pure)
    plan_migration(tf, direction, names, held) what each gains: storage, keys            (pure)
    rewrite(text, migration)                   tenants.yaml, comments and layout kept    (pure)

To the database (the seed's Phase 2): a tenant that is only in Infisical gets `storage: both`, and each
key its folder holds that tenants.yaml does not declare reads `{from: infisical}` from that folder, in
the environments that hold it. The next `pulumi up` then writes every value into company_secrets
(the folder is adopted as it is: nothing in it changes), and the folder stays as the backup. Keys are
listed by name only (`viewSecretValue=false`), one recursive listing per environment: no value passes
through this command.

To Infisical (the reverse): a tenant only in the database gets `storage: both`. Its values come from
its declared sources (config, env, generate, value, infisical), never from the table, so nothing is
added; rows that tenants.yaml does not declare are not copied, and `tenantctl verify` lists them.

In a file with regions (docs/decisions/0054-regions.md) a tenant's `storage` holds in every region it lives
in, and each region's folders are in that region's Infisical, listed with that region's credentials only. So
the move to the database takes one region at a time (`--region`, its INFISICAL_* in the environment) and the
tenants that live in that region alone: a `{from: infisical}` key added from one region's folder would be read
from the other regions' folders too, which may not hold it. The move to Infisical reads no store and takes no
region.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ruamel.yaml.comments import CommentedMap

from tenant_secrets.tenants_file.editing import block_mapping, edit
from tenant_secrets.tenants_file.model import Tenant, TenantsFile, plan_environment
from tenant_secrets.tenants_file.names import TENANTS_FOLDER, few, key_problem

DIRECTIONS = {"database": "infisical", "infisical": "database"}  # target -> the only store a tenant moves from


class MigrationError(Exception):
    """The migration cannot be planned as asked; the message names the tenants, never a value."""


class KeyLister(Protocol):
    """What the migration needs from Infisical (InfisicalClient has it)."""

    def list_tree_keys(self, environment: str, path: str = "/") -> dict[str, list[str]]: ...


@dataclass(frozen=True)
class Move:
    """One tenant's change: `storage: both`, and the `{from: infisical}` keys it gains."""

    subdomain: str
    index: int
    """Its position in the file's `tenants` list."""
    everywhere: tuple[str, ...] = ()
    """Keys every environment of the tenant holds and none declares: added under `secrets`."""
    per_environment: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """The other keys, by environment: added under `overrides.<environment>.secrets`."""

    @property
    def added(self) -> int:
        return len(self.everywhere) + sum(map(len, self.per_environment.values()))


@dataclass(frozen=True)
class Migration:
    target: str
    moves: tuple[Move, ...]
    skipped: tuple[str, ...] = ()
    """Keys that tenants.yaml cannot name (not UPPER_CASE), left out: one line each."""


def _storage(tf: TenantsFile, tenant: Tenant) -> str:
    return tenant.storage or tf.document.defaults.storage


def check_region(tf: TenantsFile, target: str, region: str | None) -> None:
    """MigrationError, one line, unless ``region`` fits the file and the direction: required for the move to the
    database in a file with regions, refused in a file without, and for the move to Infisical."""
    declared = tf.document.regions
    if region is not None and declared is None:
        raise MigrationError(f"--region {region}: {tf.path} declares no regions; leave --region out")
    if region is not None and target == "infisical":
        raise MigrationError(
            "--region: only with --to database (the move to Infisical reads no store, and a tenant's storage holds in "
            "every region it lives in)"
        )
    if declared is not None and target == "database" and region is None:
        raise MigrationError(
            f"{tf.path} declares regions ({', '.join(declared)}): pass --region, with that region's INFISICAL_* in "
            "the environment (its folders' keys are listed there)"
        )
    if declared is not None and region is not None and region not in declared:
        raise MigrationError(f"--region {region}: not declared in {tf.path} (regions: {', '.join(declared)})")


def _lives_in(tf: TenantsFile, tenant: Tenant, region: str | None) -> bool:
    """Whether the tenant lives in ``region`` alone (None: a file without regions, where every tenant does)."""
    return region is None or tf.document.regions_of(tenant) == [region]


def candidates(tf: TenantsFile, target: str, region: str | None = None) -> list[str]:
    """Tenants, in file order, that are only in the store the migration leaves (and live in ``region`` alone)."""
    source = DIRECTIONS[target]
    return [
        t.subdomain
        for t in tf.document.tenants
        if not t.decommissioned and _storage(tf, t) == source and _lives_in(tf, t, region)
    ]


def choose(
    tf: TenantsFile, target: str, names: Sequence[str], batch: int | None, region: str | None = None
) -> list[str]:
    """The named tenants (each must be only in the other store, and live in ``region`` alone), or the next
    ``batch`` of them."""
    check_region(tf, target, region)
    movable = candidates(tf, target, region)
    if batch is not None:
        if batch < 1:
            raise MigrationError("--batch: a whole number >= 1 of tenants")
        if not movable:
            alone = f" and lives in {region} alone" if region else ""
            raise MigrationError(f"no tenant is only in {DIRECTIONS[target]}{alone}: nothing to migrate")
        return movable[:batch]
    if not names:
        raise MigrationError("name the tenants (--tenants a,b,c) or how many to take (--batch N)")
    known = {t.subdomain: t for t in tf.document.tenants}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise MigrationError(f"not in {tf.path}: {few(unknown)}")
    elsewhere = [
        f"{n} (regions: {', '.join(tf.document.regions_of(known[n]) or ())})"
        for n in names
        if not _lives_in(tf, known[n], region)
    ]
    if elsewhere:
        raise MigrationError(
            f"only a tenant that lives in {region} alone moves with --region {region}: {few(elsewhere)}; a tenant of "
            "several regions needs each undeclared key of its folders declared by hand (`tenantctl verify --region` "
            "in each region lists them), then `storage: both`"
        )
    wrong = [f"{n} (storage: {_storage(tf, known[n])})" for n in names if n not in movable]
    if wrong:
        raise MigrationError(
            f"only a tenant that is only in {DIRECTIONS[target]} (and not decommissioned) moves to {target}: "
            + few(wrong)
        )
    return list(dict.fromkeys(names))


def environments_of(tf: TenantsFile, subdomains: Collection[str]) -> list[str]:
    """The environments the tenants are in, in the file's order."""
    wanted = {env for t in tf.document.tenants if t.subdomain in subdomains for env in _environments(tf, t)}
    return [env for env in tf.document.defaults.environments if env in wanted]


def _environments(tf: TenantsFile, tenant: Tenant) -> list[str]:
    return list(tenant.environments or tf.document.defaults.environments)


def plan_migration(
    tf: TenantsFile,
    target: str,
    subdomains: Sequence[str],
    held: Mapping[str, Mapping[str, Collection[str]]],
    region: str | None = None,
) -> Migration:
    """What each tenant gains. ``held``: environment -> folder path -> key names (keys only matter to the
    move to the database; the reverse adds none), in ``region``'s Infisical in a file with regions (the
    tenants chosen live there alone: :func:`choose`)."""
    index = {t.subdomain: i for i, t in enumerate(tf.document.tenants)}
    if target == "infisical":
        return Migration(target, tuple(Move(s, index[s]) for s in subdomains))
    plans = {env: plan_environment(tf, env, region) for env in environments_of(tf, subdomains)}
    moves: list[Move] = []
    skipped: list[str] = []
    for subdomain in subdomains:
        folder = f"/{TENANTS_FOLDER}/{subdomain}"
        needed: dict[str, set[str]] = {}
        for env in _environments(tf, tf.document.tenants[index[subdomain]]):
            tenant = next(t for t in plans[env].tenants if t.subdomain == subdomain)
            declared = set(tenant.secrets) | set(tenant.decommissioned_keys)
            keys = set(held.get(env, {}).get(folder, ()))
            for key in sorted(keys - declared):
                problem = key_problem(key)
                if problem is not None:
                    skipped.append(f"{env}:{folder}/{key}: {problem.message}; left out (it stays in Infisical)")
            needed[env] = {k for k in keys - declared if key_problem(k) is None}
        everywhere = set.intersection(*needed.values()) if needed else set()
        per_env = {env: tuple(sorted(keys - everywhere)) for env, keys in needed.items() if keys - everywhere}
        moves.append(Move(subdomain, index[subdomain], tuple(sorted(everywhere)), per_env))
    return Migration(target, tuple(moves), tuple(skipped))


# --- the rewrite -----------------------------------------------------------------------------------


def _source(folder: str, key: str) -> CommentedMap:
    source = CommentedMap([("from", "infisical"), ("path", folder), ("key", key)])
    source.fa.set_flow_style()
    return source


def rewrite(text: str, migration: Migration, file: str = "tenants.yaml") -> str:
    """tenants.yaml with the migration applied, everything else as it was; checked against the model."""

    def change(data: Any) -> None:
        for move in migration.moves:
            tenant: CommentedMap = data["tenants"][move.index]
            if tenant.get("subdomain") != move.subdomain:  # pragma: no cover - the plan is made from the same text
                raise MigrationError(f"{file} changed while the migration was planned; run it again")
            if "storage" in tenant:
                tenant["storage"] = "both"
            else:
                tenant.insert(list(tenant).index("name" if "name" in tenant else "subdomain") + 1, "storage", "both")
            folder = f"/{TENANTS_FOLDER}/{move.subdomain}"
            if move.everywhere:
                secrets = block_mapping(tenant, "secrets", ("environments", "storage"))
                for key in move.everywhere:
                    secrets[key] = _source(folder, key)
            for env, keys in move.per_environment.items():
                overrides = block_mapping(tenant, "overrides", ("secrets", "environments", "storage"))
                layer = block_mapping(overrides, env, ())
                secrets = block_mapping(layer, "secrets", ())
                for key in keys:
                    secrets[key] = _source(folder, key)

    return edit(text, change, file, "migrated")


def describe(migration: Migration) -> str:
    """One line for the person who ran it: who moved, how many keys were added."""
    names = [m.subdomain for m in migration.moves]
    added = sum(m.added for m in migration.moves)
    text = f"{len(names)} tenant(s) now storage: both ({few(names)})"
    if migration.target == "database":
        text += f"; {added} key(s) now read {{from: infisical}} from the tenant's own folder"
    return text
