"""The encryption envelope shared with the application (Strategy B).

AES-256-GCM with a 12-byte random IV and a 32-byte master key given as 64 hex characters. A value is
stored as ``ivHex:ciphertextHex:authTagHex``, byte for byte what the seed's ``encryptSecret`` writes,
so the application's ``decryptSecret`` reads our rows unchanged. Which master key encrypted a value is
kept beside it (the ``key_version`` column), never inside the string, for the same reason.

No error raised here ever contains a key, a plaintext or an envelope: messages name the field or the
part that is wrong and how to fix it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
IV_BYTES = 12
TAG_BYTES = 16

_HEX = re.compile(r"[0-9a-fA-F]*")
_KEY_FIX = "give 32 random bytes as 64 hex characters, e.g. the output of `openssl rand -hex 32`"


class MasterKeyError(ValueError):
    """A master key is malformed. The message names the field, never the value."""


class EnvelopeError(ValueError):
    """An envelope cannot be made (text that is not Unicode) or read (bad format, wrong key, tampering)."""


class KeyringError(ValueError):
    """A keyring is inconsistent, or lacks a key version that stored data still needs."""


def parse_master_key(hex_key: str, *, field: str) -> bytes:
    """Decode a key given as 64 hex characters; ``field`` names it in errors (e.g. ``masterKeys.2``)."""
    if not isinstance(hex_key, str):
        raise MasterKeyError(f"{field}: expected a string of 64 hex characters; {_KEY_FIX}")
    if len(hex_key) != 2 * KEY_BYTES:
        raise MasterKeyError(f"{field}: expected 64 hex characters, got {len(hex_key)}; {_KEY_FIX}")
    if not _HEX.fullmatch(hex_key):
        raise MasterKeyError(f"{field}: contains characters other than 0-9 and a-f; {_KEY_FIX}")
    return bytes.fromhex(hex_key)


# 32 random bytes hold about 28 distinct values; fewer than this is a typed or patterned key, not a random one.
_MIN_DISTINCT_BYTES = 16


def weak_key_problem(key: bytes) -> str | None:
    """Why ``key`` is not a random key (all zero, one byte or a short pattern repeated); None when it may be."""
    if len(set(key)) < _MIN_DISTINCT_BYTES:
        return f"is not random (only {len(set(key))} distinct byte values: all zero, or a pattern repeated)"
    return None


def encrypt(value: str, key: bytes) -> str:
    """Encrypt ``value`` (UTF-8) with a fresh random IV, as ``ivHex:ciphertextHex:authTagHex``."""
    _check_key(key)
    try:
        plain = value.encode("utf-8")
    except UnicodeEncodeError as exc:  # the exception would carry the whole value: drop it
        raise EnvelopeError(f"the value is not valid Unicode text (lone surrogate at {exc.start})") from None
    iv = os.urandom(IV_BYTES)
    sealed = AESGCM(key).encrypt(iv, plain, None)
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    return f"{iv.hex()}:{ciphertext.hex()}:{tag.hex()}"


def decrypt(envelope: str, key: bytes) -> str:
    """Decrypt an ``ivHex:ciphertextHex:authTagHex`` envelope, else raise :class:`EnvelopeError`."""
    _check_key(key)
    iv, ciphertext, tag = _split(envelope)
    try:
        plain = _cipher(key).decrypt(iv, ciphertext + tag, None)
    except InvalidTag:
        raise EnvelopeError(
            "decryption failed: the envelope was encrypted with another key or has been altered"
        ) from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeError("decryption succeeded but the plaintext is not valid UTF-8") from None


def well_formed(envelope: str) -> bool:
    """Whether ``envelope`` has the ``ivHex:ciphertextHex:authTagHex`` shape (it may still not decrypt)."""
    try:
        _split(envelope)
    except EnvelopeError:
        return False
    return True


def _split(envelope: str) -> tuple[bytes, bytes, bytes]:
    parts = envelope.split(":")
    if len(parts) != 3:
        _bad_envelope(f"expected 3 parts separated by ':', got {len(parts)}")
    iv_hex, ct_hex, tag_hex = parts
    for name, text, length in (("iv", iv_hex, 2 * IV_BYTES), ("authTag", tag_hex, 2 * TAG_BYTES)):
        if len(text) != length or not _HEX.fullmatch(text):
            _bad_envelope(f"the {name} part must be {length} hex characters")
    if len(ct_hex) % 2 or not _HEX.fullmatch(ct_hex):
        _bad_envelope("the ciphertext part must be an even number of hex characters")
    return bytes.fromhex(iv_hex), bytes.fromhex(ct_hex), bytes.fromhex(tag_hex)


def _bad_envelope(reason: str) -> NoReturn:
    raise EnvelopeError(f"not an ivHex:ciphertextHex:authTagHex envelope: {reason}")


@functools.lru_cache(maxsize=16)
def _cipher(key: bytes) -> AESGCM:
    """The cipher of ``key``, made once: making it costs as much as one decryption (a reader's hot miss)."""
    return AESGCM(key)


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"a master key must be {KEY_BYTES} bytes, got {len(key)}")


