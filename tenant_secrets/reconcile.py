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

from tenant_secrets.names import TENANTS_FOLDER, few, folder_problem, subdomain_problem
from tenant_secrets.values import fingerprint


def secret_keys(props: Mapping[str, Any]) -> set[str]:
    """The secret keys among a resource's properties (bookkeeping properties are lowercase)."""
    return {name for name in props if name[:1].isupper()}


@dataclass(frozen=True)
class RemovalFailure:
    """A check failure. ``property`` is empty for the removal guards: the engine would print the named
    property's whole value beside the reason (a registry's list of every tenant), so the reason alone,
    naming the tenant, is what reaches the user."""

    property: str
    reason: str


MAX_NAMED = 3  # removals named one by one in a check's failures; the rest are counted in one more


def removed_key_failures(
    owner: str, olds: Mapping[str, Any], news: Mapping[str, Any], decommissioned: Iterable[str]
) -> list[RemovalFailure]:
    """Keys that were managed and are now neither declared nor marked for deletion.

    Deleting a production secret because a line disappeared from tenants.yaml is the mistake a
    reviewer is least likely to notice, so it is refused with the marker that would allow it.
    """
    gone = sorted(secret_keys(olds) - secret_keys(news) - set(decommissioned))
    failures = [
        RemovalFailure(
            property="",
            reason=(
                f"{owner}: {key} is no longer declared in tenants.yaml, and deleting a secret needs an "
                f"explicit marker; to delete it, declare `{key}: {{decommission: true}}` under {owner}'s "
                f"secrets (or restore its declaration to keep it)"
            ),
        )
        for key in gone[:MAX_NAMED]
    ]
    if len(gone) > MAX_NAMED:
        rest = gone[MAX_NAMED:]
        failures.append(
            RemovalFailure(
                "",
                f"{owner}: {len(rest)} more key(s) are no longer declared ({few(rest)}); declare each "
                "`<KEY>: {decommission: true}` to delete it, or restore it",
            )
        )
    return failures


def removed_tenant_failures(
    olds: Iterable[str], news: Iterable[str], decommissioned: Iterable[str]
) -> list[RemovalFailure]:
    """Owners (tenants, platform folders) that disappeared from tenants.yaml without the marker."""
    gone = sorted(set(olds) - set(news) - set(decommissioned))
    failures = [
        RemovalFailure(
            property="",
            reason=(
                f"{owner} is no longer declared in tenants.yaml, and deleting its secrets needs an explicit "
                f"marker; to delete them, keep the entry with `decommission: true` (or restore it)"
            ),
        )
        for owner in gone[:MAX_NAMED]
    ]
    if len(gone) > MAX_NAMED:
        rest = gone[MAX_NAMED:]
        failures.append(
            RemovalFailure(
                "",
                f"{len(rest)} more tenant(s) or folder(s) are no longer declared in tenants.yaml ({few(rest)}); "
                "keep each entry with `decommission: true` to delete its secrets, or restore it",
            )
        )
    return failures


def desired_fingerprints(owner: str, news: Mapping[str, Any], fp_key: bytes) -> dict[str, str]:
    return {key: fingerprint(fp_key, owner, key, str(news[key])) for key in sorted(secret_keys(news))}


def needs_write(recorded: Mapping[str, str], desired: Mapping[str, str], decommissioned: Iterable[str]) -> list[str]:
    """The keys whose recorded fingerprint differs from the desired one, or that must be deleted."""
    changed = [key for key, fp in desired.items() if recorded.get(key) != fp]
    changed += [key for key in decommissioned if key in recorded]
    return sorted(set(changed))


def diff_verdict(
    *, changed: bool, replacing: bool, recorded: Mapping[str, str], declared: Mapping[str, str] | None
) -> bool | None:
    """What a provider's `diff` tells the engine: False (nothing to do), True, or None.

    None means "my inputs decide": the engine then diffs the old and new inputs itself, and names each
    changed input, so the preview shows `~ STRIPE_SECRET_KEY: [secret] => [secret]` and `diffReasons`
    lists the key (a Python dynamic provider has no other way to report which property changed). That
    is right only when the change is in the declared inputs: ``recorded`` (fingerprints of what the
    store held at the last write or refresh) equal to ``declared`` (those written at the last write).
    After a refresh found drift, or for a replacement, or for a state that recorded nothing to compare
    (``declared`` None), the answer is True: the engine's input diff would see no change there.
    """
    if not changed:
        return False
    if replacing or declared is None or dict(recorded) != dict(declared):
        return True
    return None


def folder_path_failures(owner: str, path: str) -> list[RemovalFailure]:
    """A folder resource writes only `/tenants/<subdomain>` or a platform folder's `/<name>`, never elsewhere.

    The program builds the path from a validated tenants.yaml, so this is the second line: a path that
    could reach another folder (`/tenants/../hono-api`, `/tenants/a/b`) fails in `check`, before any
    request to Infisical.
    """
    prefix = f"/{TENANTS_FOLDER}/"
    if path == f"{prefix}{owner}":
        problem = subdomain_problem(owner)
        what = "a tenant's folder is /tenants/<subdomain>"
    elif path == f"/{owner}":
        problem = folder_problem(owner)  # reserved names (tenants, shared) included
        what = "a platform folder is /<name>"
    else:
        return [RemovalFailure("path", f"{owner}: the folder path {path!r} is neither /tenants/{owner} nor /{owner}")]
    if problem is None:
        return []
    return [RemovalFailure("path", f"{owner}: {problem.message} ({what}); {problem.hint}".rstrip("; "))]
