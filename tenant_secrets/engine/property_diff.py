"""What changed, property by property: the detailed diff the provider plugin reports to the engine.

Whether a resource changes, and which inputs replace it, is the providers' decision
(`tenant_secrets/engine/reconcile.py`); this names *what* changed, so that `pulumi preview --diff` and the
`detailedDiff` of `pulumi preview --json` name each key (docs/decisions/0039-provider-plugin.md). A map
(the fingerprints, the sources) is compared key by key, anything else whole, with the old input; except
the fingerprints, compared with the resource's output of the same name, what the store held at the last
write or refresh: so drift found by a refresh shows under the key it hit, as a declared change does.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["add", "update", "delete"]
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class PropertyChange:
    """One changed property path: how, whether it replaces the resource, and whether the old value is the old
    input (True) or the recorded output (False)."""

    kind: Kind
    replace: bool
    input_diff: bool


def _kind(before: bool, after: bool) -> Kind:
    if not before:
        return "add"
    return "update" if after else "delete"


def path(name: str, key: str) -> str:
    """A property path as the engine reads it: ``fingerprints.STRIPE_KEY``, or quoted for another key."""
    return f"{name}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{name}[{key!r}]".replace("'", '"')


def detailed_diff(
    old_inputs: Mapping[str, Any],
    news: Mapping[str, Any],
    *,
    recorded: Mapping[str, Any] | None = None,
    replaces: Collection[str] = (),
) -> dict[str, PropertyChange]:
    """Path -> change, for every input property that differs from the old input, or, for a property in
    ``recorded``, from what the resource recorded as its output. Properties the engine keeps for itself
    (``__provider``, the pickled provider of a resource made by a dynamic provider) are not inputs."""
    recorded = recorded or {}
    changes: dict[str, PropertyChange] = {}
    for name in sorted({*old_inputs, *news}):
        if name.startswith("__"):
            continue
        is_recorded = name in recorded
        before = is_recorded or name in old_inputs
        old = recorded[name] if is_recorded else old_inputs.get(name)
        new = news.get(name)
        if before == (name in news) and old == new:
            continue
        replace = name in replaces
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            keys = [k for k in sorted({*old, *new}) if (k in old) != (k in new) or old.get(k) != new.get(k)]
            for key in keys:
                changes[path(name, str(key))] = PropertyChange(_kind(key in old, key in new), replace, not is_recorded)
            if keys:
                continue
        changes[name] = PropertyChange(_kind(before, name in news), replace, not is_recorded)
    return changes
