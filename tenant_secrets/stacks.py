"""The project's stacks as its stack files describe them: Pulumi.<stack>.yaml, their environment and shard.

`tenantctl affected`, `plan --environment`, `verify --environment` and `reshard` find an environment's
stacks here, so the set of stacks is what the repository declares (decision 0035), not a naming rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from tenant_secrets.shards import Shard, ShardError
from tenant_secrets.stack_settings import NAMESPACE

STACK_FILE = re.compile(r"Pulumi\.([A-Za-z0-9_.-]+)\.yaml")


class StackFileError(ValueError):
    """A stack file that cannot say which environment or shard its stack applies; one line, naming it."""


@dataclass(frozen=True, order=True)
class StackInfo:
    """One stack: its name, the environment it applies, and its shard (None: the whole environment)."""

    environment: str
    index: int
    name: str
    shard: Shard | None

    @property
    def owner(self) -> bool:
        return self.shard is None or self.shard.owner


def from_text(name: str, text: str | None) -> StackInfo:
    """A stack from its file's text (None: no file, so the stack's name is its environment, unsharded)."""
    file = f"Pulumi.{name}.yaml"
    try:
        document = yaml.safe_load(text or "") or {}
    except yaml.YAMLError:
        raise StackFileError(f"{file}: not valid YAML") from None
    config = document.get("config") if isinstance(document, dict) else None
    config = config if isinstance(config, dict) else {}
    environment = config.get(f"{NAMESPACE}:environment") or name
    raw = config.get(f"{NAMESPACE}:shard")
    try:
        shard = Shard.parse(str(raw), field=f"{file}: {NAMESPACE}:shard") if raw else None
    except ShardError as err:
        raise StackFileError(str(err)) from None
    return StackInfo(str(environment), shard.index if shard else 1, name, shard)


def discover(root: Path) -> list[StackInfo]:
    """Every stack of the project in ``root``, by environment then shard."""
    found = []
    for path in sorted(root.glob("Pulumi.*.yaml")):
        match = STACK_FILE.fullmatch(path.name)
        if match:
            found.append(from_text(match[1], path.read_text(encoding="utf-8")))
    return sorted(found)


def of_environment(stacks: Iterable[StackInfo], environment: str) -> list[StackInfo]:
    """The stacks of one environment; StackFileError when they do not form one whole set of shards."""
    chosen = sorted(s for s in stacks if s.environment == environment)
    if not chosen:
        raise StackFileError(f"no Pulumi.<stack>.yaml applies environment {environment}")
    check_complete(chosen, environment)
    return chosen


def check_complete(stacks: Sequence[StackInfo], environment: str) -> None:
    """An environment is applied by one unsharded stack, or by shards 1..N of one N, each once."""
    counts = {s.shard.count if s.shard else 1 for s in stacks}
    indexes = sorted(s.index for s in stacks)
    names = ", ".join(s.name for s in stacks)
    if len(counts) != 1 or indexes != list(range(1, counts.pop() + 1)):
        raise StackFileError(
            f"environment {environment}: the stacks {names} do not split it into shards 1..N of one N "
            "(each tenant must be applied by exactly one stack); fix their tenant-secrets:shard settings"
        )
