"""Where a secret's value comes from: the value sources of tenants.yaml, and their descriptors.

A source says where to find a value, never the value (a literal excepted, which tenants.yaml holds in
the clear because it is not secret). A *descriptor* is the source as the stack's state records it: a
small plain mapping the dynamic providers read back to resolve the value themselves at write time, so
that no value is ever a resource input or output (docs/decisions/0034-write-only-values.md). A
literal's descriptor names tenants.yaml instead of holding the literal: whatever a team writes there,
the state never holds it.

Kept apart from the pydantic model (`tenant_secrets.tenants_file.model`), which the providers have no use for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class ConfigSource:
    path: tuple[str, ...]  # inside the stack config object `secrets`
    allow_empty: bool = False


@dataclass(frozen=True)
class EnvSource:
    var: str


@dataclass(frozen=True)
class GeneratedSource:
    bytes: int
    encoding: str
    rotation: str


@dataclass(frozen=True)
class InfisicalSource:
    path: str
    key: str
    environment: str | None
    allow_empty: bool = False


@dataclass(frozen=True)
class LiteralSource:
    value: str


ValueSource = ConfigSource | EnvSource | GeneratedSource | InfisicalSource | LiteralSource


@dataclass(frozen=True)
class TenantsFileLiteral:
    """A literal, read back from tenants.yaml: the owner's declaration of the key, in the stack's environment."""


FROM: Final = "from"
LITERAL_IN_FILE: Final = "tenants.yaml"

Described = ConfigSource | EnvSource | GeneratedSource | InfisicalSource | TenantsFileLiteral


class DescriptorError(ValueError):
    """A descriptor in the state that is not one this version writes (a hand-edited state, say)."""


def config_value(tree: object, path: tuple[str, ...]) -> str | None:
    """The value a `{from: config}` source reads at ``path`` in the stack's structured ``secrets`` object;
    None where there is nothing, or an object or a list."""
    node = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return None if node is None or isinstance(node, dict | list) else str(node)


def describe(source: ValueSource) -> dict[str, Any]:
    """The descriptor of ``source``: plain JSON, never a value."""
    if isinstance(source, ConfigSource):
        return {FROM: "config", "path": list(source.path), "allow_empty": source.allow_empty}
    if isinstance(source, EnvSource):
        return {FROM: "env", "var": source.var}
    if isinstance(source, GeneratedSource):
        return {FROM: "generate", "bytes": source.bytes, "encoding": source.encoding, "rotation": source.rotation}
    if isinstance(source, InfisicalSource):
        return {
            FROM: "infisical",
            "environment": source.environment,
            "path": source.path,
            "key": source.key,
            "allow_empty": source.allow_empty,
        }
    return {FROM: LITERAL_IN_FILE}


def described(descriptor: Mapping[str, Any]) -> Described:
    """The source a descriptor records (a literal stays a reference to tenants.yaml)."""
    kind = descriptor.get(FROM)
    try:
        if kind == "config":
            return ConfigSource(tuple(str(p) for p in descriptor["path"]), bool(descriptor.get("allow_empty")))
        if kind == "env":
            return EnvSource(str(descriptor["var"]))
        if kind == "generate":
            return GeneratedSource(int(descriptor["bytes"]), str(descriptor["encoding"]), str(descriptor["rotation"]))
        if kind == "infisical":
            environment = descriptor.get("environment")
            return InfisicalSource(
                str(descriptor["path"]),
                str(descriptor["key"]),
                None if environment is None else str(environment),
                bool(descriptor.get("allow_empty")),
            )
    except (KeyError, TypeError, ValueError) as err:
        raise DescriptorError(f"a value source of kind {kind!r} is incomplete ({err})") from None
    if kind == LITERAL_IN_FILE:
        return TenantsFileLiteral()
    raise DescriptorError(f"unknown value source kind {kind!r}")


def where(descriptor: Mapping[str, Any]) -> str:
    """Where a descriptor's value is found, for a message (never the value)."""
    source = described(descriptor)
    if isinstance(source, ConfigSource):
        return f"stack config secrets.{'.'.join(source.path)}"
    if isinstance(source, EnvSource):
        return f"environment variable {source.var}"
    if isinstance(source, GeneratedSource):
        return f"generated (rotation {source.rotation})"
    if isinstance(source, InfisicalSource):
        return f"Infisical {source.environment or '<stack environment>'}:{source.path.rstrip('/')}/{source.key}"
    return "its literal in tenants.yaml"


# Infisical's secret references, `${KEY}` and `${env.folder.KEY}`, expanded when a secret is read (the SDKs'
# default): a value holding one would read another secret, possibly another tenant's (issue 13, item 3).
INFISICAL_REFERENCE = re.compile(r"\$\{[a-zA-Z0-9_.-]+\}")


def reference_problem(value: str) -> str | None:
    """Why a value cannot be stored as is: it holds an Infisical secret reference (None when it does not).

    Refused rather than escaped: Infisical has no escape for `${`, and the database store would hold
    the text while Infisical served the referenced secret, so the two stores would disagree.
    """
    if INFISICAL_REFERENCE.search(value) is None:
        return None
    return (
        "the value holds an Infisical secret reference (`${...}`), which Infisical expands when the "
        "application reads it (to another secret's value, possibly another tenant's); remove the `${`"
    )
