"""The decisions the providers make, kept free of Pulumi so they can be tested directly.

Each provider's `check` and `diff` in `components/providers.py` is one call to a function here
(``folder_check``, ``folder_diff``, ``tenant_rows_diff``, ...); what a property is named, which inputs
force a replace and what counts as a secret key is the contract's (`tenant_secrets/engine/contract.py`).
No value is an input: per key, a resource carries its value's fingerprint and source descriptor, and
the providers compare fingerprints (docs/decisions/0034-write-only-values.md); a preview names the key
that changes (`~ fingerprints.STRIPE_SECRET_KEY`) without showing anything of its value.

In `check`, ``olds`` are the old inputs; in `diff`, the old outputs (the state), whose
:data:`~tenant_secrets.engine.contract.RECORDED_FINGERPRINTS` are what the store held at the last write or refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tenant_secrets.engine.contract import (
    COMPANY_ID,
    DECLARED_FINGERPRINTS,
    DECOMMISSION,
    DECOMMISSIONED,
    FOLDER,
    OWNER,
    OWNERS,
    PATH,
    PUBLICATION,
    RECORDED_FINGERPRINTS,
    REGION,
    SOURCES,
    STORED_KEYS,
    TENANT_ROWS,
    UNBOUND,
    WRITTEN_FINGERPRINTS,
    secret_keys,
)
from tenant_secrets.secret.values import fingerprint
from tenant_secrets.tenants_file.names import TENANTS_FOLDER, few, folder_problem, subdomain_problem


@dataclass(frozen=True)
class RemovalFailure:
    """A check failure. ``property`` is empty for the removal guards: the engine would print the named
    property's whole value beside the reason (a registry's list of every tenant), so the reason alone,
    naming the tenant, is what reaches the user."""

    property: str
    reason: str


MAX_NAMED = 3  # removals named one by one in a check's failures; the rest are counted in one more


def _removal_failures(
    gone: Sequence[str], each: Callable[[str], str], rest: Callable[[list[str]], str]
) -> list[RemovalFailure]:
    """One failure per removal for the first few, then one that counts the rest: short at any fleet size."""
    failures = [RemovalFailure(property="", reason=each(name)) for name in gone[:MAX_NAMED]]
    if len(gone) > MAX_NAMED:
        failures.append(RemovalFailure("", rest(list(gone[MAX_NAMED:]))))
    return failures


def removed_key_failures(
    owner: str, olds: Mapping[str, Any], news: Mapping[str, Any], decommissioned: Iterable[str]
) -> list[RemovalFailure]:
    """Keys that were managed and are now neither declared nor marked for deletion.

    Deleting a production secret because a line disappeared from tenants.yaml is the mistake a
    reviewer is least likely to notice, so it is refused with the marker that would allow it.
    """
    return _removal_failures(
        sorted(declared_keys(olds) - declared_keys(news) - set(decommissioned)),
        lambda key: (
            f"{owner}: {key} is no longer declared in tenants.yaml, and deleting a secret needs an "
            f"explicit marker; to delete it, declare `{key}: {{decommission: true}}` under {owner}'s "
            f"secrets (or restore its declaration to keep it)"
        ),
        lambda rest: (
            f"{owner}: {len(rest)} more key(s) are no longer declared ({few(rest)}); declare each "
            "`<KEY>: {decommission: true}` to delete it, or restore it"
        ),
    )


def removed_tenant_failures(
    olds: Iterable[str], news: Iterable[str], decommissioned: Iterable[str], region: str | None = None
) -> list[RemovalFailure]:
    """Owners (tenants, platform folders) that disappeared from tenants.yaml without the marker; on a region's
    stack (``region``), from that region: the marker that deletes there only is `decommission: [region]`."""
    if region is None:
        where, marker = "in tenants.yaml", "keep the entry with `decommission: true`"
    else:
        where = f"in region {region} (tenants.yaml)"
        marker = (
            f"add `decommission: [{region}]` to the entry to delete them in {region} only "
            "(`decommission: true`: in every region)"
        )
    return _removal_failures(
        sorted(set(olds) - set(news) - set(decommissioned)),
        lambda owner: (
            f"{owner} is no longer declared {where}, and deleting its secrets needs an explicit "
            f"marker; to delete them, {marker} (or restore it)"
        ),
        lambda rest: (
            f"{len(rest)} more tenant(s) or folder(s) are no longer declared {where} ({few(rest)}); "
            f"to delete their secrets, {marker.replace('the entry', 'each entry')}, or restore them"
        ),
    )


def declared_keys(props: Mapping[str, Any]) -> set[str]:
    """The keys a resource's inputs declare: those it fingerprints, and (in a state written before values
    became write-only) its secret inputs."""
    return set(props.get(DECLARED_FINGERPRINTS) or {}) | secret_keys(props)


def desired_fingerprints(owner: str, values: Mapping[str, str], fp_key: bytes) -> dict[str, str]:
    """The fingerprints of ``values`` (key -> value), as a resource declares them."""
    return {key: fingerprint(fp_key, owner, key, values[key]) for key in sorted(values)}


def password_fingerprint(fp_key: bytes, setting: str, password: str | None) -> str | None:
    """What the schema resource records of a role's password (None when unset): a change shows, the
    password never does."""
    return None if password is None else fingerprint(fp_key, "company_secrets", setting, password)


def stale_keys(owner: str, declared: Mapping[str, str], values: Mapping[str, str], fp_key: bytes) -> list[str]:
    """The keys whose value, resolved at write time, is not the one the plan was made with (its fingerprint
    differs from the declared one), or that one side lacks."""
    resolved = desired_fingerprints(owner, values, fp_key)
    return sorted(key for key in set(declared) | set(resolved) if declared.get(key) != resolved.get(key))


def source_failures(news: Mapping[str, Any]) -> list[RemovalFailure]:
    """Every fingerprinted key has a source descriptor to resolve its value from, and no other key has one."""
    fingerprinted, described = set(news.get(DECLARED_FINGERPRINTS) or {}), set(news.get(SOURCES) or {})
    if fingerprinted == described:
        return []
    odd = few(sorted(fingerprinted ^ described))
    return [RemovalFailure(SOURCES, f"{news[OWNER]}: keys without both a fingerprint and a value source: {odd}")]


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
    changed input, so the preview shows the key's fingerprint change (`~ fingerprints: {~ STRIPE_SECRET_KEY:
    ...}`) and `detailedDiff` names it (a Python dynamic provider has no other way to report which
    property changed). That
    is right only when the change is in the declared inputs: ``recorded`` (fingerprints of what the
    store held at the last write or refresh) equal to ``declared`` (those written at the last write).
    After a refresh found drift, or for a replacement, or for a state that recorded nothing to compare
    (``declared`` None), the answer is True: the engine's input diff would see no change there.
    The provider plugin (components/plugin.py) takes None as True and names the changed keys itself
    (tenant_secrets/engine/property_diff.py), drift included; None is for the dynamic-provider host.
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


# --- the providers' decisions, one per method -------------------------------------------------------


@dataclass(frozen=True)
class Diff:
    """What a provider's `diff` answers: ``changes`` as for :func:`diff_verdict`, and the replacing inputs
    (the provider asks for delete-before-replace whenever it names some)."""

    changes: bool | None
    replaces: list[str]


def keys_to_delete(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    """Keys to delete: those marked one by one, or every recorded key when the owner is decommissioned."""
    if news.get(DECOMMISSION):
        return sorted(set(olds.get(RECORDED_FINGERPRINTS) or {}) | secret_keys(olds))
    return list(news.get(DECOMMISSIONED, []))


def tracked_keys(props: Mapping[str, Any]) -> set[str]:
    """Keys a folder or publication has held: recorded at the last write or refresh, or last written."""
    return set(props.get(RECORDED_FINGERPRINTS) or {}) | set(props.get(WRITTEN_FINGERPRINTS) or {})


def folder_check(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[RemovalFailure]:
    """An Infisical folder's `check`: no key dropped without its decommission marker, and no path other
    than the owner's own folder."""
    failures = folder_path_failures(news[OWNER], news[PATH]) + source_failures(news)
    failures += removed_key_failures(news[OWNER], olds, news, keys_to_delete(olds, news))
    return failures


