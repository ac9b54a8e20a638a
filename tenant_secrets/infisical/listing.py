"""One recursive listing per environment and process, shared by every reader in the process.

A refresh of 1,000 folders, the program's ``{from: infisical}`` sources and the provider's own reads of
source values would otherwise list one folder each. Infisical answers ``GET /api/v3/secrets/raw`` with
``recursive=true`` for the whole environment in one request, each secret with its ``secretPath``; the
first reader of an environment sends it (the others wait for it: the provider host calls from several
threads), and every later read in the process is answered from it.

Staleness: the listing is what the environment held when it was read, changed since only by this
process's own writes (the client notes each successful write here, :meth:`SharedListings.note_write`).
It serves reads that report or resolve a value; it never decides what a write sends: a write lists its
folder afresh and sends only what differs (``client.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenant_secrets.infisical.errors import hidden_values
from tenant_secrets.infisical.folder_changes import _folder_path

Key = tuple[str, str, str, str]
"""(site URL, client id, project id, environment): what one identity sees of one environment."""


@dataclass
class _Tree:
    """An environment's shared secrets by folder; ``hidden`` names the keys whose value the identity may not read."""

    folders: dict[str, dict[str, str]] = field(default_factory=dict)
    hidden: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, secrets: Iterable[Any]) -> _Tree:
        tree = cls()
        for secret in secrets:
            folder = _folder_path(str(secret.secretPath or "/"))
            tree.folders.setdefault(folder, {})[str(secret.secretKey)] = str(secret.secretValue)
            if secret.secretValueHidden:
                tree.hidden.setdefault(folder, set()).add(str(secret.secretKey))
        return tree

    def folder(self, environment: str, path: str) -> dict[str, str]:
        if refused := hidden_values(environment, path, self.hidden.get(path, ())):
            raise refused
        return dict(self.folders.get(path, {}))


class SharedListings:
    """The process's listings, one per :data:`Key`, each read once (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trees: dict[Key, _Tree] = {}
        self._loading: dict[Key, threading.Lock] = {}

    def folder(self, key: Key, path: str, load: Callable[[], Iterable[Any]]) -> dict[str, str]:
        """The folder's secrets (key -> value; {} for a folder without secrets or none at all), from the
        environment's listing, which ``load`` (one recursive listing) reads the first time."""
        return self._tree(key, load).folder(key[3], _folder_path(path))

    def _tree(self, key: Key, load: Callable[[], Iterable[Any]]) -> _Tree:
        with self._lock:
            tree = self._trees.get(key)
            if tree is not None:
                return tree
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one thread lists; the others wait for its answer rather than list too
            with self._lock:
                tree = self._trees.get(key)
            if tree is None:
                tree = _Tree.of(load())
                with self._lock:
                    self._trees[key] = tree
            return tree

    def note_write(self, key: Key, path: str, upsert: Mapping[str, str], deleted: Collection[str]) -> None:
        """A write of this process succeeded: keep the listing (if read) what Infisical now holds."""
        with self._lock:
            tree = self._trees.get(key)
            if tree is None:
                return
            held = tree.folders.setdefault(path, {})
            held.update(upsert)
            for name in deleted:
                held.pop(name, None)
            tree.hidden.get(path, set()).difference_update([*upsert, *deleted])

    def note_folder_deleted(self, key: Key, path: str) -> None:
        with self._lock:
            tree = self._trees.get(key)
            if tree is None:
                return
            for folder in [f for f in tree.folders if f == path or f.startswith(f"{path}/")]:
                tree.folders.pop(folder)
                tree.hidden.pop(folder, None)

    def clear(self) -> None:
        """Forget every listing (a new run in the same process reads afresh)."""
        with self._lock:
            self._trees.clear()


LISTINGS = SharedListings()
