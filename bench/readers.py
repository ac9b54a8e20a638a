"""The readers' benchmark (issue 28): a tenant's secret read by each reader, beside the limits of this machine.

    python -m bench.readers [--samples 20000] [--rounds 10] [--no-node] [--join NAME='COMMAND'] [--json out.json]

One run starts its own services (a private PostgreSQL cluster and the local Infisical server), provisions
a tenant with a row and a tenant kept in Infisical only, and measures, per call, p50 and p99 of:

- the limits: a bare dictionary lookup, one bare loopback PostgreSQL round trip (``SELECT 1`` through
  psycopg as the reader uses it, and through libpq alone), one AES-256-GCM decryption of a stored
  envelope (hex parsing included, and the bare cipher call), one bare HTTP request to the Infisical server;
- the Python reader (``tenant_secrets.reader``): a cache hit with the access log on (a real logging
  handler writing each record to a file), a database miss (cache off: one round trip, the key by the row's
  key_version, the row binding checked, the decryption), and an Infisical fallback (cache off: the round
  trip, then one request), both for a tenant with a company row and for one kept in Infisical only;
- ``sustained``: the mean cost of a cache hit including the access log's delivery of its entry (the
  journal's batches, flushed at the end): what a process pays per read when it reads flat out.

The Node.js reader joins every run by default (``NODE_JOIN``: its bench, packages/tenant-secrets-reader/bench/bench.ts,
as `make setup` compiles it); ``--no-node`` leaves it out. Readers in other languages join the same run with
``--join NAME=COMMAND``: the command runs with the
services' coordinates in its environment (``TENANT_SECRETS_BENCH_*``, ``INFISICAL_*``; see
:func:`join_environment`) and prints one JSON object, ``{"cases": {case: {"samples_ns": [...]}}}`` or
``{"cases": {case: {"p50_us": x, "p99_us": y, "n": k}}}``, with the case names used here. Its rows are
shown beside Python's.

Figures, not tests: nothing here fails on a time. Each sample is one call timed with ``perf_counter_ns``,
less the timer's own median cost (shown as ``timer``). The cases are measured in rounds, one slice of each
in turn, so that the load of a shared machine weighs on the floors and the readers alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.designs import REPO
from bench.services import Postgres
from infisical_server.testing import RunningServer, sample_config, start_server
from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials
from tenant_secrets.reader import DsnConnections, KeyFolder, LoggerAccessLog, SecretReader, TenantFolders
from tenant_secrets.secret.envelope import Keyring, decrypt
from tenant_secrets.secret.keyfolder import published_values
from tenant_secrets.store import StoreSettings, TenantChange, apply_tenants, ensure_companies, ensure_roles, migrate

log = logging.getLogger("bench.readers")

ENVIRONMENT = "dev"
KEY = "STRIPE_SECRET_KEY"
DATABASE_TENANT, FALLBACK_TENANT, INFISICAL_ONLY = "bench-db", "bench-fallback", "bench-infisical-only"
COMPANY, FALLBACK_COMPANY = str(uuid.UUID(int=0xBE0C)), str(uuid.UUID(int=0xBE0D))
VALUE = "fake-bench-stripe-key-not-a-real-secret-0123456789abcdef"
APP_ROLE, APP_PASSWORD = "bench_reader_app", "fake-bench-app-password"

LIMITS = ("timer", "dict_lookup", "pg_round_trip", "pg_round_trip_libpq", "decrypt", "aes_gcm", "http_request")
NODE_BENCH = REPO / "packages" / "tenant-secrets-reader" / "dist" / "bench" / "bench.js"
NODE_JOIN = "node=node packages/tenant-secrets-reader/dist/bench/bench.js"
READER_CASES = ("cache_hit", "sustained", "database_miss", "infisical_fallback", "infisical_only")


@dataclass
class Figures:
    """One case of one reader: per-call samples in nanoseconds (or given percentiles)."""

    samples_ns: list[int] = field(default_factory=list)
    given: dict[str, float] | None = None

    def percentile(self, q: float) -> float:
        """The q-th percentile in microseconds."""
        if self.given is not None:
            return float(self.given[f"p{int(q)}_us"])
        ordered = sorted(self.samples_ns)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] / 1000

    @property
    def count(self) -> int:
        return int(self.given["n"]) if self.given is not None else len(self.samples_ns)


@dataclass(frozen=True)
class Services:
    postgres: Postgres
    server: RunningServer
    app_dsn: str
    credentials: InfisicalCredentials
    keyring: Keyring


# --- measuring -------------------------------------------------------------------------------------


def timer_cost(samples: int) -> int:
    """The median cost of the two timer calls around an empty statement (subtracted from every sample)."""
    clock = time.perf_counter_ns
    costs = []
    for _ in range(samples):
        start = clock()
        costs.append(clock() - start)
    return int(statistics.median(costs))


def measure(call: Callable[[], object], samples: int, *, warmup: int, overhead: int) -> Figures:
    clock = time.perf_counter_ns
    for _ in range(warmup):
        call()
    out = []
    for _ in range(samples):
        start = clock()
        call()
        out.append(max(0, clock() - start - overhead))
    return Figures(out)


# --- services --------------------------------------------------------------------------------------


@contextmanager
def services(root: Path) -> Iterator[Services]:
    """A cluster and an Infisical server of this run's own, provisioned for the three readings."""
    postgres = Postgres.start(root / "pg")
    server = start_server(root / "infisical", sample_config())
    try:
        dsn = postgres.create_database("bench_readers")
        settings = StoreSettings(create_companies_table=True)
        keyring = Keyring({1: os.urandom(32)}, active=1)
        with psycopg.connect(dsn, autocommit=True) as owner:
            migrate(owner, settings)
            ensure_companies(
                owner, settings, {DATABASE_TENANT: (COMPANY, None), FALLBACK_TENANT: (FALLBACK_COMPANY, None)}
            )
            ensure_roles(owner, settings, app_role=APP_ROLE, app_password=APP_PASSWORD)
            apply_tenants(owner, settings, {COMPANY: TenantChange({KEY: VALUE})}, keyring)
        ident = server.identity()
        credentials = InfisicalCredentials(server.url, ident["client_id"], ident["client_secret"], ident["project"])
        client = InfisicalClient(credentials)
        hex_keys = {v: k.hex() for v, k in keyring.keys.items()}
        client.apply_secrets(ENVIRONMENT, "/hono-api", upsert=published_values(hex_keys, versions=[1], current=1))
        for tenant in (FALLBACK_TENANT, INFISICAL_ONLY):
            client.apply_secrets(ENVIRONMENT, f"/tenants/{tenant}", upsert={KEY: VALUE})
        app_dsn = postgres.cluster.dsn(user=APP_ROLE, password=APP_PASSWORD, dbname="bench_readers")
        yield Services(postgres, server, app_dsn, credentials, keyring)
    finally:
        server.stop()
        postgres.stop()


