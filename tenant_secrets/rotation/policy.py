"""Rotation policies: how often a generated secret is regenerated, when an outside secret expires.

The file's words (docs/decisions/0026-rotation-policies.md):

* `rotate_every: 90d` on a `{generate: ...}` source, or on `defaults` (every tenant's generated
  secrets) or a platform folder (its generated secrets); the secret's own period wins;
* `expires: 2027-03-01` and `review_by: 2027-01-15` on a `{from: config|env|infisical}` source: a
  value we cannot regenerate, so only a date someone must act by;
* the stack setting `tenant-secrets:masterKeyRotateEvery` (`90d`; `off`): the master key's period,
  90 days by default on the prod environment and none elsewhere.

`policies` resolves them for one environment exactly as `plan_environment` resolves sources
(defaults, then the tenant, then its override; a group field on its own). Pure: no store, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, Literal

from tenant_secrets.stack.settings import MASTER_KEY_SETTING
from tenant_secrets.tenants_file.model import (
    FromConfig,
    FromEnv,
    FromInfisical,
    Generated,
    Loc,
    Position,
    TenantsFile,
    dotted,
    flatten,
    plan_environment,
)
from tenant_secrets.tenants_file.names import TENANTS_FOLDER
from tenant_secrets.tenants_file.periods import period_days, period_problem

PROD_ENVIRONMENT = "prod"
MASTER_KEY_DEFAULT_DAYS = 90  # on the prod environment, when the stack says nothing


Kind = Literal["rotate", "expires", "review"]


@dataclass(frozen=True)
class SecretPolicy:
    """One policy-bearing secret of one environment."""

    owner: str  # subdomain, or platform folder name
    platform: bool
    key: str
    stores: frozenset[str]  # where its value is written: "infisical", "database"
    kind: Kind
    period_days: int | None = None  # kind rotate
    due_date: date | None = None  # kind expires / review: the earlier of the two dates
    marker: str | None = None  # kind rotate: the current rotation marker
    loc: Loc = ()  # the source mapping's data path in tenants.yaml (where `bump` moves the marker)
    position: Position = (1, 1)
    tenant_index: int | None = None  # the tenant's place in the file's `tenants` list

    @property
    def folder(self) -> str:
        """Its Infisical folder."""
        return f"/{self.owner}" if self.platform else f"/{TENANTS_FOLDER}/{self.owner}"

    @property
    def field(self) -> str:
        return dotted(self.loc)


def _merge(layers: list[tuple[Mapping[str, Any], Loc]]) -> dict[str, tuple[Any, Loc]]:
    merged: dict[str, tuple[Any, Loc]] = {}
    for secrets, loc in layers:
        merged.update(flatten(secrets, loc))
    return merged


def _policy(
    tf: TenantsFile,
    owner: str,
    key: str,
    spec: Any,
    loc: Loc,
    *,
    platform: bool,
    stores: frozenset[str],
    inherited: str | None,
    tenant_index: int | None = None,
) -> SecretPolicy | None:
    policy = partial(
        SecretPolicy,
        tenant_index=tenant_index,
        owner=owner,
        platform=platform,
        key=key,
        stores=stores,
        loc=loc,
        position=tf.positions.value(loc),
    )
    if isinstance(spec, Generated):
        period = spec.rotate_every or inherited
        if period is None:
            return None
        return policy(kind="rotate", period_days=period_days(period), marker=spec.rotation)
    if isinstance(spec, FromConfig | FromEnv | FromInfisical):
        dated = [(d, k) for d, k in ((spec.expires, "expires"), (spec.review_by, "review")) if d is not None]
        if not dated:
            return None
        when, kind = min(dated)
        return policy(kind="expires" if kind == "expires" else "review", due_date=date.fromisoformat(when))
    return None


def policies(tf: TenantsFile, environment: str, region: str | None = None) -> list[SecretPolicy]:
    """Every policy-bearing secret of the environment's live tenants and platform folders, in file order: in
    ``region``, or (None) in every region the file declares, each tenant once."""
    regions: list[str | None] = [region] if region or not tf.document.regions else [*tf.document.regions]
    # raises TenantsFileError for an undeclared environment
    planned = {
        t.subdomain: t for r in regions for t in plan_environment(tf, environment, r).tenants if not t.decommission
    }
    doc = tf.document
    found: list[SecretPolicy] = []
    index = {t.subdomain: i for i, t in enumerate(doc.tenants)}
    for name, folder in doc.platform.items():
        layers: list[tuple[Mapping[str, Any], Loc]] = [(folder.secrets, ("platform", name, "secrets"))]
        if environment in folder.overrides:
            layers.append(
                (folder.overrides[environment].secrets, ("platform", name, "overrides", environment, "secrets"))
            )
        for key, (spec, loc) in sorted(_merge(layers).items()):
            policy = _policy(
                tf, name, key, spec, loc, platform=True, stores=frozenset({"infisical"}), inherited=folder.rotate_every
            )
            if policy:
                found.append(policy)
    for tenant_plan in sorted(planned.values(), key=lambda t: index[t.subdomain]):
        i = index[tenant_plan.subdomain]
        tenant = doc.tenants[i]
        layers = [(doc.defaults.secrets, ("defaults", "secrets")), (tenant.secrets, ("tenants", i, "secrets"))]
        if environment in tenant.overrides:
            layers.append((tenant.overrides[environment].secrets, ("tenants", i, "overrides", environment, "secrets")))
        for key, (spec, loc) in sorted(_merge(layers).items()):
            policy = _policy(
                tf,
                tenant.subdomain,
                key,
                spec,
                loc,
                platform=False,
                stores=tenant_plan.storage,
                inherited=doc.defaults.rotate_every,
                tenant_index=i,
            )
            if policy:
                found.append(policy)
    return found


class MasterKeyPolicyError(ValueError):
    """The stack's masterKeyRotateEvery is not a period."""


def master_key_period(get: Callable[[str], str | None], environment: str) -> int | None:
    """Days between master key rotations: the stack's `masterKeyRotateEvery`, else 90 on prod; None: no policy."""
    raw = get(MASTER_KEY_SETTING)
    if raw is None or raw == "":
        return MASTER_KEY_DEFAULT_DAYS if environment == PROD_ENVIRONMENT else None
    if raw == "off":
        return None
    problem = period_problem(raw)
    if problem is not None:
        raise MasterKeyPolicyError(f"tenant-secrets:{MASTER_KEY_SETTING}: {problem.message}; {problem.hint}, or off")
    return period_days(raw)
