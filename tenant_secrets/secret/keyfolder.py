"""The master keyring as the application reads it: secrets in an Infisical key folder (``/hono-api``).

The seed's ``getMasterKey()`` lists the key folder of its environment and takes
``MASTER_ENCRYPTION_KEY`` (64 hex characters). That secret is the keyring's *current* key, exactly as
the seed reads it. Beside it:

- ``MASTER_ENCRYPTION_KEY_VERSION``: the version of ``MASTER_ENCRYPTION_KEY`` (decimal);
- ``MASTER_ENCRYPTION_KEY_V<n>``: the key of version ``n``, for every version that a stored row or
  history entry still uses, and for the stack's active version (published before any row uses it).

A reader that picks the key by each row's ``key_version`` (``MASTER_ENCRYPTION_KEY_V<key_version>``)
reads every row at every moment of a rotation; one that reads ``MASTER_ENCRYPTION_KEY`` alone reads
every row once the rotation has finished (docs/guides/master-key-and-readers.md, "Master key rotation and the
application").

A folder that holds only ``MASTER_ENCRYPTION_KEY`` (the seed's own layout) is a keyring of one key,
version 1. No error raised here contains a key: messages name the folder, the secret and the format.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from tenant_secrets.secret.envelope import Keyring, MasterKeyError, parse_master_key

CURRENT_KEY = "MASTER_ENCRYPTION_KEY"
CURRENT_VERSION = "MASTER_ENCRYPTION_KEY_VERSION"
VERSIONED_PREFIX = "MASTER_ENCRYPTION_KEY_V"
DEFAULT_FOLDER = "/hono-api"
_VERSIONED = re.compile(r"MASTER_ENCRYPTION_KEY_V([1-9][0-9]*)")
_FORMAT = "64 hex characters (32 random bytes, e.g. `openssl rand -hex 32`)"


class KeyFolderError(ValueError):
    """The key folder lacks a key or holds a malformed one; the message names folder and secret, never a value."""


def versioned_name(version: int) -> str:
    """``MASTER_ENCRYPTION_KEY_V<version>``."""
    return f"{VERSIONED_PREFIX}{version}"


def is_keyring_secret(key: str) -> bool:
    """Whether a secret of the key folder belongs to the keyring (and so is never declared in tenants.yaml)."""
    return key in (CURRENT_KEY, CURRENT_VERSION) or _VERSIONED.fullmatch(key) is not None


def published_versions(secrets: Collection[str]) -> set[int]:
    """The versions a key folder publishes as ``MASTER_ENCRYPTION_KEY_V<n>``."""
    return {int(m.group(1)) for key in secrets if (m := _VERSIONED.fullmatch(key))}


def published_values(
    keys: Mapping[int, str], *, versions: Collection[int] = (), current: int | None = None
) -> dict[str, str]:
    """The key folder's secrets for ``keys`` (version -> hex key): ``MASTER_ENCRYPTION_KEY_V<n>`` for each
    of ``versions``, and ``MASTER_ENCRYPTION_KEY`` with ``MASTER_ENCRYPTION_KEY_VERSION`` for ``current``.

    Raises :class:`KeyFolderError` naming a version the keys lack."""
    wanted = set(versions) | ({current} if current is not None else set())
    missing = sorted(wanted - keys.keys())
    if missing:
        raise KeyFolderError(
            f"the keyring lacks version(s) {', '.join(map(str, missing))}: keep masterKeys.v<n> for every "
            "version the key folder publishes"
        )
    values = {versioned_name(v): keys[v].lower() for v in sorted(versions)}
    if current is not None:
        values |= {CURRENT_KEY: keys[current].lower(), CURRENT_VERSION: str(current)}
    return values


def keyring_from_folder(secrets: Mapping[str, str], *, folder: str) -> Keyring:
    """The keyring a key folder publishes; its active version is ``MASTER_ENCRYPTION_KEY``'s.

    ``secrets`` is the folder's listing (other keys are ignored). ``MASTER_ENCRYPTION_KEY`` is required;
    its version is ``MASTER_ENCRYPTION_KEY_VERSION``, else the versioned key equal to it, else 1 when the
    folder has no versioned keys (the seed's layout).
    """
    where = folder.rstrip("/") or ""
    if CURRENT_KEY not in secrets:
        raise KeyFolderError(
            f"{where}/{CURRENT_KEY} is missing: the application reads its master key there; set it to {_FORMAT}"
        )
    keys: dict[int, bytes] = {}
    for name, value in secrets.items():
        if m := _VERSIONED.fullmatch(name):
            keys[int(m.group(1))] = _parse(value, f"{where}/{name}")
    current = _parse(secrets[CURRENT_KEY], f"{where}/{CURRENT_KEY}")
    version = _current_version(secrets, keys, current, where)
    if keys.setdefault(version, current) != current:
        raise KeyFolderError(
            f"{where}/{CURRENT_KEY} differs from {where}/{versioned_name(version)} although "
            f"{CURRENT_VERSION} is {version}: make them the same key, or fix {CURRENT_VERSION}"
        )
    return Keyring(keys, version)


def _parse(value: str, field: str) -> bytes:
    try:
        return parse_master_key(value.strip(), field=field)
    except MasterKeyError as err:
        raise KeyFolderError(str(err)) from None


def _current_version(secrets: Mapping[str, str], keys: Mapping[int, bytes], current: bytes, where: str) -> int:
    raw = secrets.get(CURRENT_VERSION)
    if raw is not None:
        text = raw.strip().lstrip("vV")
        if not (text.isascii() and text.isdigit() and int(text) >= 1):
            raise KeyFolderError(
                f"{where}/{CURRENT_VERSION}: expected a whole number >= 1, the version of {CURRENT_KEY}"
            )
        return int(text)
    matching = [v for v, key in keys.items() if key == current]
    if matching:
        return matching[0]
    if keys:
        raise KeyFolderError(
            f"{where}/{CURRENT_KEY} matches none of the versioned keys "
            f"({', '.join(versioned_name(v) for v in sorted(keys))}) "
            f"and {CURRENT_VERSION} is not set: set {CURRENT_VERSION} to its version"
        )
    return 1