def join_environment(svc: Services, samples: int) -> dict[str, str]:
    """What a joining reader is told: the application role's DSN, Infisical's coordinates, the tenants."""
    creds = svc.credentials
    return {
        "TENANT_SECRETS_BENCH_APP_DATABASE_URL": svc.app_dsn,
        "TENANT_SECRETS_BENCH_ENVIRONMENT": ENVIRONMENT,
        "TENANT_SECRETS_BENCH_KEY": KEY,
        "TENANT_SECRETS_BENCH_DATABASE_TENANT": DATABASE_TENANT,
        "TENANT_SECRETS_BENCH_FALLBACK_TENANT": FALLBACK_TENANT,
        "TENANT_SECRETS_BENCH_INFISICAL_ONLY_TENANT": INFISICAL_ONLY,
        "TENANT_SECRETS_BENCH_SAMPLES": str(samples),
        "TENANT_SECRETS_BENCH_CASES": ",".join(READER_CASES),
        "INFISICAL_SITE_URL": creds.site_url,
        "INFISICAL_PROJECT_ID": creds.project_id,
        "INFISICAL_CLIENT_ID": creds.client_id,
        "INFISICAL_CLIENT_SECRET": creds.client_secret,
    }


# --- the cases -------------------------------------------------------------------------------------


