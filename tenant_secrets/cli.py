"""tenantctl: the project's command line.

tenantctl validate [FILE] [--stack NAME] [--config-file Pulumi.NAME.yaml]
tenantctl schema [--check]
tenantctl plan --stack NAME [--format markdown|json] [--preview-json FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tenant_secrets import schema
from tenant_secrets.loader import load_tenants_file
from tenant_secrets.model import TenantsFileError, plan_environment
from tenant_secrets.validation import check_sources

NAMESPACE = "tenant-secrets"


def _stack_config(config_file: Path) -> dict[str, Any]:
    if not config_file.exists():
        return {}
    loaded = yaml.safe_load(config_file.read_text()) or {}
    config: dict[str, Any] = loaded.get("config") or {}
    return config


def _config_has(config: dict[str, Any]) -> Any:
    """Presence in the stack file's `secrets` object; secure leaves ({secure: ...}) count as set."""

    def has(path: tuple[str, ...]) -> bool:
        node: Any = config.get(f"{NAMESPACE}:secrets")
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return node is not None and (not isinstance(node, dict) or "secure" in node)

    return has


def validate(args: argparse.Namespace) -> int:
    file = args.file
    try:
        tenants = load_tenants_file(file)
    except TenantsFileError as err:
        print(err, file=sys.stderr)
        print(f"{file}: {len(err.issues)} problem(s)", file=sys.stderr)
        return 1
    if args.stack:
        config = _stack_config(Path(args.config_file or f"Pulumi.{args.stack}.yaml"))
        environment = str(config.get(f"{NAMESPACE}:environment") or args.stack)
        plan = plan_environment(tenants, environment)
        issues = check_sources(plan, file, config_has=_config_has(config), environ=os.environ)
        if issues:
            for issue in issues:
                print(issue, file=sys.stderr)
            print(f"{file}: {len(issues)} secret(s) without a value for stack {args.stack}", file=sys.stderr)
            return 1
        print(f"{file}: valid; {len(plan.tenants)} tenant(s) in {environment}, every value source set")
    else:
        print(f"{file}: valid; {len(tenants.document.tenants)} tenant(s)")
    return 0


def schema_command(args: argparse.Namespace) -> int:
    path = Path(args.output)
    if args.check:
        if not path.exists() or path.read_text() != schema.render():
            print(f"{path} is out of date: run `tenantctl schema`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    print(f"{path} {'written' if schema.write(path) else 'unchanged'}")
    return 0


def plan_command(args: argparse.Namespace) -> int:
    from tenant_secrets.review import run_plan  # noqa: PLC0415 - only this command needs it

    return run_plan(args.stack, args.format, args.preview_json, args.config_file)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tenantctl", description="tenants.yaml: validate, schema, review")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser(
        "validate", help="validate tenants.yaml (and, with --stack, its value sources)"
    )
    check.add_argument("file", nargs="?", default="tenants.yaml")
    check.add_argument("--stack", help="also check that every source has a value for this stack")
    check.add_argument("--config-file", help="the stack's config file (default Pulumi.<stack>.yaml)")
    check.set_defaults(run=validate)

    gen = commands.add_parser("schema", help="write tenants.schema.json from the model")
    gen.add_argument("--output", default="tenants.schema.json")
    gen.add_argument("--check", action="store_true", help="fail if the committed schema is out of date")
    gen.set_defaults(run=schema_command)

    plan = commands.add_parser("plan", help="a reviewer's table of what a preview would change")
    plan.add_argument("--stack", required=True)
    plan.add_argument("--format", choices=["markdown", "json"], default="markdown")
    plan.add_argument("--preview-json", help="read `pulumi preview --json` output instead of running it")
    plan.add_argument("--config-file", help="the stack's config file, passed to pulumi preview")
    plan.set_defaults(run=plan_command)

    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