def folder_diff(olds: Mapping[str, Any], news: Mapping[str, Any]) -> Diff:
    """An Infisical folder's `diff`: fingerprints recorded at the last write (or refresh) against the
    declared values.

    A change in the declared values is answered "unknown" so that the engine names the keys
    (:func:`diff_verdict`); drift found by a refresh, or a new path, is answered "changed".
    """
    replaces = FOLDER.replaced_by(olds, news)
    desired = dict(news.get(DECLARED_FINGERPRINTS) or {})
    recorded = olds.get(RECORDED_FINGERPRINTS) or {}
    changed = needs_write(recorded, desired, keys_to_delete(olds, news))
    return Diff(
        diff_verdict(
            changed=bool(replaces or changed or olds.get(DECOMMISSION) != news.get(DECOMMISSION)),
            replacing=bool(replaces),
            recorded=recorded,
            declared=olds.get(WRITTEN_FINGERPRINTS),
        ),
        replaces,
    )


def tenant_rows_check(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[RemovalFailure]:
    """A tenant's rows' `check`: no key dropped without its decommission marker."""
    return source_failures(news) + removed_key_failures(news[OWNER], olds, news, keys_to_delete(olds, news))


def tenant_rows_diff(olds: Mapping[str, Any], news: Mapping[str, Any]) -> Diff:
    """A tenant's rows' `diff`: a key to write or delete, the owner decommissioned, a row not bound to it,
    or a replacing input."""
    replaces = TENANT_ROWS.replaced_by(olds, news)
    changed = (
        bool(keys_to_write(olds, news))
        or olds.get(DECOMMISSION) != news.get(DECOMMISSION)
        or bool(news.get(UNBOUND))  # rows the preflight found not bound to them: overwrite them
        or bool(news.get(DECOMMISSION) and news.get(STORED_KEYS))  # rows left for a decommissioned tenant
    )
    return Diff(bool(replaces or changed), replaces)


def keys_to_write(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    """Keys whose value changed or that go, and every key when the tenant's company changed."""
    desired = dict(news.get(DECLARED_FINGERPRINTS) or {})
    if news.get(COMPANY_ID) and olds.get(COMPANY_ID) and news[COMPANY_ID] != olds[COMPANY_ID]:
        return sorted(desired)
    return needs_write(olds.get(RECORDED_FINGERPRINTS) or {}, desired, keys_to_delete(olds, news))


def publication_diff(olds: Mapping[str, Any], news: Mapping[str, Any]) -> Diff:
    """A master key publication's `diff`: a published secret added, changed or withdrawn, or drift."""
    replaces = PUBLICATION.replaced_by(olds, news)
    recorded = olds.get(RECORDED_FINGERPRINTS) or {}
    return Diff(
        diff_verdict(
            changed=bool(replaces) or recorded != news[DECLARED_FINGERPRINTS],
            replacing=bool(replaces),
            recorded=recorded,
            declared=olds.get(WRITTEN_FINGERPRINTS),
        ),
        replaces,
    )


def withdrawn(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    """The secrets a publication's update withdraws: written last time, no longer declared."""
    return sorted(set(olds.get(WRITTEN_FINGERPRINTS) or olds[RECORDED_FINGERPRINTS]) - set(news[DECLARED_FINGERPRINTS]))


def registry_check(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[RemovalFailure]:
    """The registry's `check`: no owner gone from tenants.yaml without its decommission marker."""
    return removed_tenant_failures(
        olds.get(OWNERS, []), news.get(OWNERS, []), news.get(DECOMMISSIONED, []), news.get(REGION)
    )
