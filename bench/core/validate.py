"""How long tenantctl's checks take on a large tenants.yaml: parse + validate, then plan each environment.

    .venv/bin/python -m bench.core.validate [--tenants 1000,5000] [--repeat 5] [--hostile]

Prints figures, never fails on a time (DESIGN: benchmarks are not tests). The target is well under
a second for 1,000 tenants, the file a CI job validates on every pull request.

--hostile also times the files of issue 19 and larger variants of them (nesting, characters a
reviewer cannot see, a 10 MB line): each must be refused in well under a second, by the loader and
by `tenantctl validate` end to end (interpreter start included).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tenant_secrets.tenants_file import loader
from tenant_secrets.tenants_file.model import TenantsFile, TenantsFileError, plan_environment

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


def hostile_files() -> dict[str, str]:
    """What an attacker's pull request could put in tenants.yaml (issue 19), and larger variants."""
    head = "version: 1\ndefaults:\n  storage: both\n  environments: [dev]\n"
    tenant = head + "tenants:\n  - subdomain: a1\n"
    half = loader.MAX_DEPTH // 2 + 1
    return {
        "list nested 5,000 deep": head + "tenants: " + "[" * 5000 + "]" * 5000 + "\n",
        "list nested 1,000,000 deep": head + "tenants: " + "[" * 10**6 + "]" * 10**6 + "\n",
        "source nested 3,000 deep": tenant + "    secrets:\n      K: " + "{a: " * 3000 + "x" + "}" * 3000 + "\n",
        "block mappings 1,500 deep": head + "".join(" " * n + "a:\n" for n in range(1500)),
        "aliases nesting past the limit": (
            f"a: &a {'[' * half}{']' * half}\nb: &b {'[' * (half - 1)}*a{']' * (half - 1)}\nc: *b\n"
        ),
        "NUL in a value": tenant + "    name: Acme\x00 Corp\n",
        "a control character on 100,000 lines": head + "tenants:\n" + "  # \x01\n" * 100_000,
        "right-to-left override in a comment": tenant + "    # \u202e }x{ :egarots\n",
        "a 10 MB line (storage)": tenant + "    storage: " + "x" * 10**7 + "\n",
        "a 10 MB line (explicit key)": tenant + "    ? " + "x" * 10**7 + "\n    : 1\n",
        "20,000 bad items": head + "tenants:\n" + "  - 1\n" * 20_000,
    }


def _refuse(text: str) -> str:
    try:
        loader.parse_tenants(text, "tenants.yaml")
    except TenantsFileError as err:
        return f"{len(err.issues)} issue(s), the first: {err.issues[0]}"
    return "valid"


def _validate_end_to_end(path: Path) -> tuple[float, str]:
    """`tenantctl validate FILE` as a process: wall time, and its first line (what a user sees)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tenant_secrets.tenantctl", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    traceback = " TRACEBACK" if "Traceback" in done.stderr else ""
    return elapsed, f"exit {done.returncode}{traceback}"


def hostile(repeat: int) -> None:
    print(f"\nhostile files (median of {repeat}; tenantctl: best of 3, interpreter start included)")
    print(f"{'file':<38} {'size':>9} {'loader':>8} {'tenantctl':>10}  result")
    with tempfile.TemporaryDirectory() as directory:
        for name, text in hostile_files().items():
            path = Path(directory) / "tenants.yaml"
            path.write_text(text, encoding="utf-8", newline="")
            load = _timed(repeat, partial(_refuse, text))
            runs = [_validate_end_to_end(path) for _ in range(3)]
            status = runs[0][1]
            shown = _refuse(text)
            print(f"{name:<38} {len(text.encode()):>9,} {load:>7.3f}s {min(t for t, _ in runs):>9.3f}s  {status}")
            print(f"{'':<38} {shown[:150]}")


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
    parser.add_argument("--hostile", action="store_true", help="also time the hostile files of issue 19")
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
    if args.hostile:
        hostile(args.repeat)


if __name__ == "__main__":
    main()
