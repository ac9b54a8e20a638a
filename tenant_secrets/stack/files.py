"""The project's stacks as its stack files describe them: Pulumi.<stack>.yaml, their environment, region and shard.

`tenantctl affected`, `plan --environment`, `verify --environment` and `reshard` find an environment's
stacks here, so the set of stacks is what the repository declares (decision 0035), not a naming rule.

:class:`StackFile` is the one reading of a stack file, with positions: what `tenantctl validate --stack`
checks (a secret in the clear, the settings a run needs, a config too large for the engine to hand the
program: `config_size`) and what the discovery above reads (environment, region, shard). Values stay encrypted
here; a command that needs them decrypted asks the CLI (`stack/config.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenant_secrets.engine.buckets import MANY_TENANTS, TENANTS_PER_BUCKET, bucket_count
from tenant_secrets.secret.keyfolder import DEFAULT_FOLDER
from tenant_secrets.stack import config_size
from tenant_secrets.stack.settings import MASTER_KEY_SETTING, NAMESPACE
from tenant_secrets.stack.shards import SETTING as SHARD_SETTING
from tenant_secrets.stack.shards import Shard, ShardError
from tenant_secrets.tenants_file.loader import read_yaml
from tenant_secrets.tenants_file.model import EnvironmentPlan, Issue, Loc, Positions, TenantsFileError, dotted, issue_at
from tenant_secrets.tenants_file.names import region_problem
from tenant_secrets.tenants_file.periods import period_problem
from tenant_secrets.tenants_file.source_policy import ENV_ALLOW, SHARED_FOLDERS, SourcePolicy

SECRETS_KEY = f"{NAMESPACE}:secrets"
ENVIRONMENT_KEY = f"{NAMESPACE}:environment"
MASTER_KEY_PERIOD_KEY = f"{NAMESPACE}:{MASTER_KEY_SETTING}"
SHARD_KEY = f"{NAMESPACE}:{SHARD_SETTING}"
REGION_KEY = f"{NAMESPACE}:region"
STACK_FILE = re.compile(r"Pulumi\.(?P<stack>[A-Za-z0-9][A-Za-z0-9_.-]*)\.yaml")


class StackFileError(ValueError):
    """A stack file that cannot say which environment or shard its stack applies; one line, naming it."""


@dataclass(frozen=True, order=True)
class StackInfo:
    """One stack: its name, the environment it applies, and its shard (None: the whole environment, or the
    whole region when ``region`` is set: docs/decisions/0054-regions.md)."""

    environment: str
    index: int
    name: str
    shard: Shard | None
    region: str | None = None

    @property
    def owner(self) -> bool:
        return self.shard is None or self.shard.owner


def from_text(name: str, text: str | None) -> StackInfo:
    """A stack from its file's text (None: no file, so the stack's name is its environment, unsharded)."""
    file = f"Pulumi.{name}.yaml"
    try:
        stack_file = StackFile.parse(text or "", file)
    except TenantsFileError:
        raise StackFileError(f"{file}: not valid YAML") from None
    raw = stack_file.config.get(SHARD_KEY)
    try:
        shard = Shard.parse(str(raw), field=f"{file}: {SHARD_KEY}") if raw else None
    except ShardError as err:
        raise StackFileError(str(err)) from None
    region, problems = stack_file.region()
    if problems:
        raise StackFileError(f"{file}: {REGION_KEY}: {problems[0].message}")
    return StackInfo(stack_file.environment(name), shard.index if shard else 1, name, shard, region)


def discover(root: Path) -> list[StackInfo]:
    """Every stack of the project in ``root``, by environment then shard."""
    found = []
    for path in sorted(root.glob("Pulumi.*.yaml")):
        match = STACK_FILE.fullmatch(path.name)
        if match:
            found.append(from_text(match[1], path.read_text(encoding="utf-8")))
    return sorted(found)


def of_environment(stacks: Iterable[StackInfo], environment: str) -> list[StackInfo]:
    """The stacks of one environment, every region's; StackFileError when those of one region (or of the
    environment, without regions) do not form one whole set of shards."""
    chosen = sorted(s for s in stacks if s.environment == environment)
    if not chosen:
        raise StackFileError(f"no Pulumi.<stack>.yaml applies environment {environment}")
    regions = {s.region for s in chosen}
    if None in regions and len(regions) > 1:
        plain = ", ".join(s.name for s in chosen if s.region is None)
        raise StackFileError(
            f"environment {environment}: the stacks {plain} set no {REGION_KEY} while others do; in a project with "
            "regions every stack writes one region's stores (docs/decisions/0054-regions.md)"
        )
    named: list[str | None] = [r for r in sorted(r for r in regions if r is not None)]
    for region in named or [None]:
        where = f"{environment}, region {region}" if region else environment
        check_complete([s for s in chosen if s.region == region], where)
    return chosen


def of_region(stacks: Iterable[StackInfo], environment: str, region: str | None, hint: str = "") -> list[StackInfo]:
    """The stacks of one environment in ``region`` (None: an environment without regions), complete or not (a
    reshard sees two sets of shards). StackFileError, one line, when the environment is in regions and no
    region is given (``hint`` says what else the command needs), when it has no stack of the region given, or
    when it has no regions and one is given."""
    chosen = sorted(s for s in stacks if s.environment == environment)
    regions = sorted({s.region for s in chosen if s.region is not None})
    if region is None and regions:
        raise StackFileError(f"environment {environment} is in regions ({', '.join(regions)}): pass --region{hint}")
    if region is not None and region not in regions:
        found = f"its regions are {', '.join(regions)}" if regions else "it has no regions: leave out --region"
        raise StackFileError(f"environment {environment} has no stack of region {region}: {found}")
    return [s for s in chosen if s.region == region]


def check_complete(stacks: Sequence[StackInfo], environment: str) -> None:
    """An environment (or one region of it) is applied by one unsharded stack, or by shards 1..N of one N,
    each once."""
    counts = {s.shard.count if s.shard else 1 for s in stacks}
    indexes = sorted(s.index for s in stacks)
    names = ", ".join(s.name for s in stacks)
    if len(counts) != 1 or indexes != list(range(1, counts.pop() + 1)):
        raise StackFileError(
            f"environment {environment}: the stacks {names} do not split it into shards 1..N of one N "
            "(each tenant must be applied by exactly one stack); fix their tenant-secrets:shard settings"
        )


@dataclass(frozen=True)
class StackFile:
    """The config map of a stack file, Pulumi.<stack>.yaml, with positions for messages."""

    path: str
    config: dict[str, Any]
    issues: tuple[Issue, ...]  # secrets stored in the clear, a master key period that is not one
    positions: Positions  # where each setting is, for settings_issues

    @classmethod
    def read(cls, path: Path) -> StackFile:
        """Raises TenantsFileError when the file is missing or not valid YAML."""
        file = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            hint = "run from the project directory, or pass --config-file"
            message = f"cannot read the stack file: {err.strerror}"
            raise TenantsFileError([Issue(file, 1, 1, "(file)", message, hint)]) from None
        return cls.parse(text, file)

    @classmethod
    def parse(cls, text: str, file: str) -> StackFile:
        """The stack file's settings from its text; raises TenantsFileError when it is not valid YAML."""
        document = read_yaml(text, file)
        data = document.data if isinstance(document.data, dict) else {}
        config: dict[str, Any] = data["config"] if isinstance(data.get("config"), dict) else {}
        cleartext = [
            issue_at(
                file,
                document.positions,
                ("config", SECRETS_KEY, *loc),
                "a secret is stored in the clear in the stack file",
                f"set it again with `pulumi config set --secret --path 'secrets.{dotted(loc)}'`",
            )
            for loc in _cleartext_leaves(config.get(SECRETS_KEY), ())
        ]
        period = config.get(MASTER_KEY_PERIOD_KEY)
        problem = None if period in (None, "off") else period_problem(str(period))
        if problem is not None:
            where = ("config", MASTER_KEY_PERIOD_KEY)
            cleartext.append(issue_at(file, document.positions, where, problem.message, f"{problem.hint}, or off"))
        size = config_size.stack_file_size(config)
        if size.over:
            message, hint = config_size.refusal(size)
            cleartext.append(issue_at(file, document.positions, ("config", *size.values[0][0]), message, hint))
        return cls(file, config, (*document.issues, *cleartext), document.positions)

    def environment(self, stack: str) -> str:
        """The stack's environment: tenant-secrets:environment, else the stack's name."""
        value = self.config.get(ENVIRONMENT_KEY)
        return str(value) if value else stack

    def shard(self) -> tuple[Shard | None, list[Issue]]:
        """The stack's shard (None: the whole environment), or the issue with its setting."""
        raw = self.config.get(SHARD_KEY)
        try:
            return (Shard.parse(str(raw)) if raw else None), []
        except ShardError as err:
            hint = 'write it as k/N, e.g. "3/16"; `tenantctl reshard` changes it'
            return None, [issue_at(self.path, self.positions, ("config", SHARD_KEY), str(err), hint, at_key=True)]

    def region(self) -> tuple[str | None, list[Issue]]:
        """The stack's region (None: a project without regions), or the issue with its setting."""
        raw = self.config.get(REGION_KEY)
        if raw is None or raw == "":
            return None, []
        problem = region_problem(str(raw))
        if problem is None:
            return str(raw), []
        return None, [issue_at(self.path, self.positions, ("config", REGION_KEY), problem.message, problem.hint)]

    def region_setting(self, issue: Issue) -> Issue:
        """``issue`` (the stack's region does not match tenants.yaml) at the stack file's region setting, when
        the file sets one; as it is otherwise (tenants.yaml's `regions`)."""
        if REGION_KEY not in self.config:
            return issue
        return issue_at(self.path, self.positions, ("config", REGION_KEY), issue.message, issue.hint)

    def settings_issues(self, plan: EnvironmentPlan, stack: str) -> list[Issue]:
        """The stack settings the run needs, as far as the file shows them (values stay encrypted): the
        derivation key, and with a database store and masterKeySource stack, the active master key."""
        issues: list[Issue] = []
        flag = f" --stack {stack}"

        def issue(key: str, message: str, hint: str) -> None:
            issues.append(issue_at(self.path, self.positions, ("config", key), message, hint, at_key=True))

        if f"{NAMESPACE}:derivationKey" not in self.config:
            issue(
                f"{NAMESPACE}:derivationKey",
                "tenant-secrets:derivationKey is not set: fingerprints and generated values derive from it",
                f'set it with `pulumi config set --secret {NAMESPACE}:derivationKey "$(openssl rand -hex 32)"{flag}`',
            )
        database = any("database" in t.storage for t in plan.tenants)
        if database and str(self.config.get(f"{NAMESPACE}:masterKeySource", "stack")) == "stack":
            active = str(self.config.get(f"{NAMESPACE}:activeKeyVersion", 1))
            keys = self.config.get(f"{NAMESPACE}:masterKeys")
            if not isinstance(keys, dict) or f"v{active}" not in keys:
                issue(
                    f"{NAMESPACE}:activeKeyVersion",
                    f"tenant-secrets:activeKeyVersion is {active}, but masterKeys has no v{active} "
                    "(tenants with database storage need it)",
                    f"set it with `pulumi config set --secret --path '{NAMESPACE}:masterKeys.v{active}' "
                    f'"$(openssl rand -hex 32)"{flag}`, or set activeKeyVersion to a version that masterKeys has',
                )
        return issues

    def buckets_note(self, plan: EnvironmentPlan, stack: str) -> str | None:
        """One line for a stack of more than MANY_TENANTS tenants with one resource per tenant and store (no
        `buckets` setting: a stack made before buckets were the default), naming the move; None otherwise."""
        tenants = len(plan.tenants)
        if f"{NAMESPACE}:buckets" in self.config or tenants <= MANY_TENANTS:
            return None
        return (
            f"note: stack {stack} declares one resource per tenant and store for its {tenants:,} tenants; "
            f"`pulumi config set {NAMESPACE}:buckets {bucket_count(tenants)} --stack {stack}` "
            f"({TENANTS_PER_BUCKET} tenants per resource) and one `pulumi up`, which writes nothing, move it to "
            'buckets, 9 to 10x faster to preview at 1,000 tenants (docs/guides/operations.md, "Buckets")'
        )

    def retains_on_delete(self) -> bool:
        """`retainOnDelete` as the program reads it: anything but an explicit false retains."""
        return str(self.config.get(f"{NAMESPACE}:retainOnDelete", "true")) not in ("false", "False")

    def source_policy(self) -> tuple[SourcePolicy, list[Issue]]:
        """What value sources may read on this stack (envAllow, sharedFolders), and an issue at each entry
        that is refused."""
        key_folder = "/" + str(self.config.get(f"{NAMESPACE}:keyFolder") or DEFAULT_FOLDER).strip("/")
        policy, problems = SourcePolicy.parse(
            self.config.get(f"{NAMESPACE}:{ENV_ALLOW}"),
            self.config.get(f"{NAMESPACE}:{SHARED_FOLDERS}"),
            key_folder=key_folder,
        )
        issues = []
        for problem in problems:
            loc: Loc = ("config", f"{NAMESPACE}:{problem.setting}")
            loc = loc if problem.index is None else (*loc, problem.index)
            issues.append(issue_at(self.path, self.positions, loc, problem.message, at_key=problem.index is None))
        return policy, issues

    def has_secret(self, path: tuple[str, ...]) -> bool:
        """Whether secrets.<path> holds a value (a `{secure: ...}` leaf or a plain one)."""
        node: Any = self.config.get(SECRETS_KEY)
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return node is not None and not isinstance(node, list) and (not isinstance(node, dict) or "secure" in node)


def _cleartext_leaves(node: Any, loc: Loc) -> list[Loc]:
    if isinstance(node, dict) and "secure" not in node:
        return [leaf for key, value in node.items() for leaf in _cleartext_leaves(value, (*loc, key))]
    if node is None or isinstance(node, dict):
        return []
    return [loc]
