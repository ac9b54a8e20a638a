"""Prepares the demo stack's secrets: fake, stable, and kept under .state/ only.

    python -m dev.demo --config-file .state/demo/Pulumi.dev.yaml --env-file .state/demo/env

For the stack named by the config file it makes a master key and a derivation key (once), a fake
value for every `{from: config}` source of tenants.yaml that has none yet, and a fake value for
every `{from: env}` variable in the env file (sourced by the demo before `pulumi up`). A demo stack
file made before `envAllow` and `sharedFolders` existed gets the committed Pulumi.dev.yaml's lists
(what value sources may read: docs/decisions/0041). Running it again changes nothing, so a second
`make demo` previews no changes.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shlex
import subprocess
from pathlib import Path

import yaml

from tenant_secrets.tenants_file.loader import load_tenants_file
from tenant_secrets.tenants_file.model import plan_environment
from tenant_secrets.tenants_file.sources import ConfigSource, EnvSource

log = logging.getLogger("demo")
NAMESPACE = "tenant-secrets"
COMMITTED_STACK_FILE = Path(__file__).resolve().parents[1] / "Pulumi.dev.yaml"
SOURCE_SETTINGS = ("envAllow", "sharedFolders")


def _config(config_file: Path) -> dict[str, object]:
    loaded = yaml.safe_load(config_file.read_text()) or {}
    config: dict[str, object] = loaded.get("config") or {}
    return config


def _has_path(config: dict[str, object], key: str, path: tuple[str, ...]) -> bool:
    node: object = config.get(f"{NAMESPACE}:{key}")
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return node is not None


def _set_secret(config_file: Path, path: str, value: str) -> None:
    subprocess.run(
        ["pulumi", "config", "set", "--secret", "--path", "--config-file", str(config_file), path],
        input=value,
        text=True,
        check=True,
        capture_output=True,
    )


def _source_settings(config_file: Path, config: dict[str, object]) -> None:
    """The committed stack file's envAllow and sharedFolders, where the demo's copy has none."""
    committed = _config(COMMITTED_STACK_FILE)
    for name in SOURCE_SETTINGS:
        key = f"{NAMESPACE}:{name}"
        entries = committed.get(key)
        if key in config or not isinstance(entries, list) or not entries:
            continue
        for index, entry in enumerate(entries):
            subprocess.run(
                ["pulumi", "config", "set", "--path", "--config-file", str(config_file), f"{key}[{index}]", str(entry)],
                check=True,
                capture_output=True,
            )
        log.info("set %s as the committed Pulumi.dev.yaml has it", name)


def prepare(config_file: Path, env_file: Path, tenants_file: Path) -> None:
    config = _config(config_file)
    _source_settings(config_file, config)
    if not _has_path(config, "masterKeys", ("v1",)):
        _set_secret(config_file, f"{NAMESPACE}:masterKeys.v1", secrets.token_hex(32))
        log.info("made master key v1")
    if f"{NAMESPACE}:derivationKey" not in config:
        _set_secret(config_file, f"{NAMESPACE}:derivationKey", secrets.token_hex(32))
        log.info("made the derivation key")

    environment = str(config.get(f"{NAMESPACE}:environment") or "dev")
    plan = plan_environment(load_tenants_file(tenants_file), environment)
    env_values = _read_env_file(env_file)
    owners = [(t.subdomain, t.secrets) for t in plan.tenants] + [(f.name, f.secrets) for f in plan.platform]
    for owner, sources in owners:
        for key, source in sources.items():
            fake = f"fake-{owner}-{key.lower().replace('_', '-')}-{secrets.token_hex(4)}"
            if isinstance(source, ConfigSource) and not _has_path(config, "secrets", source.path):
                _set_secret(config_file, f"{NAMESPACE}:secrets.{'.'.join(source.path)}", fake)
                log.info("set a fake value for secrets.%s", ".".join(source.path))
            elif isinstance(source, EnvSource) and source.var not in env_values:
                env_values[source.var] = fake
                log.info("made a fake value for $%s", source.var)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        for name, value in sorted(env_values.items()):
            handle.write(f"export {name}={shlex.quote(value)}\n")


def _read_env_file(env_file: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = shlex.split(value)[0]
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", type=Path, required=True)
    parser.add_argument("--env-file", type=Path, required=True)
    parser.add_argument("--tenants-file", type=Path, default=Path("tenants.yaml"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="demo: %(message)s")
    prepare(args.config_file, args.env_file, args.tenants_file)


if __name__ == "__main__":
    main()
