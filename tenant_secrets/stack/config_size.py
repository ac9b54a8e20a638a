"""Does the stack's config fit in the one environment variable the engine hands the program?

The Python language host starts the program with the whole stack config, decrypted, as JSON in one
environment variable, ``PULUMI_CONFIG`` (structured settings such as ``tenant-secrets:secrets`` as JSON
text inside it). Linux caps a single environment string at ``MAX_ARG_STRLEN``, 128 KiB, so past it
every `pulumi preview` and `up` fails before the program starts, with
``could not run Python: fork/exec ...: argument list too long`` and no key named (issue 26, item 11).
The cap is on the sum of all values, not on one: three values of 60 KiB fail as one of 140 KiB does.
Nothing is written then, but nothing can be until the config shrinks.

The stack file holds values encrypted, so their plaintext sizes are read from the ciphertext: exact
for ``v1:<nonce>:<ciphertext>`` (AES-GCM: the plaintext plus a 16-byte tag), the format of the
passphrase and the cloud (KMS, Vault) secrets providers alike; three quarters of the text otherwise.
Values are taken as needing no JSON escaping, so with that format the size found is a lower bound, and
a refusal is never a false one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenant_secrets.stack.settings import NAMESPACE
from tenant_secrets.tenants_file.model import Loc, dotted

VARIABLE = "PULUMI_CONFIG"
PREFIX = f"{NAMESPACE}:"
# MAX_ARG_STRLEN (32 pages of 4 KiB): the whole "NAME=value" string, with its terminating NUL
LIMIT = 32 * 4096
_OVERHEAD = len(VARIABLE) + len("=") + 1
_GCM_TAG = 16
SHOWN = 2  # the largest values named in a message
WARN_AT = 0.75  # the program warns when the config takes more than this share of the limit


@dataclass(frozen=True)
class ConfigSize:
    """How many bytes the config takes in ``PULUMI_CONFIG`` (a lower bound), and its values' sizes."""

    total: int
    values: tuple[tuple[Loc, int], ...]  # (where in the stack file, plaintext bytes), largest first

    @property
    def over(self) -> bool:
        """Whether the engine cannot start the program with this config."""
        return self.total > LIMIT

    def largest(self) -> str:
        """The largest values, for a message: `secrets.acme.CERT (140 KiB), derivationKey (64 B)`."""
        return ", ".join(f"{dotted(loc).removeprefix(PREFIX)} ({kib(size)})" for loc, size in self.values[:SHOWN])


def kib(size: int) -> str:
    """A size for a message: bytes under 1 KiB, else KiB (one decimal under 10)."""
    if size < 1024:
        return f"{size} B"
    return f"{size / 1024:.0f} KiB" if size >= 10 * 1024 else f"{size / 1024:.1f} KiB"


def plaintext_size(secure: str) -> int:
    """The size of the value a ``secure:`` ciphertext of the stack file decrypts to (see the module)."""
    version, _, rest = secure.partition(":")
    _, _, ciphertext = rest.partition(":")
    if version == "v1" and ciphertext:
        try:
            return max(len(base64.b64decode(ciphertext, validate=True)) - _GCM_TAG, 0)
        except (binascii.Error, ValueError):
            pass
    return len(secure) * 3 // 4


def refusal(size: ConfigSize) -> tuple[str, str]:
    """What `tenantctl validate --stack` says of a config over the limit: the message and the hint."""
    return (
        f"the config needs at least {kib(size.total)} in {VARIABLE}, over the {kib(LIMIT)} Linux allows one "
        f"environment variable: every preview and up fails (`argument list too long`); largest: {size.largest()}",
        "the engine starts the program with the whole config in that variable; keep large values out of stack "
        "config (in the tenant's Infisical folder, read with {from: infisical}), or shrink them",
    )


def stack_file_size(config: Mapping[str, Any]) -> ConfigSize:
    """The size of ``PULUMI_CONFIG`` for a stack file's ``config`` map, each secret at its plaintext size."""
    sizes: list[tuple[Loc, int]] = []
    flat: dict[str, str] = {}
    for key, value in config.items():
        if (isinstance(value, dict) and "secure" not in value) or isinstance(value, list):
            flat[str(key)] = json.dumps(_placeholders(value, (str(key),), sizes), separators=(",", ":"))
        else:
            flat[str(key)] = _placeholders(value, (str(key),), sizes)
    total = len(json.dumps(flat, separators=(",", ":"), ensure_ascii=False).encode()) + _OVERHEAD
    return ConfigSize(total, tuple(sorted(sizes, key=lambda item: -item[1])))


def environment_size(environ: Mapping[str, str]) -> int:
    """The bytes ``PULUMI_CONFIG`` takes in this process's environment (0 when it is not set)."""
    value = environ.get(VARIABLE)
    return 0 if value is None else len(value.encode()) + _OVERHEAD


def _placeholders(node: Any, loc: Loc, sizes: list[tuple[Loc, int]]) -> Any:
    """``node`` with each leaf a string of its plaintext size (its bytes recorded in ``sizes``)."""
    if isinstance(node, dict) and "secure" in node:
        size = plaintext_size(str(node["secure"]))
    elif isinstance(node, dict):
        return {str(k): _placeholders(v, (*loc, str(k)), sizes) for k, v in node.items()}
    elif isinstance(node, list):
        return [_placeholders(v, (*loc, str(i)), sizes) for i, v in enumerate(node)]
    else:
        size = len(_scalar(node).encode())
    sizes.append((loc, size))
    return "x" * size


def _scalar(value: Any) -> str:
    """A plain value as the engine passes it: YAML's true as "true", numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
