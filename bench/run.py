"""The engine benchmark (issue 7): this project's design against the engine's floor and a naive design.

    python -m bench [--sizes 10,100] [--designs floor,ours,naive] [--last-step rotate_key]
                    [--engine-env PULUMI_SKIP_CHECKPOINTS=true] [--profile ours:100:first_up]
    python -m bench --sizes 1000 --designs floor --buckets 1,16,64,256   # the floor with buckets (issue 29)
    python -m bench --sizes 1000 --designs '' --buckets 64-packed,64-packed-plugin   # served by a plugin, or not
    python -m bench --sizes 1000 --designs floor-b64-packed-plugin,ours-b64   # ours with buckets, beside its floor
    python -m bench --render bench/results/engine-*.json      # the tables of stored results

For each size N (tenants, 5 secrets each, storage both) and each design, in a fresh stack (file
backend in a temp dir), a fresh database on one private PostgreSQL cluster and a fresh local
Infisical server, through the Automation API: the first `up`, a no-op `preview`, a no-op `up`, an
`up` that changes one value, an `up` that adds one tenant, and a master key rotation. Each step
records wall time, peak memory of the engine's process tree, Infisical requests by endpoint,
PostgreSQL statements (pg_stat_statements, reset before each step) and round trips (a counting
proxy), the size of the state file, and the CPU time of the engine's processes and of the rest of
the machine (which is shared: a step waits up to --quiet-wait seconds for other load to pass).
Results go to bench/results/ (JSON, gitignored) and Markdown tables on stdout; docs/performance.md
holds the latest and what they mean.

Figures, not tests: nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from bench import report, tenants
from bench.designs import (
    DESIGNS,
    REPO,
    Design,
    Keys,
    bucket_design,
    bucket_design_name,
    design_class,
    toolchain_path,
)
from bench.probe import TICK, MemorySampler, machine_busy_ticks, self_ticks, tree_ticks, wait_quiet
from bench.profiling import Profiler
from bench.services import CountingProxy, Infisical, Postgres, infisical_server

log = logging.getLogger("bench")

STEPS = ("first_up", "noop_preview", "noop_up", "change_one", "add_tenant", "rotate_key")


@dataclass
class Run:
    """What one design at one size talks to while its steps are measured."""

    design: Design
    stack: auto.Stack
    count: int
    dbname: str
    pg: Postgres
    proxy: CountingProxy
    infisical: Infisical
    profiler: Profiler | None
    quiet_wait: float

    def _service_ticks(self) -> int:
        return tree_ticks(self.infisical.pid) + tree_ticks(self.pg.pid)

    def measure(self, step: str, action: Callable[[], Any]) -> dict[str, Any]:
        self.infisical.reset()
        self.pg.reset_statements()
        self.proxy.reset()
        waited = wait_quiet(lambda: self_ticks() + self._service_ticks(), limit=self.quiet_wait)
        busy0, services0, self0 = machine_busy_ticks(), self._service_ticks(), self_ticks()
        profiling = self.profiler is not None and self.profiler.wants(self.design.name, self.count, step)
        exclude = {self.infisical.pid}
        if self.profiler is not None:  # py-spy's own processes are not the engine's
            self.profiler.live_pids.add(self.infisical.pid)
            exclude = self.profiler.live_pids
        with (
            MemorySampler(exclude=exclude) as memory,
            self.profiler.attach() if self.profiler and profiling else contextlib.nullcontext(),
        ):
            start = time.perf_counter()
            result = action()
            wall = time.perf_counter() - start
        busy, services = machine_busy_ticks() - busy0, self._service_ticks() - services0
        engine = memory.engine_cpu_s()
        bench_self = (self_ticks() - self0) / TICK  # the bench process, and the engine processes it reaped
        foreign = max(0.0, busy / TICK - services / TICK - max(engine, bench_self))
        requests = self.infisical.counts()
        statements = self.pg.statements(self.dbname)
        state = self.design.state_file()
        figures: dict[str, Any] = {
            "design": self.design.name,
            "tenants": self.count,
            "step": step,
            "profiled": profiling,
            "wall_s": round(wall, 3),
            "cpu_s": {
                "engine": round(engine, 2),
                "services": round(services / TICK, 2),
                "foreign": round(foreign, 2),
                "waited_for_quiet_s": waited,
            },
            "engine_ops": _ops(result),
            "infisical": {
                "requests": sum(requests.values()),
                "writes": sum(n for r, n in requests.items() if not r.startswith("GET") and "/auth/" not in r),
                "by_endpoint": dict(sorted(requests.items())),
            },
            "postgres": {
                "statements": statements["calls"],
                "writes": statements["writes"],
                "exec_ms": statements["exec_ms"],
                "top": statements["top"],
                **self.proxy.snapshot(),
            },
            "memory": memory.result(),
            "state_bytes": state.stat().st_size if state.exists() else 0,
        }
        log.info(
            "%-5s N=%-5d %-13s %7.2f s  cpu %6.2f s (foreign %5.2f)  infisical %4d req  sql %4d stmt %4d rt"
            "  %6.1f MiB  state %7.0f KiB",
            self.design.name,
            self.count,
            step,
            wall,
            engine,
            foreign,
            figures["infisical"]["requests"],
            statements["calls"],
            figures["postgres"]["round_trips"],
            figures["memory"]["peak_tree_mib"],
            figures["state_bytes"] / 1024,
        )
        return figures

    def steps(self, last: str) -> list[dict[str, Any]]:
        """The steps in order, each on the state the previous one left, up to and including `last`."""
        design, stack, count = self.design, self.stack, self.count
        up: Callable[[], Any] = lambda: stack.up(color="never")  # noqa: E731
        edits: dict[str, Callable[[], None]] = {
            "first_up": lambda: design.write_input(count, changed=False),
            "change_one": lambda: design.write_input(count, changed=True),
            "add_tenant": lambda: design.write_input(count + 1, changed=True),
            "rotate_key": lambda: design.rotate(stack),
        }
        out = []
        for step in STEPS[: STEPS.index(last) + 1]:
            edits.get(step, lambda: None)()
            action = (lambda: stack.preview(color="never")) if step == "noop_preview" else up
            out.append(self.measure(step, action))
        return out


def _ops(result: Any) -> dict[str, int]:
    """The engine's own count of resource operations (create, update, same, ...)."""
    summary = getattr(result, "summary", None)
    changes = summary.resource_changes if summary is not None else getattr(result, "change_summary", None)
    return {str(getattr(k, "value", k)): int(v) for k, v in (changes or {}).items()}


