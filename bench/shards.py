"""The sharded benchmark (issue 14): one environment of N tenants in S shard stacks, on the real engine.

    python -m bench.shards --tenants 10000 --shards 8,16 [--apply 3] [--parallel 2]
    make bench-shards SHARD_ARGS="--tenants 2000 --shards 8 --apply 8"

For each shard count S, in a fresh project (a git repository, as CI checks it out), a fresh database and a
fresh Infisical server: the environment's S stacks are made the documented way (the owner `dev` by hand,
`tenantctl shards init` for the others), then, each step through the `pulumi` / `tenantctl` commands CI runs:

- first rollout: the owner shard alone (it publishes the master key the others wait for), then shards
  2..A (`--apply A`) `--parallel` at a time;
- a no-op `pulumi preview` of shard 2;
- a pull request that changes one tenant of shard 2: `tenantctl affected --base HEAD` then
  `tenantctl plan --stack <each affected>` (program, engine and plan comment), timed as one;
- a master key rotation: every shard's config gets `masterKeys.v2` and `activeKeyVersion: 2` (not timed),
  the owner shard's `pulumi up` re-encrypts every row, then shard 2's `pulumi up`.

Each engine command is one process tree sampled on its own (peak RSS per stack, CPU); Infisical requests by
endpoint and PostgreSQL statements per step; the load average before each step. The rollout of the shards not
applied (A < S) is extrapolated from the applied ones, which says so in the output. Ups skip the file
backend's checkpoints (PULUMI_SKIP_CHECKPOINTS=true, docs/performance.md) unless `--checkpoints`.

Figures, not tests: nothing here fails on a time. JSON to bench/results/shards-*.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import ratelimits, tenants
from bench.designs import PASSPHRASE, REPO, Keys, toolchain_path
from bench.probe import MemorySampler
from bench.services import Infisical, Postgres
from dev.project import lay_out
from tenant_secrets.stack.shards import shard_of, stack_name

log = logging.getLogger("bench.shards")
NS = "tenant-secrets"


@dataclass
class Timed:
    """One command's wall time, peak resident memory of its process tree, CPU, exit code."""

    command: str
    wall_s: float
    peak_mib: float
    cpu_s: float
    code: int
    output: str
    """stdout only (what a workflow reads)."""


@dataclass
class Project:
    """The project checked out under `root`, its stacks in a file backend, the services it talks to."""

    root: Path
    env: dict[str, str]

    @property
    def work_dir(self) -> Path:
        return self.root / "project"

    def run(self, *command: str, check: bool = True) -> Timed:
        """Run a command in the project, sampling its process tree; the output is kept for the log."""
        started = time.perf_counter()
        with (self.root / "log.txt").open("a") as logfile:
            logfile.write(f"$ {' '.join(_masked(command))}\n")
        process = subprocess.Popen(
            command,
            cwd=self.work_dir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            restore_signals=True,
        )
        with MemorySampler(exclude=(), root=process.pid) as memory:
            output, errors = process.communicate()
        wall = time.perf_counter() - started
        with (self.root / "log.txt").open("a") as logfile:
            logfile.write(output[-4000:] + errors[-4000:] + "\n")
        if check and process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {(output + errors).strip()[-600:]}")
        return Timed(
            " ".join(command),
            round(wall, 2),
            round(memory.peak_bytes / 2**20, 1),
            memory.engine_cpu_s(),
            process.returncode,
            output,
        )

    def pulumi(self, *args: str, check: bool = True) -> Timed:
        return self.run("pulumi", *args, "--non-interactive", check=check)

    def tenantctl(self, *args: str, check: bool = True) -> Timed:
        return self.run("python", "-m", "tenant_secrets.tenantctl", *args, check=check)

    def git(self, *args: str) -> None:
        subprocess.run(["git", *args], cwd=self.work_dir, check=True, capture_output=True)


def _masked(command: Sequence[str]) -> list[str]:
    """The command as the log shows it: no config value (the keys are fake, but a log shows no key)."""
    return [a.split("=", 1)[0] + "=..." if "=" in a and not a.startswith("-") else a for a in command]


