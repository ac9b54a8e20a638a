"""No declared `{from: infisical}` source reads a folder, or a key, that the same run deletes.

A stack's run deletes a tenant's Infisical folder when its storage no longer includes Infisical on a
stack with `retainOnDelete: false` (the A-to-B migration's last step, docs/guides/migrating-to-the-
database.md), and a key marked `{decommission: true}`. (A decommissioned tenant's folder is read by no
source: its own keys are no longer resolved, and no other owner may read it: tenants_file/validation.py.)
A source that still reads what is deleted resolves on this run and on none after it: every later plan
and `up` fails. So such a change is refused before anything is written, by `tenantctl validate --stack`
and by the program itself (the preview, hence the plan), at the line of the source that reads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from tenant_secrets.tenants_file.model import EnvironmentPlan, Issue, Position
from tenant_secrets.tenants_file.names import TENANTS_FOLDER
from tenant_secrets.tenants_file.sources import InfisicalSource, ValueSource


def _deleted_folders(plan: EnvironmentPlan, *, retain_on_delete: bool) -> dict[str, tuple[str, str]]:
    """Folder path -> (why this run deletes it, what to do instead)."""
    deleted: dict[str, tuple[str, str]] = {}
    for tenant in plan.tenants:
        path = f"/{TENANTS_FOLDER}/{tenant.subdomain}"
        if not tenant.decommission and "infisical" not in tenant.storage and not retain_on_delete:
            deleted[path] = (
                f"tenant {tenant.subdomain} has storage: {', '.join(sorted(tenant.storage))} on a stack with "
                "retainOnDelete: false, which deletes it",
                f"keep {tenant.subdomain} at storage: both until no key reads its folder (take each value into "
                "the stack config and read it {from: config}: docs/guides/migrating-to-the-database.md, step 7), "
                "or set the stack's retainOnDelete to true (the folder then stays, no longer managed)",
            )
    return deleted


def _deleted_keys(plan: EnvironmentPlan) -> dict[tuple[str, str], str]:
    """(folder path, key) -> whose key it is, for each key this run deletes from a folder it keeps."""
    keys = {
        (f"/{TENANTS_FOLDER}/{t.subdomain}", key): f"tenant {t.subdomain}"
        for t in plan.tenants
        if "infisical" in t.storage and not t.decommission
        for key in t.decommissioned_keys
    }
    keys.update(
        {(f.path.rstrip("/"), key): f"platform folder {f.name}" for f in plan.platform for key in f.decommissioned_keys}
    )
    return keys


def _reads(plan: EnvironmentPlan) -> Iterator[tuple[str, str, InfisicalSource, Position, str]]:
    """(owner label, key, source, where, field) of each source reading this environment's Infisical."""
    owners: list[tuple[str, Mapping[str, ValueSource], Mapping[str, Position], Mapping[str, str]]] = [
        (f"tenant {t.subdomain}", t.secrets, t.locations, t.fields) for t in plan.tenants if not t.decommission
    ]
    owners += [(f"platform folder {f.name}", f.secrets, f.locations, f.fields) for f in plan.platform]
    for label, secrets, locations, fields in owners:
        for key, source in sorted(secrets.items()):
            if isinstance(source, InfisicalSource) and source.environment in (None, plan.environment):
                yield label, key, source, locations.get(key, (1, 1)), fields.get(key, key)


def deleted_reads(plan: EnvironmentPlan, file: str, *, retain_on_delete: bool) -> list[Issue]:
    """One issue per declared source that reads a folder or key the stack's run deletes."""
    folders = _deleted_folders(plan, retain_on_delete=retain_on_delete)
    keys = _deleted_keys(plan)
    issues: list[Issue] = []
    for label, key, source, (line, column), field in _reads(plan):
        path = source.path.rstrip("/") or "/"
        where = f"Infisical {plan.environment}:{path}"
        if path in folders:
            why, hint = folders[path]
            message = f"{label}, {key}: reads {source.key} from {where}, a folder this stack's run deletes ({why})"
            issues.append(Issue(file, line, column, field, message, hint))
        elif (path, source.key) in keys:
            message = (
                f"{label}, {key}: reads {source.key} from {where}, which {keys[path, source.key]} marks "
                "{decommission: true}: this stack's run deletes it"
            )
            hint = f"give {key} another source, or keep {source.key} (drop its decommission marker)"
            issues.append(Issue(file, line, column, field, message, hint))
    return issues
