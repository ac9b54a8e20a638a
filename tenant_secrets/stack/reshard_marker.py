"""The unfinished-reshard marker: while `tenantctl reshard` is moving tenants, every stack it involves says so in
its own state, and the stack's provider refuses every `preview`, `up`, `refresh` and `destroy` of it.

The marker is an input of the stack's explicit provider resource, written into the checkpoint by the
reshard (`pulumi stack export`/`import`) before its first state move and removed after its last step
(docs/decisions/0043-unfinished-reshard-refuses.md). It lives in the backend, so CI's deploy of the stack
sees it whatever checkout it runs from; the program never declares it, so the engine hands it to the
provider only as the old inputs of `CheckConfig` (an `up` or a `preview`) or as the inputs of `Configure`
when the provider comes from the state (a `refresh` or a `destroy`). Either way the provider refuses before
any resource is checked, so nothing is written and nothing is deleted; reading it costs no call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenant_secrets.engine import contract as c

MARKER = "reshardUnfinished"
"""The provider input that holds the command which finishes the reshard."""
PROVIDER_TYPE = f"pulumi:providers:{c.PROVIDER_PACKAGE}"


def finish_command(environment: str, old: int, new: int) -> str:
    """The one command that finishes (or, run again, completes) the reshard."""
    return f"tenantctl reshard --environment {environment} --from {old} --to {new}"


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
