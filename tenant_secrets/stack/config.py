"""A stack's configuration as the program sees it, read outside Pulumi: `pulumi config --json --show-secrets`.

`tenantctl validate --stack` only needs to know that a value is set, so it reads the stack file. A
command that compares values (`tenantctl verify`) needs them decrypted, which only the stack's secrets
provider can do: the CLI does it, with the backend login and secrets provider the stack already uses
(a passphrase, a KMS key), and prints project defaults too. The output stays in this process's memory.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenant_secrets.stack.settings import NAMESPACE
from tenant_secrets.tenants_file.sources import config_value

MAX_ERROR_LINES = 5


class StackConfigUnavailableError(Exception):
    """The stack's config could not be read; the message is the CLI's error, never a value."""


@dataclass(frozen=True, repr=False)
class StackConfig:
    """`tenant-secrets:*` settings as raw strings (objects as JSON), and the structured `secrets` object."""

    values: Mapping[str, str] = field(repr=False)
    secrets: Mapping[str, Any] = field(repr=False)

    def get(self, key: str) -> str | None:
        """The raw string of `tenant-secrets:<key>`, or None when unset (what `StackSettings.load` reads)."""
        return self.values.get(key)

    def secret(self, path: tuple[str, ...]) -> str | None:
        """The value at `secrets.<path>`, as a `{from: config}` source reads it; None when there is none."""
        return config_value(self.secrets, path)

    @classmethod
    def from_cli_json(cls, document: Mapping[str, Any]) -> StackConfig:
        """From the JSON `pulumi config --json --show-secrets` prints."""
        prefix = f"{NAMESPACE}:"
        values: dict[str, str] = {}
        for name, entry in document.items():
            if name.startswith(prefix) and isinstance(entry, dict) and isinstance(entry.get("value"), str):
                values[name.removeprefix(prefix)] = entry["value"]
        raw = values.get("secrets")
        try:
            secrets = json.loads(raw) if raw else {}
        except ValueError:
            secrets = {}
        return cls(values, secrets if isinstance(secrets, dict) else {})

    def __repr__(self) -> str:
        return f"StackConfig(keys={sorted(self.values)})"


def read_stack_config(stack: str, *, config_file: str | None = None, cwd: str | Path | None = None) -> StackConfig:
    """Run `pulumi config --json --show-secrets` for ``stack``; StackConfigUnavailableError if it fails."""
    command = ["pulumi", "config", "--json", "--show-secrets", "--stack", stack]
    if config_file:
        command += ["--config-file", config_file]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    except OSError as err:
        raise StackConfigUnavailableError(f"cannot run pulumi: {err.strerror}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()][:MAX_ERROR_LINES]
        reason = " ".join(lines) or f"pulumi config exited with {done.returncode}"
        raise StackConfigUnavailableError(f"cannot read the config of stack {stack}: {reason}")
    try:
        document = json.loads(done.stdout)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise StackConfigUnavailableError(f"pulumi config printed no JSON object for stack {stack}")
    return StackConfig.from_cli_json(document)
