"""The part of a sharded pull request that does not need the engine: reading the whole tenants.yaml.

    .venv/bin/python -m bench.core.pull_request [--tenants 10000] [--shards 16] [--repeat 5]

On the sharded benchmark's file (bench/tenants.py: N tenants, 5 secrets each, storage both), times

- `load_tenants_file` and `plan_environment` in this process (best and median of `--repeat`);
- `tenantctl affected --base HEAD` end to end, interpreter start included, in a git checkout of the file
  with S shard stacks (Pulumi.dev.yaml, Pulumi.dev-02.yaml, ...) where one tenant of shard 2 changed, as
  `python -m bench.shards` makes its pull request; its output must name that shard alone.

Prints wall and CPU times (the CPU moves less with other work on the machine) with the load average
before each; never fails on a time (benchmarks are not tests).
docs/performance.md, "Shards: 10,000 tenants", "What dominates", has the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import tenants
from tenant_secrets.stack.shards import shard_of, stack_name
from tenant_secrets.tenants_file.loader import load_tenants_file
from tenant_secrets.tenants_file.model import plan_environment


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def _cpu() -> float:
    """CPU seconds of this process and its finished children: less moved by other work than the wall."""
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def _times(run: Callable[[], object], repeat: int) -> str:
    walls, cpus = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), _cpu()
        run()
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu)
    median = statistics.median
    return f"wall best {min(walls):.2f} s, median {median(walls):.2f} s; CPU median {median(cpus):.2f} s; of {repeat}"


def _checkout(root: Path, count: int, shards: int) -> str:
    """A git checkout of N tenants in S shard stacks of `dev`, then one tenant of shard 2 changed; its name."""
    for index in range(1, shards + 1):
        shard = f"  tenant-secrets:environment: dev\n  tenant-secrets:shard: {index}/{shards}\n"
        (root / f"Pulumi.{stack_name(tenants.ENVIRONMENT, index)}.yaml").write_text(f"config:\n{shard}")
    (root / "tenants.yaml").write_text(tenants.tenants_yaml(count))
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@example.test"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    changed = next(i for i in range(count) if shard_of(tenants.subdomain(i), shards) == 2)
    (root / "tenants.yaml").write_text(tenants.tenants_yaml(count, changed=True, changed_tenant=changed))
    return stack_name(tenants.ENVIRONMENT, 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.core.pull_request", description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10000, help="tenants in the file (default 10000)")
    parser.add_argument("--shards", type=int, default=16, help="shard stacks of the environment (default 16)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each, best and median shown (default 5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-pull-request-") as directory:
        root = Path(directory)
        expected = _checkout(root, args.tenants, args.shards)
        path = root / "tenants.yaml"
        size = path.stat().st_size / 1e6
        print(f"{args.tenants:,} tenants ({size:.1f} MB), {args.shards} shards, {os.cpu_count()} cpus")
        print(f"load_tenants_file                 {_load()}  {_times(lambda: load_tenants_file(path), args.repeat)}")
        loaded = load_tenants_file(path)
        plan = _times(lambda: plan_environment(loaded, tenants.ENVIRONMENT), args.repeat)
        print(f"plan_environment                  {_load()}  {plan}")
        command = [sys.executable, "-m", "tenant_secrets.tenantctl", "affected", "--base", "HEAD", "--repo", str(root)]
        outputs: list[str] = []

        def affected() -> None:
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            outputs.append(done.stdout.strip())

        print(f"tenantctl affected --base HEAD    {_load()}  {_times(affected, args.repeat)}")
        if set(outputs) != {expected}:
            raise SystemExit(f"tenantctl affected named {sorted(set(outputs))}, not {expected}")


if __name__ == "__main__":
    main()
