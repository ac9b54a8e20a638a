"""Values resolved at write time, by the provider, from the source descriptors the state records.

The state holds per key a source descriptor and a fingerprint, never the value
(docs/decisions/0034-write-only-values.md). A provider about to write resolves every value of the
owner from the same sources the program read (the stack's config, the environment of the run, the
derivation key, Infisical, tenants.yaml for a literal) and writes nothing of the owner unless each
value's fingerprint is the one the plan was made with: what a reviewer approved is what is written.
Before it reads anything it checks each source against the stack's settings again (what the program
checked: tenant_secrets/tenants_file/source_policy.py), so a source a state or a bypassed check
carries is refused rather than read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenant_secrets.engine.reconcile import stale_keys
from tenant_secrets.secret.values import Resolver, UnresolvedValueError
from tenant_secrets.tenants_file.names import few
from tenant_secrets.tenants_file.source_policy import SourcePolicy, refused_sources
from tenant_secrets.tenants_file.sources import LiteralSource, TenantsFileLiteral, config_value, described, where


class StaleValueError(Exception):
    """A value resolved at write time is not the one the plan was made with; the message names the owner,
    the keys and their sources, never a value."""


def config_lookup(secrets_json: str | None) -> Callable[[tuple[str, ...]], str | None]:
    """A lookup of paths inside the stack's structured ``secrets`` config object, as the engine hands it to
    a provider (JSON text, decrypted): None where there is nothing, or an object or list."""
    tree: Any = json.loads(secrets_json) if secrets_json else {}
    return lambda path: config_value(tree, path)


@dataclass
class TenantsFileLiterals:
    """The literals of tenants.yaml in one environment (and region), read once per process, on first use."""

    path: Path
    environment: str
    region: str | None = None
    _literals: dict[tuple[str, str], str] | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __call__(self, owner: str, key: str) -> str | None:
        with self._lock:
            if self._literals is None:
                self._literals = self._load()
            return self._literals.get((owner, key))

    def _load(self) -> dict[tuple[str, str], str]:
        # imported here: the pydantic model costs ~0.1 s, and only a write of a literal needs it
        from tenant_secrets.tenants_file.loader import load_tenants_file  # noqa: PLC0415
        from tenant_secrets.tenants_file.model import plan_environment  # noqa: PLC0415

        plan = plan_environment(load_tenants_file(self.path), self.environment, self.region)
        owners = [(t.subdomain, t.secrets) for t in plan.tenants] + [(f.name, f.secrets) for f in plan.platform]
        return {
            (owner, key): source.value
            for owner, secrets in owners
            for key, source in secrets.items()
            if isinstance(source, LiteralSource)
        }


@dataclass(frozen=True)
class WriteTimeValues:
    """Resolves an owner's values from their descriptors and checks them against the plan's fingerprints."""

    resolver: Resolver
    literals: Callable[[str, str], str | None]
    fingerprint_key: bytes
    policy: SourcePolicy

    def resolve(
        self, owner: str, sources: Mapping[str, Mapping[str, Any]], declared: Mapping[str, str], *, home: str
    ) -> dict[str, str]:
        """Every declared key's value; raises StaleValueError, before anything is written, when one differs
        from what the plan showed, and UnresolvedValueError when one cannot be found any more or when the
        stack's policy refuses a source (``home`` is the owner's own Infisical folder), before any is read."""
        found = {key: described(descriptor) for key, descriptor in sources.items()}
        if refused := refused_sources(self.policy, home, found):
            raise UnresolvedValueError(
                f"{owner}: {few(refused, sep='; ')}; nothing of this owner was read or written "
                "(docs/decisions/0041-value-sources-are-allow-listed.md)"
            )
        values: dict[str, str] = {}
        for key, source in sorted(found.items()):
            if isinstance(source, TenantsFileLiteral):
                literal = self.literals(owner, key)
                if literal is None:
                    raise UnresolvedValueError(f"{owner}.{key}: tenants.yaml no longer declares a literal value for it")
                values[key] = self.resolver.resolve(owner, key, LiteralSource(literal))
            else:
                values[key] = self.resolver.resolve(owner, key, source)
        stale = stale_keys(owner, declared, values, self.fingerprint_key)
        if stale:
            origins = few(f"{key} ({where(sources[key])})" if key in sources else key for key in stale)
            raise StaleValueError(
                f"{owner}: {origins} would not be what the plan showed (the value at its source changed since the "
                "preview); run the preview again; nothing of this owner was written"
            )
        return values
