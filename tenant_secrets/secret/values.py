"""From a declared value source to the value itself, and from a value to its fingerprint.

Generated values are derived, not stored: HKDF over the stack's derivation key with the
environment, owner, key and rotation marker as context. The same inputs give the same value on
every run (so a no-op run writes nothing), a new rotation marker gives a new value, and no extra
state or resource is needed (docs/decisions/0004-value-sources.md).

Fingerprints are what reviewers and the providers' diffs compare: HMAC-SHA256 under a key derived
from the same derivation key, over owner, key and value, truncated to 16 hex chars. Without the
key they cannot be reversed, even for low-entropy values, and equal values in two tenants do not
show equal fingerprints.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tenant_secrets.tenants_file.sources import (
    ConfigSource,
    EnvSource,
    GeneratedSource,
    InfisicalSource,
    LiteralSource,
    ValueSource,
    reference_problem,
)

FINGERPRINT_HEX_CHARS = 16
# ECMAScript trim() whitespace: what Infisical strips from values (see infisical_keeps).
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


class UnresolvedValueError(Exception):
    """A value source could not be resolved; the message names the owner and key, never a value."""


def _hkdf(derivation_key: bytes, info: str, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info.encode()).derive(derivation_key)


def generate(derivation_key: bytes, environment: str, owner: str, key: str, source: GeneratedSource) -> str:
    """The generated value for this place and rotation marker, encoded as the source asks."""
    raw = _hkdf(derivation_key, f"generate\0{environment}\0{owner}\0{key}\0{source.rotation}", source.bytes)
    if source.encoding == "hex":
        return raw.hex()
    if source.encoding == "base64url":
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return base64.b64encode(raw).decode()


def infisical_keeps(value: str) -> bool:
    """Whether Infisical stores ``value`` unchanged (it trims, but keeps one trailing newline)."""
    trimmed = value.strip(JS_WHITESPACE)
    return value in (trimmed, f"{trimmed}\n")


def infisical_alterations(owners: Mapping[str, Mapping[str, str]]) -> list[str]:
    """``owner.KEY`` of every value Infisical would alter, for a check before anything is written.

    The Infisical client refuses them too, but only at the write, after a green preview, and possibly
    after the same tenant's database rows were written: so the program refuses them in the preview."""
    return [
        f"{owner}.{key}"
        for owner, values in owners.items()
        for key, value in values.items()
        if not infisical_keeps(value)
    ]


def empty_values(owner: str, sources: Mapping[str, ValueSource], values: Mapping[str, str]) -> list[str]:
    """``owner.KEY`` of every empty value whose source does not declare ``allow_empty`` (a literal
    ``{value: ""}`` is declared by whoever wrote it). An empty secret is most often one nobody set; a
    store may refuse it, so it fails the preview instead of the write."""

    def allowed(source: ValueSource) -> bool:
        if isinstance(source, ConfigSource | InfisicalSource):
            return source.allow_empty
        return isinstance(source, LiteralSource)

    return [f"{owner}.{key}" for key, value in values.items() if value == "" and not allowed(sources[key])]


def fingerprint_key(derivation_key: bytes) -> bytes:
    return _hkdf(derivation_key, "fingerprint", 32)


def fingerprint(fp_key: bytes, owner: str, key: str, value: str) -> str:
    mac = hmac.new(fp_key, f"{owner}\0{key}\0{value}".encode(), hashlib.sha256)
    return mac.hexdigest()[:FINGERPRINT_HEX_CHARS]


@dataclass(frozen=True)
class Resolver:
    """Resolves value sources for one environment of one stack.

    ``config`` looks up a path inside the stack's structured ``secrets`` config object and
    ``infisical`` reads an existing Infisical secret (environment, path, key); both return None
    when there is nothing there.
    """

    environment: str
    derivation_key: bytes
    config: Callable[[tuple[str, ...]], str | None]
    environ: Mapping[str, str]
    infisical: Callable[[str, str, str], str | None]

    def resolve(self, owner: str, key: str, source: ValueSource) -> str:
        if isinstance(source, LiteralSource):
            value: str | None = source.value
            where = "its literal value"
        elif isinstance(source, GeneratedSource):
            return generate(self.derivation_key, self.environment, owner, key, source)
        elif isinstance(source, ConfigSource):
            value = self.config(source.path)
            where = f"stack config secrets.{'.'.join(source.path)}"
        elif isinstance(source, EnvSource):
            value = self.environ.get(source.var) or None
            where = f"environment variable {source.var}"
        elif isinstance(source, InfisicalSource):
            env = source.environment or self.environment
            value = self.infisical(env, source.path, source.key)
            where = f"Infisical {env}:{source.path}/{source.key}"
        else:  # pragma: no cover - the model admits no other source
            raise TypeError(f"unknown value source {type(source).__name__}")
        if value is None:
            raise UnresolvedValueError(f"{owner}.{key}: no value at {where}")
        if problem := reference_problem(value):
            raise UnresolvedValueError(f"{owner}.{key} ({where}): {problem}")
        return value