@dataclass(frozen=True, repr=False)
class Keyring:
    """Master keys by version (>= 1) and the version new values are encrypted with.

    Old versions stay in the keyring until :func:`tenant_secrets.store.rotate` has moved every stored
    value off them. A keyring refuses to be pickled, so it can never end up in Pulumi state by accident.
    """

    keys: Mapping[int, bytes] = field(repr=False)
    active: int

    def __post_init__(self) -> None:
        keys = MappingProxyType(dict(self.keys))
        object.__setattr__(self, "keys", keys)
        for version, key in keys.items():
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise KeyringError(f"key versions must be integers >= 1, got {version!r}")
            if len(key) != KEY_BYTES:
                raise MasterKeyError(f"key version {version}: expected {KEY_BYTES} bytes, got {len(key)}")
        if self.active not in keys:
            raise KeyringError(
                f"active key version {self.active} is not in the keyring (versions: {self._versions_text()})"
            )

    @classmethod
    def from_hex(cls, keys: Mapping[str | int, str], active: int, *, field_prefix: str = "masterKeys") -> Keyring:
        """Build from ``{version: hex key}``; errors name ``<field_prefix>.<version>``."""
        parsed: dict[int, bytes] = {}
        for raw_version, hex_key in keys.items():
            field_name = f"{field_prefix}.{raw_version}"
            version = _parse_version(raw_version, field_name)
            if version in parsed:
                raise KeyringError(f"{field_name}: key version {version} is given twice")
            parsed[version] = parse_master_key(hex_key, field=field_name)
        return cls(parsed, active)

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self.keys))

    def key(self, version: int) -> bytes:
        """The key for ``version``; :class:`KeyringError` if the keyring lacks it."""
        try:
            return self.keys[version]
        except KeyError:
            raise KeyringError(
                f"key version {version} is not in the keyring (versions: {self._versions_text()})"
            ) from None

    def encrypt(self, value: str) -> str:
        """Encrypt with the active key (store ``self.active`` beside the result)."""
        return encrypt(value, self.keys[self.active])

    def decrypt(self, envelope: str, version: int) -> str:
        return decrypt(envelope, self.key(version))

    def __repr__(self) -> str:
        return f"Keyring(versions={list(self.versions)}, active={self.active})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Keyring holds master keys and must not be pickled (e.g. into Pulumi state)")

    def _versions_text(self) -> str:
        return ", ".join(map(str, self.versions)) or "none"


def _parse_version(raw: str | int, field_name: str) -> int:
    if isinstance(raw, bool):
        raise KeyringError(f"{field_name}: a key version must be an integer >= 1")
    if isinstance(raw, int):
        version = raw
    elif raw.isascii() and raw.isdigit():
        version = int(raw)
    else:
        raise KeyringError(f"{field_name}: a key version must be an integer >= 1")
    if version < 1:
        raise KeyringError(f"{field_name}: a key version must be an integer >= 1")
    return version