@dataclass
class Case:
    """One thing to time: ``call``, ``share`` of the run's samples (slow cases take fewer), and its figures."""

    call: Callable[[], object]
    share: float = 1.0
    figures: Figures = field(default_factory=Figures)


def interleaved(cases: dict[str, Case], samples: int, rounds: int, overhead: int) -> dict[str, Figures]:
    """Every case measured in ``rounds`` slices, one slice of each in turn: the machine is shared, and a load
    that comes and goes then weighs on the floors and on the readers alike, so their ratios hold."""
    for case in cases.values():
        measure(case.call, max(1, int(samples * case.share / 10)), warmup=0, overhead=overhead)  # warm up
    for _ in range(rounds):
        for case in cases.values():
            per_round = max(1, int(samples * case.share / rounds))
            case.figures.samples_ns += measure(case.call, per_round, warmup=0, overhead=overhead).samples_ns
    return {name: case.figures for name, case in cases.items()}


def run_cases(svc: Services, samples: int, rounds: int, overhead: int, log_file: Path) -> dict[str, dict[str, Figures]]:
    """The limits and the Python reader's cases, interleaved (fast and database ones together, then the
    Infisical ones with the bare HTTP request)."""
    access = logging.getLogger("tenant_secrets.reader.access")
    handler = logging.FileHandler(log_file)
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    table = {(f"tenant-{n}", KEY): f"fake-{n}" for n in range(1000)}
    probe = ("tenant-500", KEY)
    envelope, key = svc.keyring.encrypt(VALUE), svc.keyring.key(1)
    iv, ct, tag = (bytes.fromhex(part) for part in envelope.split(":"))
    cipher, sealed = AESGCM(key), ct + tag
    keyring = KeyFolder(svc.credentials, ENVIRONMENT)
    cached = SecretReader(database=DsnConnections(svc.app_dsn), keyring=keyring, access_logs=[LoggerAccessLog()])
    uncached = SecretReader(
        database=DsnConnections(svc.app_dsn),
        keyring=keyring,
        fallback=TenantFolders(svc.credentials, ENVIRONMENT),
        cache_ttl=0,
        access_logs=[LoggerAccessLog()],
    )
    try:
        with psycopg.connect(svc.app_dsn, autocommit=True) as conn, requests.Session() as session:
            pgconn = conn.pgconn
            url = f"{svc.server.url}/api/status"  # whatever it answers (404 here): one request, no auth, no work
            fast = interleaved(
                {
                    "dict_lookup": Case(lambda: table[probe]),
                    "decrypt": Case(lambda: decrypt(envelope, key)),
                    "aes_gcm": Case(lambda: cipher.decrypt(iv, sealed, None)),
                    "cache_hit": Case(lambda: cached.get(DATABASE_TENANT, KEY)),
                    "pg_round_trip": Case(lambda: conn.execute("SELECT 1").fetchone(), 0.1),
                    "pg_round_trip_libpq": Case(lambda: pgconn.exec_(b"SELECT 1"), 0.1),
                    "database_miss": Case(lambda: uncached.get(DATABASE_TENANT, KEY), 0.1),
                },
                samples,
                rounds,
                overhead,
            )
            slow = interleaved(
                {
                    "http_request": Case(lambda: session.get(url, timeout=10), 0.025),
                    "infisical_fallback": Case(lambda: uncached.get(FALLBACK_TENANT, KEY), 0.025),
                    "infisical_only": Case(lambda: uncached.get(INFISICAL_ONLY, KEY), 0.025),
                },
                samples,
                rounds,
                overhead,
            )
        cached.flush()
        started = time.perf_counter_ns()
        for _ in range(samples):
            cached.get(DATABASE_TENANT, KEY)
        cached.close()
        sustained = Figures([(time.perf_counter_ns() - started) // samples] * samples)
        uncached.close()
    finally:
        access.removeHandler(handler)
        handler.close()
    log.info("access log: %d lines written", log_file.read_text().count("\n"))
    floors = ("dict_lookup", "pg_round_trip", "pg_round_trip_libpq", "decrypt", "aes_gcm", "http_request")
    limits = {"timer": Figures([overhead] * samples)} | {n: f for n, f in (fast | slow).items() if n in floors}
    python = {n: f for n, f in (fast | slow).items() if n not in floors} | {"sustained": sustained}
    return {"limits": limits, "python": {name: python[name] for name in READER_CASES}}


def joined(svc: Services, name: str, command: str, samples: int) -> dict[str, Figures]:
    env = {**os.environ, **join_environment(svc, samples)}
    done = subprocess.run(shlex.split(command), env=env, capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode != 0:
        log.error("%s exited %d: %s", name, done.returncode, done.stderr[-2000:])
        return {}
    cases = json.loads(done.stdout)["cases"]
    out = {}
    for case, figures in cases.items():
        if "samples_ns" in figures:
            out[case] = Figures([int(s) for s in figures["samples_ns"]])
        else:
            out[case] = Figures(given={k: float(v) for k, v in figures.items()})
    return out


# --- the report ------------------------------------------------------------------------------------


def render(results: dict[str, dict[str, Figures]]) -> str:
    lines = ["| reader | case | p50 (us) | p99 (us) | calls |", "| --- | --- | ---: | ---: | ---: |"]
    for reader, cases in results.items():
        for case, figures in cases.items():
            p50, p99 = figures.percentile(50), figures.percentile(99)
            lines.append(f"| {reader} | {case} | {p50:.2f} | {p99:.2f} | {figures.count} |")
    lines.append("")
    lines += targets(results)
    return "\n".join(lines)


def targets(results: dict[str, dict[str, Figures]]) -> list[str]:
    """Issue 28's targets: a cache hit at most 1 us p50 (Python; 0.5 us for Node), a database miss within
    1.5x of one round trip plus one decryption."""
    floor = results["limits"]
    budget = floor["pg_round_trip"].percentile(50) + floor["decrypt"].percentile(50)
    out = [f"database miss floor: one round trip + one decryption = {budget:.1f} us p50 (Python's client)"]
    for reader, hit_target in (("python", 1.0), ("node", 0.5)):
        cases = results.get(reader)
        if not cases:
            continue
        if "cache_hit" in cases:
            hit = cases["cache_hit"].percentile(50)
            verdict = "meets" if hit <= hit_target else "misses"
            out.append(f"{reader}: cache hit {hit:.2f} us p50 (access log on) {verdict} the {hit_target} us target")
        own = budget
        if "pg_round_trip" in cases and "decrypt" in cases:  # a joined reader's floor, through its own client
            own = cases["pg_round_trip"].percentile(50) + cases["decrypt"].percentile(50)
        if "database_miss" in cases:
            ratio = cases["database_miss"].percentile(50) / own
            verdict = "meets" if ratio <= 1.5 else "misses"
            out.append(f"{reader}: database miss {ratio:.2f}x its floor ({own:.1f} us), {verdict} the 1.5x target")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.readers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20000, help="calls per fast case (misses: /10, Infisical: /40)")
    parser.add_argument("--rounds", type=int, default=10, help="slices each case is measured in, in turn")
    parser.add_argument("--join", action="append", default=[], metavar="NAME=COMMAND", help="another reader's bench")
    parser.add_argument("--no-node", action="store_true", help="leave out the Node.js reader (joined by default)")
    parser.add_argument("--json", type=Path, help="write the samples' percentiles here too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not args.no_node:
        if not NODE_BENCH.exists():
            parser.error(f"{NODE_BENCH.relative_to(REPO)} is missing: run `make setup`, which compiles it")
        args.join.insert(0, NODE_JOIN)
    results: dict[str, dict[str, Figures]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-readers-") as tmp, services(Path(tmp)) as svc:
        overhead = timer_cost(args.samples)
        results |= run_cases(svc, args.samples, args.rounds, overhead, Path(tmp) / "access.log")
        for spec in args.join:
            name, _, command = spec.partition("=")
            results[name] = joined(svc, name, command, args.samples)
    machine = f"{platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()})"
    print(f"Readers on {machine}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print(render(results))
    if args.json:
        summary: dict[str, Any] = {
            reader: {
                c: {"p50_us": f.percentile(50), "p99_us": f.percentile(99), "n": f.count} for c, f in cases.items()
            }
            for reader, cases in results.items()
        }
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
