"""`python -m bench.provider_floor`: the floor as a dynamic provider against the floor as a provider plugin.

    python -m bench.provider_floor --sizes 1000,5000 --repeats 2     # the timings (checkpoints skipped)
    python -m bench.provider_floor --review                          # what a reviewer sees, import, 3 folders

For each size N, repeat and mode (interleaved, so that a burst of load from the shared machine hits
both), a fresh stack in a file backend under a temp dir, through the Automation API: the first `up`,
a no-op `preview`, and an `up` that changes one value of one folder. Per step: wall time, the load
average before it, CPU seconds per process role, the peak resident memory of the engine's process
tree, the state file's size and how much of it is the pickled `__provider`. JSON goes to
bench/results/ (gitignored), a Markdown table to stdout. Figures, not tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from bench.designs import REPO, Design, Keys
from bench.probe import TICK, MemorySampler, machine_busy_ticks, self_ticks, wait_quiet
from bench.provider_floor import store
from bench.provider_floor.dynamic import DYNAMIC_TOKEN
from bench.provider_floor.plugin import PACKAGE, TOKEN
from bench.provider_floor.program import inputs
from bench.run import _environment
from bench.tenants import subdomain

log = logging.getLogger("bench.provider_floor")
MODES = ("dynamic", "plugin")
STEPS = ("first_up", "noop_preview", "change_one")
PROVIDER_ROLES = ("dynamic provider", "provider plugin")


class ProviderFloor(Design):
    """The project bench/provider_floor/program.py in a temp folder; `name` is the mode."""

    project_name = "bench-provider-floor"
    _spec: dict[str, Any]

    def layout(self) -> None:
        self._pulumi_yaml(self.project_name, "Benchmark: dynamic provider or provider plugin")
        self._serve_plugin(PACKAGE, "bench.provider_floor.plugin")
        (self.work_dir / "__main__.py").write_text(
            "import pulumi\n\nfrom bench.provider_floor.program import main\n\npulumi.run(main)\n"
        )
        self._spec = {"mode": self.name, "tenants": 0, "changed": False}

    def configure(self, stack: auto.Stack) -> None:
        """Nothing: the spec file says everything."""

    def write_input(self, count: int, *, changed: bool, **more: Any) -> None:
        """The spec: `more` may name folders to adopt (`import`), or switch `mode` with `alias_dynamic`."""
        self._spec.update(tenants=count, changed=changed, **more)
        (self.work_dir / "floor.json").write_text(json.dumps(self._spec))

    def provider_bytes(self) -> int:
        """How much of the state is the pickled, encrypted `__provider` (inputs and outputs)."""
        state = json.loads(self.state_file().read_text()) if self.state_file().exists() else {}
        total = 0
        for resource in state.get("checkpoint", {}).get("latest", {}).get("resources", []):
            for section in ("inputs", "outputs"):
                total += len(json.dumps(resource.get(section, {}).get("__provider", "")))
        return total


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def measure(design: ProviderFloor, count: int, repeat: int, step: str, action: Callable[[], Any]) -> dict[str, Any]:
    waited = wait_quiet(self_ticks, limit=30.0)
    load = _loadavg()
    busy0, self0 = machine_busy_ticks(), self_ticks()
    with MemorySampler(exclude=()) as memory:
        start = time.perf_counter()
        action()
        wall = time.perf_counter() - start
    engine = memory.engine_cpu_s()
    foreign = max(0.0, (machine_busy_ticks() - busy0) / TICK - max(engine, (self_ticks() - self0) / TICK))
    result = memory.result()
    state = design.state_file()
    figures: dict[str, Any] = {
        "mode": design.name,
        "resources": count,
        "repeat": repeat,
        "step": step,
        "wall_s": round(wall, 2),
        "engine_cpu_s": round(engine, 2),
        "foreign_cpu_s": round(foreign, 2),
        "load_before": load,
        "waited_for_quiet_s": waited,
        "cpu_s_by_role": result["cpu_s_by_role"],
        "hwm_mib_by_role": result["hwm_mib_by_role"],
        "peak_tree_mib": result["peak_tree_mib"],
        "state_bytes": state.stat().st_size if state.exists() else 0,
        "provider_bytes": design.provider_bytes(),
    }
    log.info(
        "%-7s N=%-5d #%d %-12s %7.2f s  cpu %6.2f s (foreign %5.2f, load %.2f)  %6.1f MiB  state %6.0f KiB",
        design.name,
        count,
        repeat,
        step,
        wall,
        engine,
        foreign,
        load,
        figures["peak_tree_mib"],
        figures["state_bytes"] / 1024,
    )
    return figures


def _design(mode: str, root: Path, extra_env: dict[str, str]) -> ProviderFloor:
    store_dir = root / "store"
    store_dir.mkdir(parents=True)
    return ProviderFloor(mode, root, {store.STORE_ENV: str(store_dir), **extra_env}, Keys())


def run_once(
    mode: str, count: int, repeat: int, root: Path, *, extra_env: dict[str, str], last_step: str
) -> list[dict[str, Any]]:
    """The steps in order on one fresh stack, up to and including `last_step`."""
    design = _design(mode, root, extra_env)
    stack = design.create()
    up: Callable[[], Any] = lambda: stack.up(color="never")  # noqa: E731
    actions: dict[str, Callable[[], Any]] = {
        "first_up": up,
        "noop_preview": lambda: stack.preview(color="never"),
        "change_one": up,
    }
    try:
        out = []
        for step in STEPS[: STEPS.index(last_step) + 1]:
            design.write_input(count, changed=step == "change_one")
            out.append(measure(design, count, repeat, step, actions[step]))
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def table(steps: list[dict[str, Any]]) -> str:
    """Median of the repeats (and the range) per size, step and mode."""
    rows = [
        "| N | step | mode | runs | wall s (range) | engine CPU s | peak RSS MiB | provider process MiB | state KiB "
        "| of it `__provider` KiB | load before |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keys = sorted(
        {(s["resources"], s["step"], s["mode"]) for s in steps}, key=lambda k: (k[0], STEPS.index(k[1]), k[2])
    )
    for count, step, mode in keys:
        runs = [s for s in steps if (s["resources"], s["step"], s["mode"]) == (count, step, mode)]
        walls = [r["wall_s"] for r in runs]
        provider = max(
            (v for r in runs for role, v in r["hwm_mib_by_role"].items() if role in PROVIDER_ROLES),
            default=0.0,
        )
        rows.append(
            f"| {count} | {step} | {mode} | {len(runs)} "
            f"| {statistics.median(walls):.1f} ({min(walls):.1f}-{max(walls):.1f}) "
            f"| {statistics.median(r['engine_cpu_s'] for r in runs):.1f} "
            f"| {statistics.median(r['peak_tree_mib'] for r in runs):.0f} | {provider:.0f} "
            f"| {runs[-1]['state_bytes'] / 1024:.0f} | {runs[-1]['provider_bytes'] / 1024:.0f} "
            f"| {', '.join(format(r['load_before'], '.1f') for r in runs)} |"
        )
    return "\n".join(rows)


def review(root: Path) -> dict[str, Any]:
    """For 3 folders per mode: `pulumi preview --diff` of a one-value change, the `import` option, `pulumi import`."""
    findings: dict[str, Any] = {}
    for mode in MODES:
        design = _design(mode, root / mode, {})
        stack = design.create()
        design.write_input(3, changed=False)
        stack.up(color="never")
        design.write_input(3, changed=True)
        preview = stack.preview(color="never", diff=True)
        as_json = design.cli("preview", "--json")
        changed = [s for s in json.loads(as_json.stdout).get("steps", []) if s.get("op") == "update"]
        reported = [{k: s.get(k) for k in ("urn", "diffReasons", "detailedDiff")} for s in changed]
        # adoption with the `import` resource option: a folder that exists (recorded) but not in the state
        existing = {"owner": subdomain(3), "environment": "dev", "path": f"/tenants/{subdomain(3)}"}
        store_dir = Path(design.env[store.STORE_ENV])
        os.environ[store.STORE_ENV] = str(store_dir)
        store.write(store.resource_id(existing), {k: v for k, v in inputs(3, True).items() if k in store.PLAIN})
        design.write_input(4, changed=True, **{"import": {subdomain(3): store.resource_id(existing)}})
        try:
            adopted = stack.up(color="never").stdout
        except auto.CommandError as error:
            adopted = f"FAILED: {error}"
        # `pulumi import` from the CLI, for a fifth recorded folder
        fifth = {k: v for k, v in inputs(4, True).items() if k in store.PLAIN}
        store.write(store.resource_id(fifth), fifth)
        token = TOKEN if mode == "plugin" else DYNAMIC_TOKEN
        cli = design.cli("import", token, "cli-imported", store.resource_id(fifth), "--yes", "--generate-code=false")
        findings[mode] = {
            "preview_diff": preview.stdout,
            "preview_json_update_steps": reported,
            "import_option": adopted,
            "cli_import": {"exit": cli.returncode, "output": cli.stdout + cli.stderr},
        }
        print(f"\n===== {mode}: preview --json, update steps =====\n{json.dumps(reported, indent=1)}")
        shown = (
            ("preview --diff", preview.stdout),
            ("import option", adopted),
            ("pulumi import", cli.stdout + cli.stderr),
        )
        for title, text in shown:
            print(f"\n===== {mode}: {title} =====\n{text}")
    return findings


def migrate(root: Path) -> dict[str, Any]:
    """A stack of 3 folders made with the dynamic provider, moved to the plugin by an alias of the old type."""
    design = _design("dynamic", root / "migrate", {})
    stack = design.create()
    design.write_input(3, changed=False)
    stack.up(color="never")
    design.write_input(3, changed=False, mode="plugin", alias_dynamic=True)
    preview = stack.preview(color="never", diff=True)
    up = stack.up(color="never")
    after = stack.preview(color="never")
    state = json.loads(design.state_file().read_text())["checkpoint"]["latest"]["resources"]
    left = [r["urn"] for r in state if "__provider" in r.get("outputs", {}) or "__provider" in r.get("inputs", {})]
    findings = {
        "preview_diff": preview.stdout,
        "up_summary": up.summary.resource_changes,
        "next_preview": after.change_summary,
        "types": sorted({r["type"] for r in state}),
        "resources_still_holding_a_pickled_provider": left,
    }
    print(f"\n===== migration dynamic -> plugin (alias) =====\n{preview.stdout}")
    print(json.dumps(findings, indent=1, default=str))
    return findings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.provider_floor", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000", help="comma-separated resource counts (default 1000)")
    parser.add_argument("--modes", default=",".join(MODES), help="dynamic, plugin or both (default both)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per size and mode (default 2)")
    parser.add_argument(
        "--engine-env",
        action="append",
        default=["PULUMI_SKIP_CHECKPOINTS=true"],
        metavar="NAME=VALUE",
        help="an environment variable for every engine run (default PULUMI_SKIP_CHECKPOINTS=true, as the bench)",
    )
    parser.add_argument("--last-step", choices=STEPS, default=STEPS[-1], help="stop each stack after this step")
    parser.add_argument("--review", action="store_true", help="show what a reviewer sees and try imports instead")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where the JSON goes")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as bench/run.py: plugins get SIGINT
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    root = Path(tempfile.mkdtemp(prefix="tenant-secrets-provider-floor-"))
    extra = dict(item.split("=", 1) for item in args.engine_env)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with _environment(root, {}):
            if args.review:
                document: dict[str, Any] = {"review": review(root), "migration": migrate(root)}
            else:
                steps: list[dict[str, Any]] = []
                for count in (int(n) for n in args.sizes.split(",") if n):
                    for repeat in range(1, args.repeats + 1):
                        for mode in (m for m in args.modes.split(",") if m):
                            steps += run_once(
                                mode,
                                count,
                                repeat,
                                root / f"{mode}-{count}-{repeat}",
                                extra_env=extra,
                                last_step=args.last_step,
                            )
                document = {"engine_env": args.engine_env, "steps": steps}
                print(table(steps))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    path = args.out / f"provider-floor-{stamp}.json"
    path.write_text(json.dumps({"started": stamp, **document}, indent=1))
    print(f"\nJSON: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


main()
