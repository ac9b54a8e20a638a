"""The three Pulumi projects the benchmark drives, each in its own temp folder and file backend.

- `ours`: this project (Pulumi.yaml, __main__.py, components/ and tenant_secrets/ linked, as the
  e2e tests do), over the synthetic tenants.yaml.
- `floor`: bench/floor, the same resource graph with providers that do no work.
- `naive`: bench/naive, one resource per secret over the same tenants.yaml and values.
- `floor-b<B>` (`--buckets`, issue 29): the floor with B tenants per resource on average, in a fixed
  set of buckets per stack and store (bench/buckets.py); `floor-b1` is one resource per tenant and
  store of the same shape; `floor-b<B>-packed` carries each tenant's entry as one JSON string, as the
  product does (tenant_secrets/engine/buckets.py), instead of maps.
- `ours-b<B>` (`--buckets <B>-ours`): `ours` with the stack setting `tenant-secrets:buckets`, B tenants
  per resource on average (decision 0053).

Each design knows how to lay out its project, configure its stack, write its input for a size (and
for the "change one value" edit), and make the master key rotation.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pulumi import automation as auto

from bench import tenants
from bench.buckets import bucket_count
from bench.floor import plugin
from dev.project import lay_out
from tenant_secrets import store

REPO = Path(__file__).resolve().parent.parent
PASSPHRASE = "bench-passphrase-not-a-secret"  # noqa: S105 - a fake, for a throwaway stack


@dataclass
class Keys:
    """Fake master keys and derivation key, fresh per benchmark run."""

    v1: str = field(default_factory=lambda: secrets.token_hex(32))
    v2: str = field(default_factory=lambda: secrets.token_hex(32))
    derivation: str = field(default_factory=lambda: secrets.token_hex(32))


@dataclass
class Design:
    """A Pulumi project under `root`, one stack `dev` in a file backend under `root`."""

    name: str
    root: Path
    env: dict[str, str]
    keys: Keys

    project_name = ""

    @property
    def work_dir(self) -> Path:
        return self.root / "project"

    @property
    def backend(self) -> Path:
        return self.root / "backend"

    def state_file(self) -> Path:
        return self.backend / ".pulumi" / "stacks" / self.project_name / "dev.json"

    def create(self) -> auto.Stack:
        self.work_dir.mkdir(parents=True)
        self.backend.mkdir(parents=True)
        self.layout()
        env = {
            **self.env,
            "PULUMI_BACKEND_URL": f"file://{self.backend}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        }
        stack = auto.create_or_select_stack(
            stack_name="dev",
            work_dir=str(self.work_dir),
            opts=auto.LocalWorkspaceOptions(env_vars=env, secrets_provider="passphrase"),
        )
        self.configure(stack)
        return stack

    def _pulumi_yaml(self, name: str, description: str) -> None:
        settings = {
            "name": name,
            "description": description,
            "runtime": {"name": "python", "options": {"virtualenv": str(REPO / ".venv")}},
        }
        (self.work_dir / "Pulumi.yaml").write_text(yaml.safe_dump(settings))

    def _serve_plugin(self, package: str, module: str) -> None:
        """Have the engine start `python -m <module>` as the provider plugin `package`, with no registry and no
        install step: a launcher `pulumi-resource-<package>` in the project's `plugins/` folder, which Pulumi.yaml
        names (`plugins: providers:`) and the engine looks in first (decision 0038)."""
        settings = yaml.safe_load((self.work_dir / "Pulumi.yaml").read_text())
        plugins = self.work_dir / "plugins"
        plugins.mkdir(exist_ok=True)
        launcher = plugins / f"pulumi-resource-{package}"
        launcher.write_text(f'#!/bin/sh\nexec "{REPO}/.venv/bin/python" -m {module} "$@"\n')
        launcher.chmod(0o755)
        providers = settings.setdefault("plugins", {}).setdefault("providers", [])
        providers.append({"name": package, "path": "plugins"})
        (self.work_dir / "Pulumi.yaml").write_text(yaml.safe_dump(settings))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A `pulumi` command on the design's stack from the CLI, as the Automation API runs them: what a reviewer
        types, and the only way to some of its output (`preview --json`)."""
        env = {
            **os.environ,
            **self.env,
            "PULUMI_BACKEND_URL": f"file://{self.backend}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        }
        command = ["pulumi", *args, "--stack", "dev", "--non-interactive", "--color", "never"]
        return subprocess.run(command, cwd=self.work_dir, env=env, capture_output=True, text=True, check=False)

    # --- per design ------------------------------------------------------------------------------

    def layout(self) -> None:
        raise NotImplementedError

    def configure(self, stack: auto.Stack) -> None:
        raise NotImplementedError

    def write_input(self, count: int, *, changed: bool) -> None:
        (self.work_dir / "tenants.yaml").write_text(tenants.tenants_yaml(count, changed=changed))

    def rotate(self, stack: auto.Stack) -> None:
        raise NotImplementedError

    def prepare_database(self, dsn: str) -> None:
        """Anything the design needs in its database before the first `up` (not timed)."""


class Ours(Design):
    project_name = "tenant-secrets"

    def layout(self) -> None:
        lay_out(self.work_dir)

    def configure(self, stack: auto.Stack) -> None:
        ns = "tenant-secrets"
        stack.set_all_config(
            {
                f"{ns}:environment": auto.ConfigValue(tenants.ENVIRONMENT),
                f"{ns}:createCompanies": auto.ConfigValue("true"),
                f"{ns}:retainOnDelete": auto.ConfigValue("false"),
                f"{ns}:derivationKey": auto.ConfigValue(self.keys.derivation, secret=True),
            }
        )
        stack.set_config(f"{ns}:masterKeys.v1", auto.ConfigValue(self.keys.v1, secret=True), path=True)
        # the tenants' `{from: env}` sources read BENCH_T<n>_...: allowed as a prefix (decision 0041)
        stack.set_config(f"{ns}:envAllow[0]", auto.ConfigValue(f"{tenants.ENV_PREFIX}*"), path=True)

    def rotate(self, stack: auto.Stack) -> None:
        ns = "tenant-secrets"
        stack.set_config(f"{ns}:masterKeys.v2", auto.ConfigValue(self.keys.v2, secret=True), path=True)
        stack.set_config(f"{ns}:activeKeyVersion", auto.ConfigValue("2"))


class BucketedOurs(Ours):
    """`ours` with B tenants per resource (the design's name, `ours-b<B>`): the stack setting
    `tenant-secrets:buckets` is set once, at the first input written (`ceil(tenants / B)`), and kept for every
    later step, as BucketedFloor keeps its count and as a stack's setting is meant to be kept (decision 0053):
    the added tenant joins an existing bucket."""

    _stack: auto.Stack | None = None
    _buckets: int | None = None

    @property
    def per_bucket(self) -> int:
        return bucket_design(self.name) or 1

    def configure(self, stack: auto.Stack) -> None:
        super().configure(stack)
        self._stack = stack

    def write_input(self, count: int, *, changed: bool) -> None:
        if self._buckets is None:
            if self._stack is None:
                raise RuntimeError(f"{self.name}: the stack is not created yet, so its buckets cannot be set")
            self._buckets = bucket_count(count, self.per_bucket)
            self._stack.set_config("tenant-secrets:buckets", auto.ConfigValue(str(self._buckets)))
        super().write_input(count, changed=changed)


class Naive(Design):
    project_name = "bench-naive"

    def layout(self) -> None:
        self._pulumi_yaml(self.project_name, "Benchmark baseline: one dynamic resource per secret")
        (self.work_dir / "__main__.py").write_text(
            "import os\n\nimport pulumi\n\nfrom bench.naive.program import main, run\n\n"
            "if os.environ.get('BENCH_NAIVE_ENTRY') == 'async':\n    pulumi.run(main)\nelse:\n    run()\n"
        )

    def configure(self, stack: auto.Stack) -> None:
        ns = self.project_name
        stack.set_all_config(
            {
                f"{ns}:environment": auto.ConfigValue(tenants.ENVIRONMENT),
                f"{ns}:derivationKey": auto.ConfigValue(self.keys.derivation, secret=True),
            }
        )
        stack.set_config(f"{ns}:masterKeys.v1", auto.ConfigValue(self.keys.v1, secret=True), path=True)

    def rotate(self, stack: auto.Stack) -> None:
        ns = self.project_name
        stack.set_config(f"{ns}:masterKeys.v2", auto.ConfigValue(self.keys.v2, secret=True), path=True)
        stack.set_config(f"{ns}:activeKeyVersion", auto.ConfigValue("2"))

    def prepare_database(self, dsn: str) -> None:
        """The same schema the project migrates to (the naive design has no migration resource)."""
        with store.connect(dsn) as conn:
            store.migrate(conn, store.StoreSettings(create_companies_table=True))


class Floor(Design):
    project_name = "bench-floor"
    _spec: dict[str, object]

    def layout(self) -> None:
        self._pulumi_yaml(self.project_name, "Benchmark baseline: the engine's floor")
        (self.work_dir / "__main__.py").write_text(
            "import pulumi\n\nfrom bench.floor.program import main\n\npulumi.run(main)\n"
        )
        self._spec = {"tenants": 0, "changed": False, "keyring": {"1": self.keys.v1}, "key_version": 1}

    def configure(self, stack: auto.Stack) -> None:
        """Names the spec file."""
        stack.set_config(f"{self.project_name}:spec", auto.ConfigValue("floor.json"))

    def write_input(self, count: int, *, changed: bool) -> None:
        self._spec.update(tenants=count, changed=changed)
        self._write_spec()

    def rotate(self, stack: auto.Stack) -> None:
        self._spec.update(keyring={"1": self.keys.v1, "2": self.keys.v2}, key_version=2)
        self._write_spec()

    def _write_spec(self) -> None:
        (self.work_dir / "floor.json").write_text(json.dumps(self._spec))


class BucketedFloor(Floor):
    """The floor with `per_bucket` tenants per resource (the design's name, `floor-b<B>`).

    The stack's bucket count is set once, at the first input written (`ceil(tenants / B)`), and kept
    for every later step, as a stack setting would be: the added tenant joins an existing bucket. The
    rotation step changes every tenant's fingerprint (the worst case: every bucket updated).
    """

    def layout(self) -> None:
        super().layout()
        self._spec["buckets"] = "unset"
        variant = self.name.removesuffix(PLUGIN)
        self._spec["packed"] = variant.endswith(PACKED)
        self._spec["plugin"] = variant != self.name
        if self._spec["plugin"]:
            self._serve_plugin(plugin.PACKAGE, plugin.__name__)

    @property
    def per_bucket(self) -> int:
        return bucket_design(self.name) or 1

    def write_input(self, count: int, *, changed: bool) -> None:
        if self._spec["buckets"] == "unset":
            self._spec["buckets"] = None if self.per_bucket == 1 else bucket_count(count, self.per_bucket)
        super().write_input(count, changed=changed)

    def rotate(self, stack: auto.Stack) -> None:
        self._spec["fingerprint_salt"] = "-rotated"
        super().rotate(stack)


DESIGNS: dict[str, type[Design]] = {"floor": Floor, "ours": Ours, "naive": Naive}


PACKED = "-packed"
PLUGIN = "-plugin"
FLOOR_BUCKETS = "floor-b"
OURS_BUCKETS = "ours-b"


def bucket_design(name: str) -> int | None:
    """B for a design named `floor-b<B>` (with `-packed`, `-plugin` or `-packed-plugin` after it) or `ours-b<B>`,
    B at least 1; else None."""
    if name.startswith(OURS_BUCKETS):
        rest = name[len(OURS_BUCKETS) :]
    else:
        name = name.removesuffix(PLUGIN).removesuffix(PACKED)
        if not name.startswith(FLOOR_BUCKETS):
            return None
        rest = name[len(FLOOR_BUCKETS) :]
    return int(rest) if rest.isascii() and rest.isdigit() and int(rest) >= 1 else None


def bucket_design_name(value: str) -> str:
    """The design an item of `--buckets` means: `64` and `64-packed` the floor's (`floor-b64`, `floor-b64-packed`),
    `64-ours` ours (`ours-b64`)."""
    if value.endswith("-ours"):
        return f"{OURS_BUCKETS}{value.removesuffix('-ours')}"
    return f"{FLOOR_BUCKETS}{value}"


def design_class(name: str) -> type[Design] | None:
    """The design a name on the command line means: one of DESIGNS, or the floor or ours with buckets."""
    if bucket_design(name) is None:
        return DESIGNS.get(name)
    return BucketedOurs if name.startswith(OURS_BUCKETS) else BucketedFloor


def toolchain_path() -> str:
    """PATH with the project's toolchain and venv first (what scripts/env.sh does for make)."""
    parts = [str(REPO / ".state" / "toolchain" / "bin"), str(REPO / ".venv" / "bin")]
    current = os.environ.get("PATH", "")
    return os.pathsep.join([p for p in parts if p not in current.split(os.pathsep)] + [current])
