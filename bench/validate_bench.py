"""How long tenantctl's checks take on a large tenants.yaml: parse + validate, then plan each environment.

    .venv/bin/python -m bench.validate_bench [--tenants 1000,5000] [--repeat 5]

Prints figures, never fails on a time (DESIGN: benchmarks are not tests). The target is well under
a second for 1,000 tenants, the file a CI job validates on every pull request.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tenant_secrets import loader
from tenant_secrets.model import TenantsFile, plan_environment

ENVIRONMENTS = ("dev", "staging", "prod")


def synthetic_tenants(count: int) -> str:
    """A valid tenants.yaml of `count` tenants, each with every kind of source a real one has (15 lines each)."""
    lines = [
        "version: 1",
        "defaults:",
        "  storage: both",
        f"  environments: [{', '.join(ENVIRONMENTS)}]",
        "  secrets:",
        "    WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}}",
        "platform:",
        "  hono-api:",
        "    secrets:",
        '      EMAIL_FROM: {value: "Delivery Chat <onboarding@example.test>"}',
        "tenants:",
    ]
    for index in range(count):
        lines += [
            f"  - subdomain: tenant-{index:05d}",
            f"    name: Tenant {index}",
            f"    storage: {('both', 'database', 'infisical')[index % 3]}",
            "    secrets:",
            "      STRIPE_SECRET_KEY: {from: config}",
            f"      SENDGRID_API_KEY: {{from: env, var: TENANT_{index:05d}_SENDGRID_API_KEY}}",
            '      API_TOKEN: {generate: {bytes: 32, encoding: base64url}, rotation: "1"}',
            "      SMTP:",
            "        host: {value: smtp.example.test}",
            '        port: {value: "587"}',
            "        password: {from: config}",
            "    overrides:",
            "      dev:",
            "        secrets:",
            "          STRIPE_SECRET_KEY: {from: config, key: shared.stripe_test_key}",
        ]
    return "\n".join(lines) + "\n"


def _plan_all(tenants: TenantsFile) -> None:
    for environment in ENVIRONMENTS:
        plan_environment(tenants, environment)


def _timed(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", default="100,1000,5000", help="comma-separated sizes")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    parser_kind = "C (ruamel.yaml.clibz)" if loader._CLoader is not None else "pure Python"
    print(f"YAML parser: {parser_kind}; median of {args.repeat} runs")
    print(f"{'tenants':>8} {'lines':>8} {'load+validate':>14} {'plan x3':>9} {'per tenant':>11}")
    for count in (int(n) for n in args.tenants.split(",")):
        text = synthetic_tenants(count)
        tenants = loader.parse_tenants(text, "bench.yaml")
        load = _timed(args.repeat, partial(loader.parse_tenants, text, "bench.yaml"))
        plan = _timed(args.repeat, partial(_plan_all, tenants))
        print(f"{count:>8} {text.count(chr(10)):>8} {load:>13.3f}s {plan:>8.3f}s {1e6 * (load + plan) / count:>9.0f}µs")


if __name__ == "__main__":
    main()
