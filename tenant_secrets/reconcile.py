"""The decisions the providers make, kept free of Pulumi so they can be tested directly.

A provider's resource properties follow one convention: the secret keys themselves are top-level
properties (UPPER_CASE, so they never collide with the lowercase bookkeeping properties). That is
what makes a preview name the key that changes (`~ STRIPE_SECRET_KEY`) while the value stays
`[secret]` (docs/decisions/0003-resource-granularity.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tenant_secrets.values import fingerprint


def secret_keys(props: Mapping[str, Any]) -> set[str]:
    """The secret keys among a resource's properties (bookkeeping properties are lowercase)."""
    return {name for name in props if name[:1].isupper()}


@dataclass(frozen=True)
class RemovalFailure:
    property: str
    reason: str


def removed_key_failures(
    owner: str, olds: Mapping[str, Any], news: Mapping[str, Any], decommissioned: Iterable[str]
) -> list[RemovalFailure]:
    """Keys that were managed and are now neither declared nor marked for deletion.

    Deleting a production secret because a line disappeared from tenants.yaml is the mistake a
    reviewer is least likely to notice, so it is refused with the marker that would allow it.
    """
    gone = secret_keys(olds) - secret_keys(news) - set(decommissioned)
    return [
        RemovalFailure(
            property=key,
            reason=(
                f"{owner}: {key} is no longer declared in tenants.yaml, and deleting a secret needs an "
                f"explicit marker; to delete it, declare `{key}: {{decommission: true}}` under {owner}'s "
                f"secrets (or restore its declaration to keep it)"
            ),
        )
        for key in sorted(gone)
    ]


def removed_tenant_failures(
    olds: Iterable[str], news: Iterable[str], decommissioned: Iterable[str]
) -> list[RemovalFailure]:
    """Owners (tenants, platform folders) that disappeared from tenants.yaml without the marker."""
    gone = set(olds) - set(news) - set(decommissioned)
    return [
        RemovalFailure(
            property="owners",
            reason=(
                f"{owner} is no longer declared in tenants.yaml, and deleting its secrets needs an explicit "
                f"marker; to delete them, keep the entry with `decommission: true` (or restore it)"
            ),
        )
        for owner in sorted(gone)
    ]


def desired_fingerprints(owner: str, news: Mapping[str, Any], fp_key: bytes) -> dict[str, str]:
    return {key: fingerprint(fp_key, owner, key, str(news[key])) for key in sorted(secret_keys(news))}


def needs_write(recorded: Mapping[str, str], desired: Mapping[str, str], decommissioned: Iterable[str]) -> list[str]:
    """The keys whose recorded fingerprint differs from the desired one, or that must be deleted."""
    changed = [key for key, fp in desired.items() if recorded.get(key) != fp]
    changed += [key for key in decommissioned if key in recorded]
    return sorted(set(changed))