@contextlib.contextmanager
def _environment(root: Path, extra: dict[str, str]) -> Iterator[None]:
    """The process environment every Automation API call inherits."""
    saved = dict(os.environ)
    os.environ.update(
        {
            "PATH": toolchain_path(),
            "PULUMI_HOME": str(root / "pulumi-home"),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PYTHONPATH": str(REPO),
            **extra,
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_design(
    name: str,
    count: int,
    *,
    root: Path,
    pg: Postgres,
    proxy: CountingProxy,
    keys: Keys,
    profiler: Profiler | None,
    quiet_wait: float,
    last_step: str,
) -> list[dict[str, Any]]:
    dbname = f"bench_{name}_{count}".replace("-", "_")
    dsn = pg.create_database(dbname)
    proxied = dsn.replace(f":{pg.cluster.port}/", f":{proxy.port}/")
    try:
        with infisical_server(root / "infisical") as infisical:
            env = {"DATABASE_URL": proxied, **infisical.env, **tenants.environment_variables(count + 1)}
            factory = design_class(name)
            if factory is None:
                raise ValueError(f"unknown design {name}")
            design = factory(name, root / f"{name}-{count}", env, keys)
            stack = design.create()
            design.prepare_database(dsn)
            return Run(design, stack, count, dbname, pg, proxy, infisical, profiler, quiet_wait).steps(last_step)
    finally:
        pg.drop_database(dbname)
        shutil.rmtree(root / f"{name}-{count}", ignore_errors=True)


def _versions() -> dict[str, str]:
    """What was measured: the engine, and the commit of the code under test (with uncommitted files)."""

    def run(*cmd: str) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO).stdout.strip()

    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "components", "tenant_secrets", "provider", "__main__.py"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    ).stdout
    return {
        "python": platform.python_version(),
        "pulumi": run("pulumi", "version"),
        "cpus": str(os.cpu_count()),
        "commit": run("git", "rev-parse", "--short", "HEAD"),
        "uncommitted": " ".join(line[3:] for line in dirty.splitlines()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100", help="comma-separated tenant counts (default 10,100)")
    parser.add_argument(
        "--designs",
        default="floor,ours,naive",
        help="which of floor, ours, naive to run, and designs with buckets by name: floor-b<B>, floor-b<B>-packed, "
        "floor-b<B>-packed-plugin, ours-b<B> (as --buckets names them)",
    )
    parser.add_argument(
        "--buckets",
        default="",
        metavar="B,...",
        help="also run the floor, or ours, with B tenants per resource on average (issue 29), e.g. 1,16,64,256: a "
        "fixed bucket count per stack, ceil(N / B) for the first step's N, a tenant's bucket sha256(subdomain) mod "
        "that count; B-packed packs a tenant's entry in one JSON string as the product does, B-packed-plugin serves "
        "that by a provider plugin; B-ours is ours with its stack setting tenant-secrets:buckets at that count "
        "(design ours-b<B>; bench/designs.py)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where the JSON goes")
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="DESIGN:N:STEP",
        help="sample that step's Python processes with py-spy (e.g. ours:1000:first_up); repeatable",
    )
    parser.add_argument(
        "--engine-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for every engine run, to try a knob (e.g. PULUMI_SKIP_CHECKPOINTS=true)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="before each step, wait up to this long for other processes to leave the CPUs (default 10)",
    )
    parser.add_argument(
        "--last-step",
        choices=STEPS,
        default=STEPS[-1],
        help="stop each design after this step (the steps build on each other, so only a prefix can run)",
    )
    parser.add_argument(
        "--render",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="print the tables of earlier results instead of running (several files of one engine setting merge)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (stacks, logs)")
    args = parser.parse_args(argv)
    # A shell that starts us in the background (`cmd &` without job control) makes us ignore SIGINT,
    # and an ignored signal stays ignored in every process we start. The engine stops its plugins
    # with SIGINT and waits a few seconds before it kills one that did not stop: about 5 s more per
    # engine command, which is not the engine's cost. Restore the default, so children get it too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.render:
        documents = [json.loads(path.read_text()) for path in args.render]
        print(report.render(report.merge(documents)))
        print("\n" + report.render_buckets(documents))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    sizes = [int(n) for n in args.sizes.split(",") if n]
    designs = [d for d in args.designs.split(",") if d]
    items = [b for b in args.buckets.split(",") if b]
    bad = [item for item in items if bucket_design(bucket_design_name(item)) is None]
    if bad:
        parser.error(
            f"--buckets: {', '.join(bad)}: expected comma-separated whole numbers of at least 1, each with an optional "
            "-packed, -plugin, -packed-plugin or -ours, e.g. 1,16,64,256 or 64-packed,64-packed-plugin,64-ours"
        )
    per_bucket = [bucket_design_name(item) for item in items]
    designs += per_bucket
    unknown = [d for d in designs if design_class(d) is None]
    if unknown:
        parser.error(
            f"unknown design(s) {', '.join(unknown)}; choose from {', '.join(DESIGNS)}, floor-b<B>[-packed][-plugin] "
            "or ours-b<B>"
        )

    root = Path(tempfile.mkdtemp(prefix="tenant-secrets-bench-"))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    profiler = Profiler(args.profile, args.out / f"profile-{stamp}") if args.profile else None
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        with _environment(root, dict(item.split("=", 1) for item in args.engine_env)):
            pg = Postgres.start(root / "pg")
            proxy = CountingProxy(pg.cluster.port).start()
            keys = Keys()
            try:
                for count in sizes:
                    for name in designs:
                        results += run_design(
                            name,
                            count,
                            root=root,
                            pg=pg,
                            proxy=proxy,
                            keys=keys,
                            profiler=profiler,
                            quiet_wait=args.quiet_wait,
                            last_step=args.last_step,
                        )
            finally:
                proxy.stop()
                pg.stop()
    finally:
        if args.keep:
            log.info("kept %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    document = {
        "started": stamp,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "sizes": sizes,
        "designs": designs,
        "engine_env": args.engine_env,
        "secrets_per_tenant": tenants.SECRETS_PER_TENANT,
        "versions": _versions(),
        "steps": results,
        "derived": report.derive(results),
    }
    path = args.out / f"engine-{stamp}.json"
    path.write_text(json.dumps(document, indent=1))
    (args.out / "latest.json").write_text(json.dumps(document, indent=1))
    print(report.render(document))
    print("\n" + report.render_buckets([document]))
    print(f"\nJSON: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    sys.stdout.flush()