def _layout(project: Project, count: int) -> None:
    """The project as a repository checkout: Pulumi.yaml, __main__.py, the code linked, tenants.yaml."""
    work = project.work_dir
    work.mkdir(parents=True)
    lay_out(work)
    (work / "tenants.yaml").write_text(tenants.tenants_yaml(count))


def _make_stacks(project: Project, shards: int, keys: Keys) -> list[str]:
    """The owner stack `dev` with the bench's config, then `tenantctl shards init` for the others."""
    owner = stack_name(tenants.ENVIRONMENT, 1)
    project.pulumi("stack", "init", owner, "--secrets-provider", "passphrase")
    project.pulumi(
        "config", "set-all", "--stack", owner, "--path",
        "--plaintext", f"{NS}:environment={tenants.ENVIRONMENT}",
        "--plaintext", f"{NS}:createCompanies=true",
        "--plaintext", f"{NS}:retainOnDelete=false",
        "--plaintext", f"{NS}:shard=1/{shards}",
        "--secret", f"{NS}:derivationKey={keys.derivation}",
        "--secret", f"{NS}:masterKeys.v1={keys.v1}",
    )  # fmt: skip
    project.tenantctl("shards", "init", "--environment", tenants.ENVIRONMENT, "--count", str(shards))
    return [stack_name(tenants.ENVIRONMENT, k) for k in range(1, shards + 1)]


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


class Steps:
    """The measured steps of one shard count, in order, each on the state the previous one left."""

    def __init__(self, project: Project, pg: Postgres, infisical: Infisical, dbname: str) -> None:
        self.project, self.pg, self.infisical, self.dbname = project, pg, infisical, dbname
        self.results: list[dict[str, Any]] = []

    def measure(self, step: str, commands: Sequence[Sequence[str]], parallel: int = 1) -> list[Timed]:
        """Run `commands` (`parallel` at a time) as one step: each command's figures, and the step's requests."""
        self.infisical.reset()
        self.pg.reset_statements()
        load = _load()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            timed = list(pool.map(lambda c: self.project.run(*c), commands))
        wall = time.perf_counter() - started
        requests = self.infisical.counts()
        statements = self.pg.statements(self.dbname)
        self.results.append(
            {
                "step": step,
                "load_before": load,
                "wall_s": round(wall, 2),
                "commands": [
                    {"command": t.command, "wall_s": t.wall_s, "peak_mib": t.peak_mib, "cpu_s": round(t.cpu_s, 1)}
                    for t in timed
                ],
                "infisical": {"requests": sum(requests.values()), "by_endpoint": dict(sorted(requests.items()))},
                "postgres": {"statements": statements["calls"], "writes": statements["writes"]},
            }
        )
        log.info(
            "%-28s load %s  %7.1f s  [%s]  infisical %d req  sql %d stmt",
            step,
            load,
            wall,
            ", ".join(f"{t.wall_s:.1f} s {t.peak_mib:.0f} MiB" for t in timed),
            sum(requests.values()),
            statements["calls"],
        )
        return timed


def _up(stack: str) -> list[str]:
    return ["pulumi", "up", "--yes", "--skip-preview", "--stack", stack, "--non-interactive"]


