"""`tenantctl rotation ...`: policies dated from the stores, rotations as pull requests, notifications.

    tenantctl rotation status --stack NAME [--format text|markdown|json] [--as-of DATE]   exit 1: overdue
    tenantctl rotation bump [FILE] [--due --stack NAME | --due-from STATUS.json] [--tenants a,b]   move markers
    tenantctl rotation master-key --stack NAME                            add masterKeys.v<n+1>, make it active
    tenantctl rotation snapshot --stack NAME --output FILE                the stores' records before `pulumi up`
    tenantctl rotation notify --stack NAME [--before FILE] [--due]        what changed and what is due, to the webhook

Every command reads the stack's config as `tenantctl verify` does (`pulumi config --json --show-secrets`),
with DATABASE_URL and the INFISICAL_* variables of the run; none prints a value.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenant_secrets.stack.settings import NAMESPACE, ConfigGetter, StackConfigError, StackSettings
from tenant_secrets.stack.shards import select
from tenant_secrets.tenants_file.model import Loc, TenantsFile, TenantsFileError, plan_environment

if TYPE_CHECKING:  # imported where used: `tenantctl validate` starts without psycopg or the Infisical SDK
    from tenant_secrets.rotation.last_written import Records
    from tenant_secrets.rotation.policy import SecretPolicy
    from tenant_secrets.rotation.status import StatusReport

PREFIX = "tenantctl rotation"


class RotationCommandError(Exception):
    """One line for the user: what could not be read or done, never a value."""


@dataclass(frozen=True)
class Stack:
    name: str
    settings: StackSettings
    tenants: TenantsFile
    get: ConfigGetter


def _stack(name: str, config_file: str | None) -> Stack:
    from tenant_secrets.stack.config import StackConfigUnavailableError, read_stack_config  # noqa: PLC0415
    from tenant_secrets.tenants_file.loader import load_tenants_file  # noqa: PLC0415

    try:
        config = read_stack_config(name, config_file=config_file)
        settings = StackSettings.load(config.get, stack=name)
        return Stack(name, settings, load_tenants_file(Path(settings.tenants_file)), config.get)
    except StackConfigUnavailableError as err:
        raise RotationCommandError(str(err)) from None
    except StackConfigError as err:
        raise RotationCommandError(f"{err} (stack config {NAMESPACE}:*)") from None


def _records(stack: Stack, environ: Mapping[str, str]) -> Records:
    """What the stores record of the stack's environment (tenant_secrets/rotation/last_written.py)."""
    import psycopg  # noqa: PLC0415

    from tenant_secrets import store  # noqa: PLC0415
    from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials, InfisicalError  # noqa: PLC0415
    from tenant_secrets.rotation.last_written import gather  # noqa: PLC0415

    settings = stack.settings
    plan = select(plan_environment(stack.tenants, settings.environment, settings.region), settings.shard)
    needs_infisical = bool(plan.platform) or any("infisical" in t.storage for t in plan.tenants)
    needs_database = any("database" in t.storage for t in plan.tenants)
    dsn = environ.get("DATABASE_URL")
    if needs_database and not dsn:
        raise RotationCommandError("DATABASE_URL is not set, and tenants with database storage need it")
    try:
        client = InfisicalClient(InfisicalCredentials.from_env(environ)) if needs_infisical else None
        conn = store.connect(dsn) if dsn and needs_database else None
        try:
            return gather(plan, stack.settings, infisical=client, database=conn)
        finally:
            if conn is not None:
                conn.close()
    except (InfisicalError, store.StoreError, ValueError) as err:
        raise RotationCommandError(str(err)) from None
    except psycopg.Error as err:
        raise RotationCommandError(f"the database refused the read: {err.diag.message_primary or err}") from None


def _report(stack: Stack, records: Records, as_of: datetime | None = None) -> StatusReport:
    from tenant_secrets.rotation.policy import MasterKeyPolicyError, master_key_period, policies  # noqa: PLC0415
    from tenant_secrets.rotation.status import evaluate  # noqa: PLC0415

    try:
        period = master_key_period(stack.get, stack.settings.environment)
    except MasterKeyPolicyError as err:
        raise RotationCommandError(str(err)) from None
    settings = stack.settings
    # a shard reports its own tenants; the owner shard also the platform folders and the master key
    found = [
        p
        for p in policies(stack.tenants, settings.environment, settings.region)
        if (settings.owns_environment if p.platform else settings.applies(p.owner))
    ]
    period = period if settings.owns_environment else None
    return evaluate(found, records, period, as_of or datetime.now(UTC), stack=stack.name)


