// The Node reader's figures for the readers' benchmark (issue 28): `make bench-readers` runs it, compiled, in
// every run (bench/readers.py's NODE_JOIN, through its `--join` mechanism); the harness starts the services and
// passes their coordinates in TENANT_SECRETS_BENCH_* and INFISICAL_*. Prints one JSON object,
// {"cases": {case: {"samples_ns": [...]}}}, with the harness's case names. Figures, not tests.
import { createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import pg from "pg";

import { AccessLog, Infisical, KeyFolder, Keyring, StreamAccessSink, Tables, TenantFolders, TenantSecretReader, decrypt, lookupQuery, tenantRef } from "../src/index.js";

const env = process.env;
const need = (name: string): string => {
  const value = env[name];
  if (!value) throw new Error(`${name} is not set: run through the readers' benchmark harness`);
  return value;
};
const samples = Number(env.TENANT_SECRETS_BENCH_SAMPLES ?? 20000);
const key = need("TENANT_SECRETS_BENCH_KEY");
const environment = need("TENANT_SECRETS_BENCH_ENVIRONMENT");
const now = process.hrtime.bigint;

function timerCost(): number {
  const costs: number[] = [];
  for (let i = 0; i < 10000; i++) {
    const start = now();
    costs.push(Number(now() - start));
  }
  return costs.sort((a, b) => a - b)[costs.length >> 1]!;
}
const overhead = timerCost();

async function measure(call: () => unknown, n: number, warmup: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await call();
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const start = now();
    await call();
    out[i] = Math.max(0, Number(now() - start) - overhead);
  }
  return out;
}

function measureSync(call: () => unknown, n: number, warmup: number): number[] {
  for (let i = 0; i < warmup; i++) call();
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const start = now();
    call();
    out[i] = Math.max(0, Number(now() - start) - overhead);
  }
  return out;
}

const infisical = Infisical.fromEnv(env);
const pool = new pg.Pool({ connectionString: need("TENANT_SECRETS_BENCH_APP_DATABASE_URL"), max: 1 });
const keys = new KeyFolder(infisical, environment);
const logFile = join(tmpdir(), `tenant-secrets-bench-node-${process.pid}.log`);
const logStream = createWriteStream(logFile);
const accessLog = new AccessLog([new StreamAccessSink(logStream)]);
const cases: Record<string, { samples_ns: number[] }> = {};

// the limits, in this language
cases.timer = { samples_ns: new Array(samples).fill(overhead) };
const table = new Map(Array.from({ length: 1000 }, (_, n) => [`tenant-${n}\0${key}`, `fake-${n}`]));
cases.dict_lookup = { samples_ns: measureSync(() => table.get(`tenant-500\0${key}`), samples, 1000) };
cases.pg_round_trip = { samples_ns: await measure(() => pool.query("SELECT 1"), Math.floor(samples / 10), 200) };
const keyring: Keyring = await keys.keyringWith(1);
const envelope = keyring.encrypt("fake-bench-value-not-a-real-secret-0123456789abcdef");
cases.decrypt = { samples_ns: measureSync(() => decrypt(envelope, keyring.key(keyring.active)), samples, 1000) };

// the reader
const reader = new TenantSecretReader({ database: pool, keyring: keys, fallback: new TenantFolders(infisical, environment), accessLog });
const dbTenant = need("TENANT_SECRETS_BENCH_DATABASE_TENANT");
cases.cache_hit = { samples_ns: await measure(() => reader.get(dbTenant, key), samples, 1000) };
const started = now();
for (let i = 0; i < samples; i++) await reader.get(dbTenant, key);
await accessLog.flush();
cases.sustained = { samples_ns: new Array(samples).fill(Math.round(Number(now() - started) / samples)) };
const uncached = new TenantSecretReader({ database: pool, keyring: keys, fallback: new TenantFolders(infisical, environment), accessLog, cacheTtlMs: 0 });
cases.database_miss = { samples_ns: await measure(() => uncached.get(dbTenant, key), Math.floor(samples / 10), 200) };
// where a miss goes: the lookup's query alone, and a miss whose access log does no work
const tables = new Tables();
const lookup = lookupQuery(tables, tenantRef(dbTenant), key);
cases.lookup_query = { samples_ns: await measure(() => pool.query(lookup), Math.floor(samples / 10), 200) };
const quiet = new TenantSecretReader({ database: pool, keyring: keys, accessLog: new AccessLog([{ write: async () => {} }]), cacheTtlMs: 0 });
cases.database_miss_quiet_log = { samples_ns: await measure(() => quiet.get(dbTenant, key), Math.floor(samples / 10), 200) };
const client = await pool.connect();
cases.pg_round_trip_client = { samples_ns: await measure(() => client.query("SELECT 1"), Math.floor(samples / 10), 200) };
cases.lookup_query_client = { samples_ns: await measure(() => client.query(lookup), Math.floor(samples / 10), 200) };
const onClient = new TenantSecretReader({ database: client, keyring: keys, accessLog: new AccessLog([{ write: async () => {} }]), cacheTtlMs: 0 });
cases.database_miss_client = { samples_ns: await measure(() => onClient.get(dbTenant, key), Math.floor(samples / 10), 200) };
// the same two statements, prepared once on the connection (a candidate to cut the server's planning)
const [first, second] = lookup.split(";\n") as [string, string];
await client.query(
  `PREPARE ts_bench_company AS ${first.replace(pg.escapeLiteral(dbTenant), "$1")};\n` +
    `PREPARE ts_bench_secret AS ${second.replace(pg.escapeLiteral(key), "$1")}`,
);
const executed = `EXECUTE ts_bench_company(${pg.escapeLiteral(dbTenant)});\nEXECUTE ts_bench_secret(${pg.escapeLiteral(key)})`;
cases.lookup_prepared_client = { samples_ns: await measure(() => client.query(executed), Math.floor(samples / 10), 200) };
client.release();
const fallbackTenant = need("TENANT_SECRETS_BENCH_FALLBACK_TENANT");
cases.infisical_fallback = { samples_ns: await measure(() => uncached.get(fallbackTenant, key), Math.floor(samples / 20), 50) };
const onlyTenant = need("TENANT_SECRETS_BENCH_INFISICAL_ONLY_TENANT");
cases.infisical_only = { samples_ns: await measure(() => uncached.get(onlyTenant, key), Math.floor(samples / 20), 50) };

// the pool's own cost, measured again once everything is warm
cases.pg_round_trip_warm = { samples_ns: await measure(() => pool.query("SELECT 1"), Math.floor(samples / 10), 200) };
cases.pg_connect_query_release = {
  samples_ns: await measure(async () => {
    const c = await pool.connect();
    try {
      await c.query("SELECT 1");
    } finally {
      c.release();
    }
  }, Math.floor(samples / 10), 200),
};
const bare = new pg.Client({ connectionString: need("TENANT_SECRETS_BENCH_APP_DATABASE_URL") });
await bare.connect();
cases.pg_round_trip_bare_client = { samples_ns: await measure(() => bare.query("SELECT 1"), Math.floor(samples / 10), 200) };
await bare.end();

await reader.close();
await pool.end();
logStream.end();
process.stdout.write(JSON.stringify({ reader: "node", node: process.version, cases }));
