"""tenantctl: check tenants.yaml before anything runs, keep its JSON Schema current, show a plan.

    tenantctl validate [FILE] [--stack NAME] [--config-file Pulumi.NAME.yaml] [--base GIT_REF] [--format text|github]
    tenantctl schema [--check] [--output tenants.schema.json]
    tenantctl plan (--stack NAME | --environment ENV) [--format markdown|json] [--preview-json FILE]
                   [--allow-unchecked] [--no-refresh]                               (plan_comment.py)
    tenantctl import --environments dev,staging,prod [--no-platform] [--output FILE]   (importer.py)
    tenantctl pr-changes --head DIR [--base DIR]                                    (stack/head_data.py)
    tenantctl pr-data --head DIR --stack NAME [--base DIR] [--code base|head] --note FILE
    tenantctl verify (--stack NAME | --environment ENV) [--tenants a,b] [--format text|markdown|json] [--applied]
                                                                                    (verify.py)
    tenantctl affected (--base GIT_REF | --since-applied) [--environment ENV] [--json] [--repo DIR]
                                                                                    (affected.py)
    tenantctl record-applied --stack NAME [--commit REV] [--repo DIR]            (stack/applied.py)
    tenantctl handover-check --stack NAME [--repo DIR] [FILE]                     (stack/handover.py)
    tenantctl shards init --environment ENV [--region R] --count N                 (reshard.py)
    tenantctl shards which --environment ENV [--region R] SUBDOMAIN...
    tenantctl reshard --environment ENV [--region R] --from N --to M
    tenantctl migrate --to database|infisical (--tenants a,b,c | --batch N) [--region R] [FILE]   (migrate.py)
    tenantctl rotation status|bump|master-key|snapshot|notify ...                 (rotation/commands.py)
    tenantctl recover --stack NAME [--exclusive]                                   (recover.py)
    tenantctl ci-env (--stack NAME | --environment ENV) [--repo DIR] [--suffix ENV]     (ci_env.py)

`validate` prints every issue as `file:line:column: field: message. hint` (the first 1,000, then how
many more) and exits 1, or prints a one-line summary and exits 0. With --stack it also checks that
every value source has a value for that stack: config paths in the stack file `Pulumi.<stack>.yaml`
(present is enough: secure values are never decrypted here) and environment variables in this
process's environment, and the stack settings the run needs (derivationKey; with a database store,
the active master key; masterKeyRotateEvery a period), and that no `{from: infisical}` source reads
a folder or key the stack's run deletes (tenants_file/deleted_reads.py). With --base (the pull
request's base, e.g. origin/main) it also refuses what `plan` refuses: a tenant, platform folder or
key that was declared there and is gone without its decommission marker.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tenant_secrets.engine import reconcile
from tenant_secrets.rotation import commands as rotation_commands
from tenant_secrets.stack import head_data
from tenant_secrets.stack.files import StackFile
from tenant_secrets.stack.shards import select
from tenant_secrets.tenantctl import plan_comment, reshard
from tenant_secrets.tenants_file import schema
from tenant_secrets.tenants_file.deleted_reads import deleted_reads
from tenant_secrets.tenants_file.loader import load_tenants_file
from tenant_secrets.tenants_file.model import (
    EnvironmentPlan,
    Issue,
    Loc,
    TenantsFile,
    TenantsFileError,
    issue_at,
    more_problems,
    plan_before,
    plan_environment,
    region_issue,
)
from tenant_secrets.tenants_file.validation import check_sources


def _github(issue: Issue) -> str:
    """A GitHub Actions annotation, so the pull request shows the issue on the line."""

    def escape(text: str, *, prop: bool = False) -> str:
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return text.replace(":", "%3A").replace(",", "%2C") if prop else text

    message = f"{issue.message}. {issue.hint}" if issue.hint else issue.message
    return (
        f"::error file={escape(issue.file, prop=True)},line={issue.line},col={issue.column},"
        f"title={escape(issue.field, prop=True)}::{escape(message)}"
    )


def _print_issues(issues: Sequence[Issue], output_format: str) -> None:
    for issue in sorted(issues, key=lambda i: (i.file, i.line, i.column)):
        print(_github(issue) if output_format == "github" else issue)


def _counts(tenants: TenantsFile) -> str:
    doc = tenants.document
    gone = sum(t.decommissioned for t in doc.tenants)
    text = f"{len(doc.tenants)} tenant(s)" + (f" ({gone} decommissioned)" if gone else "")
    return f"{text}, {len(doc.platform)} platform folder(s), environments {', '.join(doc.defaults.environments)}"


def _plan_counts(plan: EnvironmentPlan) -> str:
    keys = sum(len(t.secrets) for t in plan.tenants) + sum(len(f.secrets) for f in plan.platform)
    return f"{len(plan.tenants)} tenant(s) and {len(plan.platform)} platform folder(s) with {keys} secret(s)"


def _base_file(ref: str, file: str) -> TenantsFile:
    """The tenants file as it is at git ``ref``: the file the path leads to, links followed, in the repository
    that holds it. `make shell` works in the demo's copy (.state/demo/project), whose tenants.yaml is a link
    to the repository's: git would look for the link's own path, which no commit has."""
    real = Path(file).resolve()
    try:
        text = subprocess.run(
            ["git", "-C", str(real.parent), "show", f"{ref}:./{real.name}"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        reason = (getattr(err, "stderr", "") or str(err)).strip().splitlines()[-1:] or ["git failed"]
        hint = "pass a git ref that has the file, e.g. --base origin/main"
        raise TenantsFileError([Issue(file, 1, 1, "(file)", f"cannot read it at {ref}: {reason[0]}", hint)]) from None
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / Path(file).name
        path.write_text(text, encoding="utf-8")
        try:
            return load_tenants_file(path)
        except TenantsFileError:
            issue = Issue(file, 1, 1, "(file)", f"the file at {ref} is not valid", "compare against a valid base")
            raise TenantsFileError([issue]) from None


def removal_issues(base: TenantsFile, head: TenantsFile, file: str, environments: Sequence[str]) -> list[Issue]:
    """What disappeared since ``base`` without its decommission marker, per environment (and region: a region
    dropped from a tenant's `regions` needs `decommission: [region]`): what the preview's removal guards refuse
    (tenant_secrets/engine/reconcile.py words them), found before any preview."""
    issues: list[Issue] = []
    where: dict[str, Loc] = {t.subdomain: ("tenants", i, "secrets") for i, t in enumerate(head.document.tenants)}
    where |= {name: ("platform", name, "secrets") for name in head.document.platform}
    regions: list[str | None] = [*head.document.regions] if head.document.regions else [None]
    for environment, region in [(e, r) for e in environments for r in regions]:
        old = plan_before(base, environment, region)
        if old is None:
            continue  # a region new in head: nothing of it can disappear
        new = plan_environment(head, environment, region)
        place = f"{environment}, region {region}" if region else environment
        owners = [t.subdomain for t in old.tenants if not t.decommission] + [f.name for f in old.platform]
        kept = [t.subdomain for t in new.tenants if not t.decommission] + [f.name for f in new.platform]
        gone = [t.subdomain for t in new.tenants if t.decommission]
        only_here = f"; to delete them in region {region} only, `decommission: [{region}]`" if region else ""
        for failure in reconcile.removed_tenant_failures(owners, kept, gone):
            issues.append(Issue(file, 1, 1, "tenants", f"{place}: {failure.reason}{only_here}"))
        declared = {t.subdomain: set(t.secrets) for t in old.tenants} | {f.name: set(f.secrets) for f in old.platform}
        entries: list[tuple[str, Mapping[str, Any], frozenset[str]]] = [
            (t.subdomain, t.secrets, t.decommissioned_keys) for t in new.tenants if not t.decommission
        ]
        entries += [(f.name, f.secrets, f.decommissioned_keys) for f in new.platform]
        for name, secrets, marked in entries:
            if name not in declared:
                continue
            failures = reconcile.removed_key_failures(
                name, dict.fromkeys(declared[name]), dict.fromkeys(secrets), marked
            )
            for failure in failures:
                issues.append(issue_at(file, head.positions, where[name], f"{place}: {failure.reason}"))
    return list(dict.fromkeys(issues + move_issues(base, head, file)))


def move_issues(base: TenantsFile, head: TenantsFile, file: str) -> list[Issue]:
    """A tenant that gains a region and is decommissioned in another in one change: the regions' stacks run
    apart, so the old region could delete before the new one holds the values (docs/decisions/0054-regions.md)."""
    if base.document.regions is None or head.document.regions is None:
        return []
    before = {t.subdomain: t for t in base.document.tenants}
    issues = []
    for index, tenant in enumerate(head.document.tenants):
        old = before.get(tenant.subdomain)
        if old is None or not isinstance(tenant.decommission, list):
            continue
        leaving = [r for r in tenant.decommission if not old.leaves(r)]
        gaining = [r for r in head.document.regions_of(tenant) or [] if r not in (base.document.regions_of(old) or [])]
        if leaving and gaining:
            issues.append(
                issue_at(
                    file,
                    head.positions,
                    ("tenants", index, "decommission"),
                    f"{tenant.subdomain} gains {', '.join(gaining)} and leaves {', '.join(leaving)} in one change: "
                    f"{', '.join(leaving)} could delete its secrets before {', '.join(gaining)} holds them",
                    f"move it in two changes: add {', '.join(gaining)} to its regions and apply it, then "
                    f"decommission {', '.join(leaving)}",
                )
            )
    return issues


def _stack_region(stack: StackFile, tenants: TenantsFile) -> str | None:
    """The stack's region, checked against the file's `regions`; TenantsFileError at the setting otherwise."""
    region, issues = stack.region()
    if not issues and (wrong := region_issue(tenants, region)) is not None:
        issues.append(stack.region_setting(wrong))
    if issues:
        raise TenantsFileError(issues)
    return region


def validate(args: argparse.Namespace) -> int:
    file = str(args.file)
    issues: list[Issue] = []
    more = 0  # problems beyond those listed (a file with more than MAX_ISSUES)
    try:
        tenants = load_tenants_file(file)
        summary = f"{file}: valid; {_counts(tenants)}"
        if args.stack:
            stack = StackFile.read(Path(args.config_file or f"Pulumi.{args.stack}.yaml"))
            environment = stack.environment(args.stack)
            shard, shard_issues = stack.shard()
            region = _stack_region(stack, tenants)
            plan = select(plan_environment(tenants, environment, region), shard)
            issues += shard_issues
            issues += stack.issues
            issues += stack.settings_issues(plan, args.stack)
            policy, policy_issues = stack.source_policy()
            issues += policy_issues
            issues += check_sources(
                plan, file, config_has=stack.has_secret, environ=os.environ, policy=policy, stack=args.stack
            )
            issues += deleted_reads(plan, file, retain_on_delete=stack.retains_on_delete())
            where = f"{environment}, region {region}" if region else environment
            where += f", shard {shard}" if shard else ""
            summary += f"; stack {args.stack} ({where}): {_plan_counts(plan)}, every value source set"
            if note := stack.buckets_note(plan, args.stack):
                summary += f"\n{note}"
        if args.base:
            environments = [environment] if args.stack else list(tenants.document.defaults.environments)
            issues += removal_issues(_base_file(args.base, file), tenants, file, environments)
            summary += f"; nothing removed since {args.base} without its decommission marker"
    except TenantsFileError as err:
        issues += err.issues
        more = err.more
    if issues:
        _print_issues(issues, args.format)
        if more:
            print(more_problems(file, more))
        print(f"{file}: {len(issues) + more:,} problem(s)", file=sys.stderr)
        return 1
    print(summary)
    return 0


def schema_command(args: argparse.Namespace) -> int:
    path = Path(args.output)
    if args.check:
        if not schema.is_current(path):
            print(f"{path} is out of date with the model: run `tenantctl schema`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    print(f"{path} {'written' if schema.write(path) else 'unchanged'}")
    return 0


def _environment_stacks(environment: str, region: str | None = None) -> list[str]:
    """The stacks of an environment (of one of its regions), as the Pulumi.<stack>.yaml files here declare them
    (all its shards). An environment in regions needs ``region``: each region's stacks run with that region's
    own DATABASE_URL and INFISICAL_* (docs/decisions/0054-regions.md)."""
    from tenant_secrets.stack import files as stacks  # noqa: PLC0415

    chosen = stacks.of_environment(stacks.discover(Path.cwd()), environment)
    hint = ", with that region's DATABASE_URL and INFISICAL_* in the environment"
    return [s.name for s in stacks.of_region(chosen, environment, region, hint)]


def plan_command(args: argparse.Namespace) -> int:
    """One stack's plan, or each of an environment's stacks' in turn (one section per shard)."""
    if args.stack:
        return plan_comment.run_plan(
            args.stack,
            args.format,
            args.preview_json,
            args.config_file,
            allow_unchecked=args.allow_unchecked,
            refresh=args.refresh,
        )
    if args.preview_json or args.config_file:
        print("tenantctl plan: --preview-json and --config-file need --stack", file=sys.stderr)
        return 2
    from tenant_secrets.stack.files import StackFileError  # noqa: PLC0415

    try:
        names = _environment_stacks(args.environment, args.region)
    except StackFileError as err:
        print(f"tenantctl plan: {err}", file=sys.stderr)
        return 2
    return plan_comment.run_environment_plan(
        names, args.format, allow_unchecked=args.allow_unchecked, refresh=args.refresh, region=args.region
    )


def import_command(args: argparse.Namespace) -> int:
    """An existing Infisical environment as tenants.yaml: folder and key names only, never a value."""
    # imported here: the Infisical SDK doubles the start-up time of `tenantctl validate`, which needs none of it
    from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials, InfisicalError  # noqa: PLC0415
    from tenant_secrets.tenantctl import importer  # noqa: PLC0415

    environments = [e.strip() for e in args.environments.split(",") if e.strip()]
    try:
        client = InfisicalClient(InfisicalCredentials.from_env())
        found = importer.discover(client, environments, platform=args.platform)
    except InfisicalError as err:
        print(f"tenantctl import: {err}", file=sys.stderr)
        return 1
    text = importer.render(found)
    for skipped in found.skipped:
        print(skipped, file=sys.stderr)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    owners = [*found.tenants.values(), *found.platform.values()]
    keys = sum(len(keys) for by_env in owners for keys in by_env.values())
    print(
        f"imported {len(found.tenants)} tenant(s), {len(found.platform)} platform folder(s), {keys} key(s) "
        f"from {', '.join(environments)}" + ("" if args.output == "-" else f" into {args.output}"),
        file=sys.stderr,
    )
    return 0


def _revision(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def pr_changes_command(args: argparse.Namespace) -> int:
    """Print `code_changed=true|false` (for $GITHUB_OUTPUT), and the changed paths by kind on stderr."""
    base, head = Path(args.base), Path(args.head)
    try:
        changes = head_data.classify(head_data.changed_paths(head, _revision(base)))
    except (head_data.HeadDataError, subprocess.CalledProcessError) as err:
        print(f"tenantctl pr-changes: {err}", file=sys.stderr)
        return 1
    for kind, paths in (("data", changes.data), ("code", changes.code), ("documentation", changes.documentation)):
        print(f"{kind}: {', '.join(paths) or '-'}", file=sys.stderr)
    print(f"code_changed={'true' if changes.code_changed else 'false'}")
    return 0


def pr_data_command(args: argparse.Namespace) -> int:
    """Take the head's data files into the trusted checkout (--code base) and write the comment's note.

    With --code head (a run a reviewer approved) nothing is copied: the head's own checkout runs."""
    base, head = Path(args.base), Path(args.head)
    try:
        base_rev, head_rev = _revision(base), _revision(head)
        changes = head_data.classify(head_data.changed_paths(head, base_rev))
        if args.code == "base":
            taken = head_data.take_head_data(base, head, args.stack)
            print(f"taken from the pull request: {', '.join(taken)}", file=sys.stderr)
    except subprocess.CalledProcessError:
        print(f"tenantctl pr-data: {args.base} or {args.head} is not a git checkout", file=sys.stderr)
        return 1
    except head_data.HeadDataError as err:
        Path(args.note).write_text(render_head_data_error(args.stack, err), encoding="utf-8")
        for problem in err.problems:
            print(f"tenantctl pr-data: {problem}", file=sys.stderr)
        return 1
    note = head_data.render_note(
        stack=args.stack,
        code=args.code,
        base_rev=base_rev,
        head_rev=head_rev,
        changes=changes,
        approval_environment=args.approval_environment,
    )
    Path(args.note).write_text(note, encoding="utf-8")
    return 0


def render_head_data_error(stack: str, err: head_data.HeadDataError) -> str:
    """The comment when the head's data files cannot be previewed with the base branch's code."""
    problems = "\n".join(f"- {p}" for p in err.problems)
    return (
        f"### tenant-secrets plan: stack `{stack}`: not previewed\n\n"
        "**This pull request's data files cannot be previewed with the base branch's code:**\n\n"
        f"{problems}\n"
    )


def _names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def verify_command(args: argparse.Namespace) -> int:
    """Exit 0: the stores hold what is declared; 1: drift, every difference listed (or, with --applied, a
    stack behind HEAD); 2: could not check."""
    from tenant_secrets.stack.files import StackFileError  # noqa: PLC0415
    from tenant_secrets.tenantctl import drift, verify  # noqa: PLC0415

    try:
        names = [args.stack] if args.stack else _environment_stacks(args.environment, args.region)
    except StackFileError as err:
        print(f"tenantctl verify: {err}", file=sys.stderr)
        return 2
    applied_status = _print_applied(names, args.format) if args.applied else 0
    if args.stack:
        report = verify.run_verify(args.stack, tenants=_names(args.tenants), config_file=args.config_file)
        sys.stdout.write(drift.render(report, args.format))
        return max(report.status, applied_status)
    shared: dict[str, verify.SharedTree] = {}  # one Infisical listing for every shard of the environment
    reports = [verify.run_verify(name, tenants=(), shared=shared) for name in names]
    if args.format == "json":
        sys.stdout.write("[\n" + ",\n".join(drift.render(r, "json").rstrip() for r in reports) + "\n]\n")
    else:
        sys.stdout.write("\n".join(drift.render(r, args.format) for r in reports))
    return max(applied_status, *(r.status for r in reports))


def _print_applied(names: Sequence[str], fmt: str) -> int:
    """One line per stack: applied HEAD, up to date, or behind HEAD and why (first, so that a report's summary
    stays the output's last line); on standard error with --format json. 1 when a stack is behind, 2 when
    a stack's applied commit cannot be read."""
    from tenant_secrets.stack import applied  # noqa: PLC0415
    from tenant_secrets.stack.files import discover  # noqa: PLC0415
    from tenant_secrets.tenantctl import affected  # noqa: PLC0415

    out = sys.stderr if fmt == "json" else sys.stdout
    stacks = [s for s in discover(Path.cwd()) if s.name in names]
    run = applied.pulumi_runner(Path.cwd())
    try:
        found = affected.standings(Path.cwd(), {s.name: applied.read_applied(s.name, run) for s in stacks}, stacks)
    except (applied.AppliedError, affected.AffectedError) as err:
        out.write(f"tenantctl verify --applied: {err}\n")
        return 2
    lines = [f"{'- ' if fmt == 'markdown' else ''}{s.line}" for s in found]
    if fmt == "markdown":
        lines = ["### tenant-secrets verify: the commit each stack applied", "", *lines, ""]
    out.write("\n".join(lines) + "\n")
    return 1 if any(s.behind for s in found) else 0


def affected_command(args: argparse.Namespace) -> int:
    """The stacks the changes since --base (or since each stack's applied commit) touch: one per line, or
    JSON for a GitHub Actions matrix."""
    from tenant_secrets.stack import applied  # noqa: PLC0415
    from tenant_secrets.stack.files import StackFileError, discover, of_environment  # noqa: PLC0415
    from tenant_secrets.tenantctl import affected  # noqa: PLC0415

    root = Path(args.repo)
    try:
        stacks = discover(root)
        if args.environment:
            stacks = of_environment(stacks, args.environment)
        if args.since_applied:
            run = applied.pulumi_runner(Path.cwd())
            found = affected.since_applied(root, {s.name: applied.read_applied(s.name, run) for s in stacks}, stacks)
        else:
            found = affected.affected(root, args.base, stacks)
    except (affected.AffectedError, StackFileError, applied.AppliedError) as err:
        print(f"tenantctl affected: {err}", file=sys.stderr)
        return 2
    for stack in found.stacks:
        print(f"{stack.name}: {'; '.join(found.reasons[stack.name])}", file=sys.stderr)
    sys.stdout.write(found.matrix() + "\n" if args.json else found.lines())
    return 0


def record_applied_command(args: argparse.Namespace) -> int:
    """After a successful `pulumi up`: record the commit the stack now applies (its stack tag)."""
    from tenant_secrets.stack import applied  # noqa: PLC0415

    try:
        commit = subprocess.run(
            ["git", "-C", args.repo, "rev-parse", "--verify", f"{args.commit}^{{commit}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        applied.record_applied(args.stack, commit, applied.pulumi_runner(Path.cwd()))
    except subprocess.CalledProcessError:
        print(f"tenantctl record-applied: {args.commit} is not a commit of {args.repo}", file=sys.stderr)
        return 1
    except applied.AppliedError as err:
        print(f"tenantctl record-applied: {err}", file=sys.stderr)
        return 1
    print(f"stack {args.stack}: applied {commit}")
    return 0


def handover_check_command(args: argparse.Namespace) -> int:
    """Before a region's `pulumi up`: refuse when the stack would delete a tenant that moves to other regions
    before each of them applied it (one line per tenant), 0 otherwise."""
    from tenant_secrets.stack import applied, handover  # noqa: PLC0415
    from tenant_secrets.stack.files import StackFileError, discover  # noqa: PLC0415

    root = Path(args.repo)
    try:
        head = load_tenants_file(args.file or root / handover.TENANTS_FILE)
        stacks = discover(root)
        stack = next((s for s in stacks if s.name == args.stack), None)
        lines = (
            []
            if stack is None
            else handover.refusals(head, stack, stacks, applied.pulumi_runner(Path.cwd()), handover.git_runner(root))
        )
    except TenantsFileError as err:
        _print_issues(err.issues, "text")
        return 1
    except (StackFileError, applied.AppliedError) as err:
        print(f"tenantctl handover-check: {err}", file=sys.stderr)
        return 2
    if stack is None:
        print(f"tenantctl handover-check: no Pulumi.{args.stack}.yaml in {root}", file=sys.stderr)
        return 2
    for line in lines:
        print(line, file=sys.stderr)
    if not lines:
        moving = len(handover.handovers(head, stack))
        said = f"{moving} tenant(s) leaving for other regions, each held there" if moving else "no tenant moves away"
        print(f"stack {stack.name}: {said}")
    return 1 if lines else 0


def _held_keys(environments: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """Key names under /tenants in each environment, one recursive listing each, values never sent."""
    from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials, InfisicalError  # noqa: PLC0415
    from tenant_secrets.tenantctl.migrate import MigrationError  # noqa: PLC0415

    try:
        client = InfisicalClient(InfisicalCredentials.from_env())
        return {env: client.list_tree_keys(env, "/tenants") for env in environments}
    except InfisicalError as err:
        raise MigrationError(str(err)) from None


def migrate_command(args: argparse.Namespace) -> int:
    """Rewrite tenants.yaml so the chosen tenants are in both stores; nothing else is touched."""
    from tenant_secrets.tenantctl import migrate  # noqa: PLC0415

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
        tenants = load_tenants_file(path)
        chosen = migrate.choose(tenants, args.to, _names(args.tenants), args.batch, args.region)
        held = _held_keys(migrate.environments_of(tenants, chosen)) if args.to == "database" else {}
        migration = migrate.plan_migration(tenants, args.to, chosen, held, args.region)
        path.write_text(migrate.rewrite(text, migration, str(path)), encoding="utf-8")
    except TenantsFileError as err:
        _print_issues(err.issues, "text")
        return 1
    except OSError as err:
        print(f"tenantctl migrate: cannot read or write {path}: {err.strerror}", file=sys.stderr)
        return 1
    except migrate.MigrationError as err:
        print(f"tenantctl migrate: {err}", file=sys.stderr)
        return 1
    for line in migration.skipped:
        print(line, file=sys.stderr)
    names = ",".join(move.subdomain for move in migration.moves)
    print(
        f"{path}: {migrate.describe(migration)}. Open a pull request; after `pulumi up`, "
        f"`tenantctl verify --stack <stack> --tenants {names}` proves the batch",
        file=sys.stderr,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="tenantctl", description="tenants.yaml: validate, schema, review, import, verify, migrate, rotation"
    )
    commands = root.add_subparsers(dest="command", required=True)

    check = commands.add_parser("validate", help="validate tenants.yaml (with --stack, also its value sources)")
    check.add_argument("file", nargs="?", default="tenants.yaml")
    check.add_argument("--stack", help="also check that every value source has a value for this stack")
    check.add_argument("--config-file", help="the stack's config file (default: Pulumi.<stack>.yaml)")
    check.add_argument(
        "--base", help="a git ref (the pull request's base): also refuse removals without a decommission marker"
    )
    check.add_argument(
        "--format", choices=["text", "github"], default="text", help="github: annotations for a pull request"
    )
    check.set_defaults(run=validate)

    gen = commands.add_parser("schema", help="write tenants.schema.json from the model")
    gen.add_argument("--output", default="tenants.schema.json")
    gen.add_argument("--check", action="store_true", help="fail if the file differs from the model's schema")
    gen.set_defaults(run=schema_command)

    plan = commands.add_parser("plan", help="a reviewer's table of what a preview would change")
    plan_which = plan.add_mutually_exclusive_group(required=True)
    plan_which.add_argument("--stack")
    plan_which.add_argument("--environment", help="every stack (shard) of this environment, one plan each")
    plan.add_argument("--region", help="with --environment: that region's stacks (an environment in regions)")
    plan.add_argument("--format", choices=["markdown", "json"], default="markdown")
    plan.add_argument("--preview-json", help="read `pulumi preview --json` output instead of running it")
    plan.add_argument("--config-file", help="the stack's config file, passed to pulumi preview")
    plan.add_argument(
        "--allow-unchecked",
        action="store_true",
        help="exit 0 even when the preview warned that it could not check something (the plan still says so)",
    )
    plan.add_argument(
        "--no-refresh",
        dest="refresh",
        action="store_false",
        help="do not read the stores first (faster; drift then does not show, and the plan says so)",
    )
    plan.set_defaults(run=plan_command)

    imp = commands.add_parser(
        "import", help="write a tenants.yaml for an existing Infisical environment (INFISICAL_* from the environment)"
    )
    imp.add_argument("--environments", required=True, help="comma-separated environment slugs, e.g. dev,staging,prod")
    imp.add_argument(
        "--no-platform", dest="platform", action="store_false", help="only /tenants/*, not the other top-level folders"
    )
    imp.add_argument("--output", default="-", help="file to write (default: standard output)")
    imp.set_defaults(run=import_command)

    changes = commands.add_parser("pr-changes", help="a pull request's changed files: data, code, documentation")
    changes.add_argument("--head", required=True, help="a checkout of the pull request's head commit")
    changes.add_argument("--base", default=".", help="the trusted checkout (default: the current directory)")
    changes.set_defaults(run=pr_changes_command)

    data = commands.add_parser(
        "pr-data", help="take a pull request's data files into the trusted checkout, and write the comment's note"
    )
    data.add_argument("--head", required=True, help="a checkout of the pull request's head commit (never run)")
    data.add_argument("--base", default=".", help="the trusted checkout (default: the current directory)")
    data.add_argument("--stack", required=True)
    data.add_argument(
        "--code", choices=["base", "head"], default="base", help="head: a run a reviewer approved; nothing is copied"
    )
    data.add_argument("--note", required=True, help="file for the comment's note on how the preview ran")
    data.add_argument("--approval-environment", default="pr-preview-approval")
    data.set_defaults(run=pr_data_command)
    ver = commands.add_parser(
        "verify", help="compare what is declared with what Infisical and the database hold (exit 0, 1 drift, 2 error)"
    )
    ver_which = ver.add_mutually_exclusive_group(required=True)
    ver_which.add_argument("--stack")
    ver_which.add_argument(
        "--environment", help="every stack (shard) of this environment, with one Infisical listing for all"
    )
    ver.add_argument("--region", help="with --environment: that region's stacks (an environment in regions)")
    ver.add_argument("--tenants", help="comma-separated tenants (or platform folders) to check; default: all")
    ver.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    ver.add_argument("--config-file", help="the stack's config file, passed to pulumi config")
    ver.add_argument(
        "--applied",
        action="store_true",
        help="also say, one line per stack, whether it applied HEAD or is behind it (its applied-commit tag); "
        "behind is exit 1",
    )
    ver.set_defaults(run=verify_command)

    mig = commands.add_parser(
        "migrate", help="move tenants to the other store as a change of tenants.yaml (storage: both)"
    )
    mig.add_argument("file", nargs="?", default="tenants.yaml")
    mig.add_argument("--to", required=True, choices=["database", "infisical"], help="the store the tenants move to")
    which = mig.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenants", help="comma-separated subdomains")
    which.add_argument("--batch", type=int, help="the next N tenants still only in the other store, in file order")
    mig.add_argument(
        "--region",
        help="a file with regions, --to database: the tenants that live in this region alone, their folders' keys "
        "listed in its Infisical (its INFISICAL_* in the environment); required there, refused otherwise",
    )
    mig.set_defaults(run=migrate_command)
    rotation_commands.add_parser(commands)

    aff = commands.add_parser("affected", help="the stacks that the changes since a git ref touch")
    aff_base = aff.add_mutually_exclusive_group(required=True)
    aff_base.add_argument("--base", help="the git ref to compare the working tree with, e.g. origin/main")
    aff_base.add_argument(
        "--since-applied",
        action="store_true",
        help="compare each stack with the commit it last applied (its stack tag); none recorded: every change",
    )
    aff.add_argument("--environment", help="only this environment's stacks")
    aff.add_argument("--json", action="store_true", help="a JSON object for a GitHub Actions matrix")
    aff.add_argument(
        "--repo", default=".", help="the checkout to read (data only: its tenants.yaml and stack files), default ."
    )
    aff.set_defaults(run=affected_command)

    rec = commands.add_parser(
        "record-applied", help="after a successful `pulumi up`: record the commit the stack applied (a stack tag)"
    )
    rec.add_argument("--stack", required=True)
    rec.add_argument("--commit", default="HEAD", help="the commit the up ran from (default: HEAD)")
    rec.add_argument("--repo", default=".", help="the checkout the commit is read from, default .")
    rec.set_defaults(run=record_applied_command)

    hand = commands.add_parser(
        "handover-check",
        help="before a region's `pulumi up`: refuse to delete a tenant moving to other regions before they applied it",
    )
    hand.add_argument("file", nargs="?", help="the tenants file, default tenants.yaml in --repo")
    hand.add_argument("--stack", required=True)
    hand.add_argument("--repo", default=".", help="the checkout whose stack files and history are read, default .")
    hand.set_defaults(run=handover_check_command)
    reshard.add_parsers(commands)

    rescue = commands.add_parser(
        "recover",
        help="after a killed run, once none of its processes lives: repair torn state files, clear the stack's "
        "stale lock and pending operations",
    )
    rescue.add_argument("--stack", required=True)
    rescue.add_argument(
        "--exclusive",
        action="store_true",
        help="no other run of the stack can be alive (e.g. the deploy workflow's concurrency group): a lock from "
        "another host is stale",
    )
    rescue.set_defaults(run=recover_command)

    cienv = commands.add_parser(
        "ci-env",
        help="in CI: append to $GITHUB_ENV the secrets (JSON in TENANT_SECRETS_CI_SECRETS) that the stack's "
        "envAllow allows, masked; nothing else",
    )
    cienv_which = cienv.add_mutually_exclusive_group(required=True)
    cienv_which.add_argument("--stack")
    cienv_which.add_argument("--environment", help="every stack (shard) of this environment: the union of their lists")
    cienv.add_argument("--region", help="with --environment: that region's stacks only (an environment in regions)")
    cienv.add_argument("--repo", default=".", help="the trusted checkout whose stack files are read, default .")
    cienv.add_argument("--env-file", help="the file to append to (default: $GITHUB_ENV)")
    cienv.add_argument(
        "--suffix",
        help="pass the secret NAME_<SUFFIX> as NAME, and no unsuffixed one (a GitHub environment serving several "
        "tenants.yaml environments, e.g. pr-preview)",
    )
    cienv.set_defaults(run=ci_env_command)
    return root


def recover_command(args: argparse.Namespace) -> int:
    """After a killed run: repair torn state files, remove the stack's stale lock and drop its pending operations,
    when no process of the run lives."""
    from tenant_secrets.tenantctl import recover  # noqa: PLC0415 - only this command needs it

    try:
        done = recover.recover(
            args.stack,
            backend_url=os.environ.get("PULUMI_BACKEND_URL", ""),
            exclusive=args.exclusive,
            project=Path.cwd(),
            run=recover.pulumi_runner(Path.cwd()),
        )
    except recover.RecoverError as err:
        print(f"tenantctl recover: {err}", file=sys.stderr)
        return 1
    print(done.summary(args.stack))
    return 0


def ci_env_command(args: argparse.Namespace) -> int:
    """In CI: pass the allow-listed `{from: env}` values from the step's secrets JSON to the later steps."""
    from tenant_secrets.tenantctl import ci_env  # noqa: PLC0415 - only this command needs it

    return ci_env.run(
        os.environ,
        Path(args.repo),
        stack=args.stack,
        environment=args.environment,
        env_file=args.env_file,
        suffix=args.suffix,
        region=args.region,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    status: int = args.run(args)
    return status