def _as_of(text: str | None) -> datetime | None:
    """--as-of YYYY-MM-DD: the report as it will read on that day (to plan ahead); None for now."""
    if not text:
        return None
    from tenant_secrets.tenants_file.periods import date_problem  # noqa: PLC0415

    problem = date_problem(text)
    if problem is not None:
        raise RotationCommandError(f"--as-of: {problem.message}; {problem.hint}")
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def status_command(args: argparse.Namespace) -> int:
    """Exit 0: nothing overdue; 1: something is overdue; 2: could not check."""
    from tenant_secrets.rotation.status import render  # noqa: PLC0415

    stack = _stack(args.stack, args.config_file)
    report = _report(stack, _records(stack, os.environ), _as_of(args.as_of))
    sys.stdout.write(render(report, args.format))
    return int(report.exit_status)


def bump_command(args: argparse.Namespace) -> int:
    from tenant_secrets.rotation import bump  # noqa: PLC0415
    from tenant_secrets.rotation.policy import policies  # noqa: PLC0415
    from tenant_secrets.tenants_file.loader import load_tenants_file  # noqa: PLC0415

    path = Path(args.file)
    names = [n.strip() for n in (args.tenants or "").split(",") if n.strip()]
    if args.due and not args.stack:
        raise RotationCommandError("--due needs --stack: what is due is read from that stack's stores")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RotationCommandError(f"cannot read {path}: {err.strerror}") from None
    tenants = load_tenants_file(path)
    wanted: list[tuple[str, set[tuple[str, str]] | None]]  # (environment, the due (owner, key), or None: all)
    if args.due_from:
        wanted = [_due_from(Path(file)) for file in args.due_from]
    elif args.stack:
        stack = _stack(args.stack, args.config_file)
        due = None
        if args.due:
            report = _report(stack, _records(stack, os.environ), _as_of(args.as_of))
            due = {(r.owner, r.key) for r in report.rows if r.kind == "rotate" and r.state in _DUE}
        wanted = [(stack.settings.environment, due)]
    else:
        wanted = [(environment, None) for environment in tenants.document.defaults.environments]
    chosen: dict[tuple[str, str, Loc], SecretPolicy] = {}
    every: list[SecretPolicy] = []
    for environment, due in wanted:
        found = policies(tenants, environment)
        every += found
        try:
            picked = bump.choose(found, due=due, tenants=names)
        except bump.BumpError as err:
            raise RotationCommandError(str(err)) from None
        for policy in picked:
            chosen.setdefault((policy.owner, policy.key, policy.loc), policy)
    bumps = bump.plan_bump(list(chosen.values()), every, datetime.now(UTC).date())
    if not bumps:
        print(
            f"{path}: no generated secret to rotate" + (" is due" if args.due or args.due_from else ""), file=sys.stderr
        )
        return 0
    try:
        path.write_text(bump.rewrite(text, bumps, str(path)), encoding="utf-8")
    except OSError as err:
        raise RotationCommandError(f"cannot write {path}: {err.strerror}") from None
    for line in bump.describe(bumps):
        print(line)
    print(
        f"{path}: {len(bumps)} rotation marker(s) moved; open a pull request: its plan shows the keys that change",
        file=sys.stderr,
    )
    return 0


_DUE = ("overdue", "due-soon")


def _due_from(file: Path) -> tuple[str, set[tuple[str, str]]]:
    """The environment and the due generated secrets of a `rotation status --format json` report."""
    from tenant_secrets.rotation.status import Status  # noqa: PLC0415

    try:
        report = json.loads(file.read_text(encoding="utf-8"))
        rows = [Status(**r) for r in report["rows"]]
        due = {(r.owner, r.key) for r in rows if r.kind == "rotate" and r.state in _DUE}
        return str(report["environment"]), due
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RotationCommandError(f"--due-from {file}: not a `rotation status --format json` report ({err})") from None


def master_key_command(args: argparse.Namespace) -> int:
    from tenant_secrets.rotation import master_key  # noqa: PLC0415

    stack = _stack(args.stack, args.config_file)
    try:
        version = master_key.next_version(stack.settings)
        master_key.add_version(args.stack, version, config_file=args.config_file)
    except master_key.MasterKeyRotationError as err:
        raise RotationCommandError(str(err)) from None
    print(
        f"stack {args.stack}: masterKeys.v{version} added (a secret) and activeKeyVersion set to {version}; "
        f"commit Pulumi.{args.stack}.yaml in a pull request: `pulumi up` publishes v{version}, re-encrypts "
        "every row, then moves MASTER_ENCRYPTION_KEY (docs/guides/master-key-and-readers.md)"
    )
    return 0


