"""`tenantctl rotation bump`: move the rotation markers of generated secrets, as a reviewed change.

    choose(policies, due, tenants)       which generated secrets rotate                   (pure)
    plan_bump(tf, chosen, every, today)  the marker each declaration moves to              (pure)
    rewrite(text, bumps)                 tenants.yaml, comments and layout kept            (pure)

A marker moves where it is declared, so the change applies wherever that declaration does (every
environment the tenant is in, unless the declaration is an override). A secret declared in
`defaults` is moved there when every tenant that inherits it rotates; otherwise the chosen tenants
get their own copy of the declaration with the new marker, and the others keep their values.

New markers: a whole number goes up by one ("1" -> "2"); anything else (a date, "2026-Q4") becomes
today's date, or today's date and a count when it already is that (docs/decisions/0026).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from tenant_secrets.rotation.policy import SecretPolicy
from tenant_secrets.tenants_file.editing import block_mapping, edit
from tenant_secrets.tenants_file.model import Loc, dotted
from tenant_secrets.tenants_file.names import few


class BumpError(Exception):
    """The bump cannot be made as asked; the message names tenants and keys, never a value."""


@dataclass(frozen=True)
class Bump:
    loc: Loc
    """The declaration whose marker moves (its data path), or the one copied when ``copy_to`` is set."""
    old: str
    new: str
    keys: tuple[str, ...]
    """owner/KEY of each secret that rotates."""
    copy_to: Loc | None = None
    """Where a tenant's own copy of a `defaults` declaration is written."""


def choose(
    policies: Sequence[SecretPolicy], *, due: Collection[tuple[str, str]] | None, tenants: Collection[str]
) -> list[SecretPolicy]:
    """The generated secrets to rotate: of the named tenants or folders (all when none are named), and
    with ``due`` given, only those (owner, key) pairs."""
    rotating = [p for p in policies if p.kind == "rotate"]
    known = {p.owner for p in rotating}
    unknown = sorted(set(tenants) - known)
    if unknown:
        raise BumpError(f"no generated secret with a rotation period for: {few(unknown)}")
    return [p for p in rotating if (not tenants or p.owner in tenants) and (due is None or (p.owner, p.key) in due)]


_DATED = re.compile(r"(\d{4}-\d{2}-\d{2})(?:\.(\d+))?")


def next_marker(marker: str, today: date) -> str:
    if marker.isdigit():
        return str(int(marker) + 1)
    dated = _DATED.fullmatch(marker)
    if dated and dated.group(1) == today.isoformat():
        return f"{today.isoformat()}.{int(dated.group(2) or 1) + 1}"
    return today.isoformat()


def plan_bump(chosen: Sequence[SecretPolicy], every: Sequence[SecretPolicy], today: date) -> list[Bump]:
    """One Bump per declaration (or per tenant's copy of a `defaults` one). ``every``: all the
    environment's rotating policies, to know who else inherits a `defaults` declaration."""
    bumps: list[Bump] = []
    by_loc: dict[Loc, list[SecretPolicy]] = {}
    for policy in chosen:
        by_loc.setdefault(policy.loc, []).append(policy)
    for loc, policies in by_loc.items():
        marker = policies[0].marker or "1"
        new = next_marker(marker, today)
        inheriting = {(p.owner, p.key) for p in every if p.loc == loc}
        if loc[0] != "defaults" or inheriting <= {(p.owner, p.key) for p in policies}:
            bumps.append(Bump(loc, marker, new, tuple(f"{p.owner}/{p.key}" for p in policies)))
            continue
        for policy in policies:
            if policy.tenant_index is None:  # pragma: no cover - defaults apply to tenants only
                continue
            target: Loc = ("tenants", policy.tenant_index, "secrets", *loc[2:])
            bumps.append(Bump(loc, marker, new, (f"{policy.owner}/{policy.key}",), copy_to=target))
    return bumps


def _node(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def _set_marker(source: CommentedMap, new: str) -> None:
    current = source.get("rotation")
    if current is None:
        position = list(source).index("generate") + 1
        source.insert(position, "rotation", DoubleQuotedScalarString(new))
    elif isinstance(current, int) and new.isdigit():
        source["rotation"] = int(new)
    elif isinstance(current, str) and type(current) is not str:  # keep how it was quoted
        source["rotation"] = type(current)(new)
    else:
        source["rotation"] = DoubleQuotedScalarString(new)


def _flow_copy(node: Any) -> Any:
    """A fresh copy of a source mapping, on one line, sharing nothing (no YAML anchor) and no comment."""
    if not isinstance(node, dict):
        return node
    copy = CommentedMap((key, _flow_copy(value)) for key, value in node.items())
    copy.fa.set_flow_style()
    return copy


def rewrite(text: str, bumps: Sequence[Bump], file: str = "tenants.yaml") -> str:
    """tenants.yaml with the markers moved, everything else as it was; checked against the model."""

    def change(data: Any) -> None:
        for bump in bumps:
            source = _node(data, bump.loc)
            if bump.copy_to is None:
                _set_marker(source, bump.new)
                continue
            copy = _flow_copy(source)
            _set_marker(copy, bump.new)
            parent = _node(data, bump.copy_to[:2])
            for name in bump.copy_to[2:-1]:
                parent = block_mapping(parent, str(name), ("environments", "storage", "name", "subdomain"))
            parent[bump.copy_to[-1]] = copy

    return edit(text, change, file, "bumped")


def describe(bumps: Sequence[Bump]) -> list[str]:
    """One line per moved marker: the field, old -> new, and who rotates (a few names and a count)."""
    lines = []
    for bump in bumps:
        where = dotted(bump.copy_to) + f" (copied from {dotted(bump.loc)})" if bump.copy_to else dotted(bump.loc)
        lines.append(f"{where}: rotation {bump.old!r} -> {bump.new!r}: {few(list(bump.keys))}")
    return lines
