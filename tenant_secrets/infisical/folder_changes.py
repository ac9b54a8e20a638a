"""Planning what to send to one Infisical folder, without a network: the checks before any write, the
differences to write (at most one batch per kind of change), and what a write achieved so far.

``client.py`` reads the folder, plans with :class:`_Plan` and sends through ``transport.py``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenant_secrets.infisical.errors import InfisicalError
from tenant_secrets.secret.values import JS_WHITESPACE, infisical_keeps

FOLDER_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class ApplyResult:
    """Keys this call created, updated and deleted (sorted), and whether it created the folder."""

    created: tuple[str, ...]
    updated: tuple[str, ...]
    deleted: tuple[str, ...]
    folder_created: bool = field(default=False, compare=False)  # not what it did to the secrets: not compared

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


# --- paths and values --------------------------------------------------------------------------


def _folder_path(path: str) -> str:
    """``/a/b`` from ``a/b/``, ``/a/b`` or ``/a/b/``; every segment must be a valid folder name."""
    stripped = path.strip()
    inner = stripped.strip("/")
    if not inner:
        return "/"
    names = inner.split("/")
    if not all(FOLDER_SEGMENT.match(name) for name in names):
        raise InfisicalError(
            f"invalid Infisical folder path {stripped!r}: segments may contain only letters, digits, - and _",
            path=stripped,
        )
    return "/" + "/".join(names)


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent or "/", name


def _check_input(environment: str, path: str, upsert: Mapping[str, str], delete: Collection[str]) -> None:
    """Reject, before any write, keys Infisical refuses and values it would alter."""
    for key in [*upsert, *delete]:
        if not key or key != key.strip(JS_WHITESPACE) or ":" in key or "/" in key:
            raise InfisicalError(
                f"invalid secret key {key!r} for {environment}:{path}: keys must be non-empty, without "
                "surrounding whitespace, ':' or '/'",
                environment=environment,
                path=path,
                keys=[key],
            )
    both = sorted(set(upsert) & set(delete))
    if both:
        raise InfisicalError(
            f"keys {', '.join(both)} in {environment}:{path} are both set and deleted; choose one",
            environment=environment,
            path=path,
            keys=both,
        )
    altered = sorted(key for key, value in upsert.items() if not infisical_keeps(value))
    if altered:
        raise InfisicalError(
            f"the values of {', '.join(altered)} in {environment}:{path} begin or end with whitespace, which "
            "Infisical trims (only one trailing newline survives); fix the value at its source",
            environment=environment,
            path=path,
            keys=altered,
        )


@dataclass(frozen=True)
class _Plan:
    create: dict[str, str]
    update: dict[str, str]
    delete: tuple[str, ...]

    @classmethod
    def of(cls, upsert: Mapping[str, str], delete: Collection[str], current: Mapping[str, str]) -> _Plan:
        return cls(
            create={k: v for k, v in sorted(upsert.items()) if k not in current},
            update={k: v for k, v in sorted(upsert.items()) if k in current and current[k] != v},
            delete=tuple(sorted(k for k in set(delete) if k in current)),
        )


@dataclass
class _Progress:
    """Keys written so far by one apply_secrets call."""

    created: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)

    def keys(self, verb: str) -> set[str]:
        return {"create": self.created, "update": self.updated, "delete": self.deleted}[verb]

    def result(self) -> ApplyResult:
        return ApplyResult(tuple(sorted(self.created)), tuple(sorted(self.updated)), tuple(sorted(self.deleted)))


class _Conflict(Exception):
    """A batch write met another state than the one planned against: a stale ``existing``, a retried
    write that had in fact been applied, or a missing folder.

    ``uncertain`` names the batch (verb and keys) when an earlier attempt of it may have been applied.
    """

    def __init__(self, folder_missing: bool, uncertain: tuple[str, list[str]] | None) -> None:
        super().__init__("the folder changed under the write")
        self.folder_missing = folder_missing
        self.uncertain = uncertain


def _by_folder(secrets: Iterable[Any], environment: str, *, with_values: bool) -> dict[str, dict[str, str]]:
    """A recursive listing grouped by each secret's folder (values "" when not asked for); a value the
    identity may not read is an error."""
    tree: dict[str, dict[str, str]] = {}
    hidden: list[str] = []
    for secret in secrets:
        folder = _folder_path(str(secret.secretPath or "/"))
        if with_values and secret.secretValueHidden:
            hidden.append(f"{folder}/{secret.secretKey}")
        tree.setdefault(folder, {})[str(secret.secretKey)] = str(secret.secretValue) if with_values else ""
    if hidden:
        shown = ", ".join(sorted(hidden)[:3]) + (f" and {len(hidden) - 3} more" if len(hidden) > 3 else "")
        raise InfisicalError(
            f"the identity may not read the values of {shown} in {environment}; grant it read access to those paths",
            environment=environment,
        )
    return tree