def snapshot_command(args: argparse.Namespace) -> int:
    stack = _stack(args.stack, args.config_file)
    records = _records(stack, os.environ)
    Path(args.output).write_text(records.to_json(), encoding="utf-8")
    print(f"{args.output}: {len(records.secrets)} record(s) of stack {args.stack}", file=sys.stderr)
    return 0


def notify_command(args: argparse.Namespace) -> int:
    """Exit 0 whether or not the webhook took it (a failed notification is reported, never fatal);
    2 when the stores or the snapshot could not be read."""
    from tenant_secrets.rotation import notify  # noqa: PLC0415
    from tenant_secrets.rotation.last_written import Records  # noqa: PLC0415

    stack = _stack(args.stack, args.config_file)
    after = _records(stack, os.environ)
    events: list[notify.Event] = []
    if args.before:
        try:
            before = Records.from_json(Path(args.before).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise RotationCommandError(f"cannot read the snapshot {args.before}: {err}") from None
        events += notify.changes(before, after)
    if args.due:
        events += notify.due_events(_report(stack, after))
    if not events:
        print(f"{PREFIX} notify: stack {args.stack}: nothing changed or due; nothing sent", file=sys.stderr)
        return 0
    try:
        webhook = notify.webhook_from(os.environ, stack.get)
    except notify.WebhookConfigError as err:
        print(f"{PREFIX} notify: {len(events)} event(s) not sent: {err}", file=sys.stderr)
        return 0
    if webhook is None:
        print(
            f"{PREFIX} notify: {len(events)} event(s), no webhook configured ({notify.URL_VARIABLE}): nothing sent",
            file=sys.stderr,
        )
        return 0
    logging.basicConfig(format=f"{PREFIX} notify: %(message)s", level=logging.WARNING, stream=sys.stderr)
    delivery = notify.deliver(webhook, notify.payload(args.stack, stack.settings.environment, events))
    print(f"{PREFIX} notify: {len(events)} event(s) {delivery.detail}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        status: int = args.rotation_run(args)
    except RotationCommandError as err:
        print(f"{PREFIX} {args.rotation}: {err}", file=sys.stderr)
        return 2
    except TenantsFileError as err:
        for issue in err.issues:
            print(issue, file=sys.stderr)
        return 2
    except OSError as err:  # a snapshot or tenants file that cannot be written
        print(f"{PREFIX} {args.rotation}: cannot write {err.filename}: {err.strerror}", file=sys.stderr)
        return 2
    return status


def add_parser(commands: Any) -> None:
    """The `rotation` command group, added to tenantctl's parser."""
    rot = commands.add_parser("rotation", help="rotation policies: status, bump, master-key, snapshot, notify")
    sub = rot.add_subparsers(dest="rotation", required=True)

    def stacked(name: str, text: str, *, required: bool = True) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = sub.add_parser(name, help=text)
        command.add_argument("--stack", required=required)
        command.add_argument("--config-file", help="the stack's config file, passed to pulumi config")
        return command

    status = stacked("status", "when each policy-bearing secret and the master key are due (exit 1: overdue)")
    status.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    status.add_argument("--as-of", help="the report as it will read on that day (YYYY-MM-DD); default: now")
    status.set_defaults(rotation_run=status_command)

    bumping = stacked("bump", "move rotation markers in tenants.yaml (a reviewed change)", required=False)
    bumping.add_argument("file", nargs="?", default="tenants.yaml")
    which = bumping.add_mutually_exclusive_group()
    which.add_argument("--due", action="store_true", help="only the secrets due or overdue on --stack")
    which.add_argument(
        "--due-from",
        action="append",
        help="only those a `rotation status --format json` report lists as due (repeatable)",
    )
    bumping.add_argument("--tenants", help="comma-separated tenants or platform folders; default: all")
    bumping.add_argument("--as-of", help="with --due: what is due on that day (YYYY-MM-DD); default: today")
    bumping.set_defaults(rotation_run=bump_command)

    master = stacked("master-key", "add a new master key version to the stack's config and make it active")
    master.set_defaults(rotation_run=master_key_command)

    snap = stacked("snapshot", "record what the stores hold (versions, times; no value) before pulumi up")
    snap.add_argument("--output", required=True)
    snap.set_defaults(rotation_run=snapshot_command)

    note = stacked("notify", "send what changed since --before, and with --due what is due, to the webhook")
    note.add_argument("--before", help="a snapshot from `tenantctl rotation snapshot`")
    note.add_argument("--due", action="store_true", help="also the secrets due soon or overdue")
    note.set_defaults(rotation_run=notify_command)
    rot.set_defaults(run=run)