def run_shards(
    count: int, shards: int, *, root: Path, pg: Postgres, keys: Keys, env: dict[str, str], apply: int, parallel: int
) -> dict[str, Any]:
    """All steps for one shard count; returns its figures."""
    dbname = f"bench_shards_{shards}"
    dsn = pg.create_database(dbname)
    home = root / f"shards-{shards}"
    try:
        infisical = Infisical.start(home / "infisical")
        try:
            (home / "backend").mkdir(parents=True)
            project = Project(
                home,
                {
                    **env,
                    **infisical.env,
                    "DATABASE_URL": dsn,
                    "PULUMI_BACKEND_URL": f"file://{home / 'backend'}",
                    "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
                },
            )
            _layout(project, count)
            stacks = _make_stacks(project, shards, keys)
            project.git("init", "-q")
            project.git("add", "-A")
            project.git("-c", "user.name=bench", "-c", "user.email=bench@example.test", "commit", "-qm", "base")
            sizes = {str(k): 0 for k in range(1, shards + 1)}  # str: as JSON keeps them
            for index in range(count):
                sizes[str(shard_of(tenants.subdomain(index), shards))] += 1
            steps = Steps(project, pg, infisical, dbname)
            applied = stacks[: max(2, min(apply, shards))]
            steps.measure("first up, owner shard", [_up(applied[0])])
            steps.measure(f"first up, shards 2-{len(applied)}", [_up(s) for s in applied[1:]], parallel)
            steps.measure("no-op preview, shard 2", [["pulumi", "preview", "--stack", applied[1], "--non-interactive"]])
            changed = next(i for i in range(count) if shard_of(tenants.subdomain(i), shards) == 2)
            (project.work_dir / "tenants.yaml").write_text(
                tenants.tenants_yaml(count, changed=True, changed_tenant=changed)
            )
            affected = steps.measure(
                "pull request: affected", [["python", "-m", "tenant_secrets.tenantctl", "affected", "--base", "HEAD"]]
            )
            touched = affected[0].output.split()
            plans = steps.measure(
                "pull request: plan",
                [["python", "-m", "tenant_secrets.tenantctl", "plan", "--stack", s] for s in touched],
            )
            comment = "\n".join(p.output for p in plans)
            # the rotation: every shard's config (not timed), the owner re-encrypts every row, then shard 2
            (project.work_dir / "tenants.yaml").write_text(tenants.tenants_yaml(count))
            for stack in stacks:
                project.pulumi(
                    "config", "set-all", "--stack", stack, "--path",
                    "--secret", f"{NS}:masterKeys.v2={keys.v2}", "--plaintext", f"{NS}:activeKeyVersion=2",
                )  # fmt: skip
            steps.measure("rotation: owner shard up", [_up(applied[0])])
            steps.measure("rotation: shard 2 up", [_up(applied[1])])
            return {
                "tenants": count,
                "shards": shards,
                "applied": len(applied),
                "tenants_per_shard": sizes,
                "changed_tenant": tenants.subdomain(changed),
                "affected": touched,
                "plan_comment_chars": len(comment),
                "steps": steps.results,
            }
        finally:
            infisical.stop()
    finally:
        pg.drop_database(dbname)


# --- extrapolation -----------------------------------------------------------------------------------------


