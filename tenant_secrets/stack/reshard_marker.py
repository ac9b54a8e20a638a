"""The unfinished-reshard marker: while `tenantctl reshard` is moving tenants, every stack it involves says so in
its own state, and the stack's provider refuses every `preview`, `up`, `refresh` and `destroy` of it.

The marker is an input of the stack's explicit provider resource, written into the checkpoint by the
reshard (`pulumi stack export`/`import`) before its first state move and removed after its last step
(docs/decisions/0043-unfinished-reshard-refuses.md). It lives in the backend, so CI's deploy of the stack
sees it whatever checkout it runs from; the program never declares it, so the engine hands it to the
provider only as the old inputs of `CheckConfig` (an `up` or a `preview`) or as the inputs of `Configure`
when the provider comes from the state (a `refresh` or a `destroy`). Either way the provider refuses before
any resource is checked, so nothing is written and nothing is deleted; reading it costs no call.

A reshard of stacks with buckets moves no state (docs/decisions/0053-tenants-per-resource.md): it leaves a
second input on each destination stack's provider, :data:`ARRIVALS`, the tenants that arrive, each with the stack
it comes from and its recorded entry per store as the source's bucket holds it (its outputs' packed JSON entry:
the fingerprints of what the store holds and bookkeeping, never a value), so that `tenantctl plan` compares the
tenant's keys from what the source wrote to what the destination declares, as a move within a stack does. The
next `up` of that stack sees it among the old inputs of `CheckConfig` and adopts, rather than creates, its
tenants' store entries (they exist: the source stack wrote them); that `up` records the program's inputs, which
never declare it, so the run after it is an ordinary one.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tenant_secrets.engine import contract as c

MARKER = "reshardUnfinished"
"""The provider input that holds the command which finishes the reshard."""
ARRIVALS = "reshardArrivals"
"""The provider input that maps each tenant a reshard moves into the stack to ``{"from": <the stack it leaves>,
"entries": {<store>: <its recorded bucket entry there>}}`` (a state written before the entries were recorded maps
it to the stack alone: read as an arrival with no entry)."""
ARRIVAL_FROM = "from"
ARRIVAL_ENTRIES = "entries"
PROVIDER_TYPE = f"pulumi:providers:{c.PROVIDER_PACKAGE}"


def finish_command(environment: str, old: int, new: int, region: str | None = None) -> str:
    """The one command that finishes (or, run again, completes) the reshard (of one region's stacks)."""
    flag = f" --region {region}" if region else ""
    return f"tenantctl reshard --environment {environment}{flag} --from {old} --to {new}"


def refusal(stack: str, inputs: Mapping[str, Any]) -> str | None:
    """The one line that refuses a run of a stack whose provider's inputs hold the marker; None otherwise."""
    command = inputs.get(MARKER)
    if not command:
        return None
    return (
        f"stack {stack or '(this stack)'}: a reshard is unfinished, tenants may be half-moved between this stack "
        f"and another; nothing was changed. Finish it first: `{command}`"
    )


def _providers(deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r for r in deployment.get("resources") or [] if r.get("type") == PROVIDER_TYPE]


def mark(deployment: Mapping[str, Any], command: str) -> bool:
    """Put the marker on every tenant-secrets provider of a checkpoint's deployment; whether anything changed.
    A stack without one (never applied) holds nothing to protect."""
    changed = False
    for provider in _providers(deployment):
        for side in ("inputs", "outputs"):
            props = provider.setdefault(side, {})
            changed |= props.get(MARKER) != command
            props[MARKER] = command
    return changed


def clear(deployment: Mapping[str, Any]) -> bool:
    """Take the marker off every tenant-secrets provider; whether anything changed."""
    changed = False
    for provider in _providers(deployment):
        for side in ("inputs", "outputs"):
            changed |= (provider.get(side) or {}).pop(MARKER, None) is not None
    return changed


def marked(deployment: Mapping[str, Any]) -> str | None:
    """The command a checkpoint's marker names, if it has one."""
    return next((str(p["inputs"][MARKER]) for p in _providers(deployment) if (p.get("inputs") or {}).get(MARKER)), None)


def mark_arrivals(
    deployment: Mapping[str, Any],
    arrivals: Mapping[str, str],
    entries: Mapping[str, Mapping[str, str]] | None = None,
) -> bool:
    """Record on every tenant-secrets provider of a checkpoint's deployment the tenants that arrive (subdomain ->
    the stack it leaves), each with its recorded entries (subdomain -> store -> the packed entry the source's
    bucket outputs hold), none when empty; whether anything changed."""
    recorded = {
        owner: {ARRIVAL_FROM: source, ARRIVAL_ENTRIES: dict(sorted((entries or {}).get(owner, {}).items()))}
        for owner, source in sorted(arrivals.items())
    }
    changed = False
    for provider in _providers(deployment):
        for side in ("inputs", "outputs"):
            props = provider.setdefault(side, {})
            before = props.pop(ARRIVALS, None)
            if recorded:
                props[ARRIVALS] = copy.deepcopy(recorded)
            changed |= before != props.get(ARRIVALS)
    return changed


def _arrivals(inputs: Mapping[str, Any]) -> dict[str, Any]:
    found = inputs.get(ARRIVALS)
    return {str(k): v for k, v in found.items()} if isinstance(found, Mapping) else {}


def arrivals(inputs: Mapping[str, Any]) -> dict[str, str]:
    """The tenants a provider's recorded inputs say a reshard moved into the stack, with the stack each left."""
    return {
        owner: str(found.get(ARRIVAL_FROM, "")) if isinstance(found, Mapping) else str(found)
        for owner, found in _arrivals(inputs).items()
    }


def arrival_entries(inputs: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Tenant -> store -> the recorded bucket entry the reshard took from the source stack, for the arrivals
    that have one (none in a state written before the entries were recorded)."""
    found: dict[str, dict[str, str]] = {}
    for owner, arrival in _arrivals(inputs).items():
        stores = arrival.get(ARRIVAL_ENTRIES) if isinstance(arrival, Mapping) else None
        if isinstance(stores, Mapping):
            found[owner] = {str(store): entry for store, entry in stores.items() if isinstance(entry, str)}
    return found