def _step(result: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(s for s in result["steps"] if s["step"].startswith(prefix))


def extrapolate(result: dict[str, Any], runners: int) -> dict[str, Any]:
    """The whole environment from the measured shards, assuming `runners` runners like this machine, each
    running one shard at a time as fast as the applied non-owner shards ran here (two at once on 2 cores, so
    an upper bound for a runner of its own), and the owner shard first."""
    shards, applied = result["shards"], result["applied"]
    owner = _step(result, "first up, owner")
    others = _step(result, "first up, shards")
    other_times = [c["wall_s"] for c in others["commands"]]
    per_other = sum(other_times) / len(other_times)
    waves = math.ceil((shards - 1) / runners)
    measured_tenants = sum(result["tenants_per_shard"][str(k)] for k in range(1, applied + 1))
    scale = result["tenants"] / measured_tenants
    requests: dict[str, int] = {}
    for step in (owner, others):
        for route, n in step["infisical"]["by_endpoint"].items():
            requests[route] = requests.get(route, 0) + (n if "/auth/" in route else round(n * scale))
    logins = [r for r in requests if "/auth/" in r]
    for route in logins:  # one login per stack run
        requests[route] = round(requests[route] * shards / applied)
    preview = _step(result, "no-op preview")["commands"][0]["wall_s"]
    return {
        "runners": runners,
        "first_rollout_s": round(owner["wall_s"] + waves * per_other, 1),
        "noop_preview_environment_s": round(math.ceil(shards / runners) * preview, 1),
        "first_rollout_requests": sum(requests.values()),
        "free_plan_least_s": ratelimits.wait_seconds(requests, "free"),
        "pro_plan_least_s": ratelimits.wait_seconds(requests, "pro"),
        "assumption": (
            f"owner shard {owner['wall_s']} s, then ceil({shards - 1}/{runners}) = {waves} waves of the mean measured"
            f" non-owner shard ({per_other:.1f} s); requests scaled by tenants ({scale:.2f}x of the {applied}"
            " applied shards)"
        ),
    }


def render(document: dict[str, Any]) -> str:
    lines = []
    for result in document["results"]:
        sizes = result["tenants_per_shard"]
        lines += [
            f"\n### {result['tenants']} tenants in {result['shards']} shards ({result['applied']} applied; "
            f"{min(sizes.values())}-{max(sizes.values())} tenants per shard)\n",
            "| step | load before | wall s | per stack: wall s / peak MiB | Infisical req | SQL stmt |",
            "| --- | ---: | ---: | --- | ---: | ---: |",
        ]
        for step in result["steps"]:
            per = ", ".join(f"{c['wall_s']:.1f} / {c['peak_mib']:.0f}" for c in step["commands"])
            lines.append(
                f"| {step['step']} | {step['load_before']} | {step['wall_s']:.1f} | {per} | "
                f"{step['infisical']['requests']} | {step['postgres']['statements']} |"
            )
        pr = sum(_step(result, p)["wall_s"] for p in ("pull request: affected", "pull request: plan"))
        lines.append(
            f"\nPull request changing {result['changed_tenant']}: affected {result['affected']}, {pr:.1f} s in all."
        )
        for runners in document["runners"]:
            x = extrapolate(result, runners)
            lines.append(
                f"Extrapolated, {runners} runners: first rollout {x['first_rollout_s']} s, no-op preview of the "
                f"environment {x['noop_preview_environment_s']} s, {x['first_rollout_requests']} Infisical requests "
                f"(least {x['free_plan_least_s'] / 60:.0f} min free, {x['pro_plan_least_s'] / 60:.0f} min Pro); "
                f"{x['assumption']}."
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shards", description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10000, help="tenants in the environment (default 10000)")
    parser.add_argument("--shards", default="8,16", help="comma-separated shard counts (default 8,16)")
    parser.add_argument("--apply", type=int, default=3, help="apply shards 1..A of each count (default 3; A >= 2)")
    parser.add_argument("--parallel", type=int, default=2, help="non-owner shards applied at once (default 2)")
    parser.add_argument("--runners", default="10", help="runner counts to extrapolate to (default 10)")
    parser.add_argument("--checkpoints", action="store_true", help="keep the file backend's checkpoints")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where the JSON goes")
    parser.add_argument("--render", type=Path, metavar="JSON", help="print the tables of a stored result")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (stacks, log.txt)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # see bench/run.py: children must not ignore it
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    root = Path(tempfile.mkdtemp(prefix="tenant-secrets-bench-shards-"))
    env = {
        **os.environ,
        "PATH": toolchain_path(),
        "PULUMI_HOME": str(root / "pulumi-home"),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PYTHONPATH": str(REPO),
        **tenants.environment_variables(args.tenants),
        **({} if args.checkpoints else {"PULUMI_SKIP_CHECKPOINTS": "true"}),
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = []
    started = time.perf_counter()
    try:
        pg = Postgres.start(root / "pg")
        try:
            keys = Keys()
            for shards in [int(n) for n in args.shards.split(",") if n]:
                results.append(
                    run_shards(
                        args.tenants, shards, root=root, pg=pg, keys=keys, env=env, apply=args.apply,
                        parallel=args.parallel,
                    )
                )  # fmt: skip
        finally:
            pg.stop()
    finally:
        if args.keep:
            log.info("kept %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    document = {
        "started": stamp,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "checkpoints": args.checkpoints,
        "cpus": os.cpu_count(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False, cwd=REPO
        ).stdout.strip(),
        "runners": [int(n) for n in args.runners.split(",") if n],
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"shards-{stamp}.json"
    path.write_text(json.dumps(document, indent=1))
    print(render(document))
    print(f"\nJSON: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


if __name__ == "__main__":
    main()
