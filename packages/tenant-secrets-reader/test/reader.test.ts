// The reader against the real services (arranged in Python by tests/reader/test_node_reader.py): what a
// service relies on, checked as the service would see it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { InfisicalSDK } from "@infisical/sdk";
import pg from "pg";

import {
  AccessLog,
  Infisical,
  KeyFolder,
  Keyring,
  ReaderError,
  SecretNotFoundError,
  SourceUnavailableError,
  TableAccessSink,
  TenantFolders,
  TenantSecretReader,
  UndecryptableSecretError,
  UnknownTenantError,
  bind,
  type AccessEvent,
} from "../src/index.js";
import { CountingPool, allValues, needsServices, world } from "./world.js";

const w = world!;
const quiet = () => new AccessLog([{ write: async () => {} }]);

/** Assert `promise` rejects with `kind`, and that the error shows none of the world's values. */
async function refused(promise: Promise<unknown>, kind: new (...args: never[]) => ReaderError): Promise<ReaderError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof kind, `expected ${kind.name}, got ${String(error)}`);
    const shown = `${error.message}\n${error.stack}\n${JSON.stringify(error)}`;
    for (const value of allValues(w)) assert.ok(!shown.includes(value), `${kind.name} shows a value`);
    return error;
  }
  assert.fail(`expected ${kind.name}, but a value was returned`);
}

describe("the reader against the database and Infisical", { skip: needsServices }, () => {
  let app: CountingPool;
  let owner: pg.Pool;
  let provisioner: pg.Pool;
  let infisical: Infisical;

  before(() => {
    app = new CountingPool(w.appDsn);
    owner = new pg.Pool({ connectionString: w.ownerDsn, max: 2 });
    provisioner = new pg.Pool({ connectionString: w.provisionerDsn, max: 2 });
    infisical = new Infisical(w.infisical);
  });
  after(async () => {
    await Promise.all([app.end(), owner.end(), provisioner.end()]);
  });

  function reader(options: Partial<ConstructorParameters<typeof TenantSecretReader>[0]> = {}): TenantSecretReader {
    return new TenantSecretReader({ database: app, keyring: new KeyFolder(infisical, w.environment), accessLog: quiet(), ...options });
  }

  it("two tenants each read their own value, by subdomain or by company id in any case: one round trip a miss, none a hit", async () => {
    const one = new CountingPool(w.appDsn, 1);
    try {
      const r = reader({ database: one });
      assert.equal(await r.get("globex", "STRIPE_SECRET_KEY"), w.values.globex!.STRIPE_SECRET_KEY);
      assert.equal(one.queries, 2, "a new connection's first lookup prepares its statements (one more round trip)");
      r.invalidate();
      for (const [tenant, values] of Object.entries(w.values)) {
        for (const [key, value] of Object.entries(values)) {
          const start: number = one.queries;
          assert.equal(await r.get(tenant, key), value);
          assert.equal(one.queries - start, 1, "a miss is one round trip");
          assert.equal(await r.getTenantSecret(tenant, key), value);
          assert.equal(await r.get(w.companies[tenant]!.toUpperCase(), key), value);
          assert.equal(one.queries - start, 2, "a hit is none; the id is its own cache entry");
        }
      }
    } finally {
      await one.end();
    }
  });

  it("concurrent misses of one secret share one lookup", async () => {
    const r = reader();
    await reader().get("acme", "STRIPE_SECRET_KEY"); // the pool's connection has its statements
    const start = app.queries;
    const values = await Promise.all(Array.from({ length: 20 }, () => r.get("acme", "STRIPE_SECRET_KEY")));
    assert.deepEqual(new Set(values), new Set([w.values.acme!.STRIPE_SECRET_KEY]));
    assert.equal(app.queries - start, 1);
  });

  it("a connection whose statements are gone, or that has only some of them, still reads", async () => {
    const one = new CountingPool(w.appDsn, 1);
    try {
      const r = reader({ database: one, cacheTtlMs: 0 });
      assert.equal(await r.get("acme", "STRIPE_SECRET_KEY"), w.values.acme!.STRIPE_SECRET_KEY);
      const [{ name }] = (await one.pool.query("SELECT name FROM pg_prepared_statements WHERE name LIKE 'tenant_secrets_secret_%'")).rows;
      await one.pool.query(`DEALLOCATE ${name}`); // two of three left: preparing all fails (42P05)
      assert.equal(await r.get("acme", "STRIPE_SECRET_KEY"), w.values.acme!.STRIPE_SECRET_KEY);
      await one.pool.query("DEALLOCATE ALL");
      assert.equal(await r.get("acme", "STRIPE_SECRET_KEY"), w.values.acme!.STRIPE_SECRET_KEY);
      const start: number = one.queries;
      assert.equal(await r.get("acme", "STRIPE_SECRET_KEY"), w.values.acme!.STRIPE_SECRET_KEY);
      assert.equal(one.queries - start, 1, "prepared again");
    } finally {
      await one.end();
    }
  });

  it("an unknown tenant, an id no company has and a text that is no subdomain are UnknownTenantError; an unknown key SecretNotFoundError", async () => {
    const r = reader();
    await refused(r.get("nobody", "STRIPE_SECRET_KEY"), UnknownTenantError);
    await refused(r.get("11111111-2222-4333-8444-555555555555", "STRIPE_SECRET_KEY"), UnknownTenantError);
    const start = app.queries;
    await refused(r.get("Acme Corp", "STRIPE_SECRET_KEY"), UnknownTenantError);
    assert.equal(app.queries, start, "no query for a text that is no subdomain");
    const missing = await refused(r.get("acme", "NO_SUCH_KEY"), SecretNotFoundError);
    assert.equal(missing.companyId, w.companies.acme);
    await assert.rejects(r.get("acme", "BAD\0KEY"), RangeError);
  });

  it("a ciphertext swapped between two tenants (with its binding) is refused in both rows, and served again once put back", async () => {
    const swap = `UPDATE company_secrets s SET secret_value_encrypted = o.secret_value_encrypted, binding = o.binding
      FROM company_secrets o WHERE s.secret_key = 'STRIPE_SECRET_KEY' AND o.secret_key = 'STRIPE_SECRET_KEY' AND s.company_id <> o.company_id`;
    await owner.query(swap);
    try {
      const r = reader();
      for (const tenant of ["acme", "globex"]) {
        const error = await refused(r.get(tenant, "STRIPE_SECRET_KEY"), UndecryptableSecretError);
        assert.match(error.message, /not written for it/);
      }
    } finally {
      await owner.query(swap);
    }
    assert.equal(await reader().get("acme", "STRIPE_SECRET_KEY"), w.values.acme!.STRIPE_SECRET_KEY);
  });

  it("a row without a binding is refused unless allowUnbound", async () => {
    const [{ binding }] = (await owner.query("SELECT binding FROM company_secrets WHERE company_id = $1 AND secret_key = 'SENDGRID_API_KEY'", [w.companies.acme])).rows;
    await owner.query("UPDATE company_secrets SET binding = NULL WHERE company_id = $1 AND secret_key = 'SENDGRID_API_KEY'", [w.companies.acme]);
    try {
      const error = await refused(reader().get("acme", "SENDGRID_API_KEY"), UndecryptableSecretError);
      assert.match(error.message, /no binding yet/);
      assert.equal(await reader({ allowUnbound: true }).get("acme", "SENDGRID_API_KEY"), w.values.acme!.SENDGRID_API_KEY);
    } finally {
      await owner.query("UPDATE company_secrets SET binding = $2 WHERE company_id = $1 AND secret_key = 'SENDGRID_API_KEY'", [w.companies.acme, binding]);
    }
  });

  it("a row on a key version the kept keyring lacks makes the key folder be read again at once", async () => {
    const keys = new KeyFolder(infisical, w.environment, { ttlMs: 3_600_000 });
    const r = reader({ keyring: keys, cacheTtlMs: 0 });
    assert.equal(await r.get("globex", "WEBHOOK_SIGNING_SECRET"), w.values.globex!.WEBHOOK_SIGNING_SECRET);
    assert.equal(keys.reads, 1);
    // a rotation begins: v2 is published beside v1, then this row is re-encrypted onto v2 (bound, by this package)
    const sdk = new InfisicalSDK({ siteUrl: w.infisical.siteUrl });
    await sdk.auth().universalAuth.login({ clientId: w.infisical.clientId, clientSecret: w.infisical.clientSecret });
    await sdk.secrets().createSecret("MASTER_ENCRYPTION_KEY_V2", {
      environment: w.environment,
      projectId: w.infisical.projectId,
      secretPath: "/hono-api",
      secretValue: w.masterKeys["2"]!,
    });
    const both = Keyring.fromHex(w.masterKeys, 2);
    const [row] = (await owner.query("SELECT version FROM company_secrets WHERE company_id = $1 AND secret_key = 'WEBHOOK_SIGNING_SECRET'", [w.companies.globex])).rows;
    const ciphertext = both.encrypt(w.values.globex!.WEBHOOK_SIGNING_SECRET!);
    const binding = bind(both, { companyId: w.companies.globex!, secretKey: "WEBHOOK_SIGNING_SECRET", keyVersion: 2, version: row.version, ciphertext });
    await owner.query(
      "UPDATE company_secrets SET secret_value_encrypted = $3, key_version = 2, binding = $4 WHERE company_id = $1 AND secret_key = $2",
      [w.companies.globex, "WEBHOOK_SIGNING_SECRET", ciphertext, binding],
    );
    assert.equal(await r.get("globex", "WEBHOOK_SIGNING_SECRET"), w.values.globex!.WEBHOOK_SIGNING_SECRET);
    assert.equal(keys.reads, 2, "read again once, before its ttl");
    assert.equal(await r.get("globex", "WEBHOOK_SIGNING_SECRET"), w.values.globex!.WEBHOOK_SIGNING_SECRET);
    assert.equal(keys.reads, 2);
  });

  it("the Infisical folder is the fallback, also for a tenant with no company row; a tenant in neither store is unknown", async () => {
    const r = reader({ fallback: new TenantFolders(infisical, w.environment) });
    for (const [tenant, values] of Object.entries(w.infisicalOnly)) {
      for (const [key, value] of Object.entries(values)) assert.equal(await r.get(tenant, key), value);
    }
    await refused(r.get("initech", "NO_SUCH_KEY"), SecretNotFoundError); // its folder exists: the tenant is known
    await refused(r.get("nobody", "STRIPE_SECRET_KEY"), UnknownTenantError);
    await refused(r.get("acme", "NO_SUCH_KEY"), SecretNotFoundError);
    const rows = await owner.query("SELECT 1 FROM company_secrets WHERE secret_key = 'ONLY_IN_INFISICAL'");
    assert.equal(rows.rowCount, 0, "no write-back unless asked");
  });

  it("write-back stores a value found only in Infisical as a bound row on the active key, and never replaces a row", async () => {
    const logged: AccessEvent[] = [];
    const r = reader({
      fallback: new TenantFolders(infisical, w.environment),
      writeBack: provisioner,
      accessLog: new AccessLog([{ write: async (events) => void logged.push(...events) }]),
    });
    const value = w.infisicalOnly.acme!.ONLY_IN_INFISICAL!;
    assert.equal(await r.get("acme", "ONLY_IN_INFISICAL"), value);
    const [stored] = (await owner.query("SELECT * FROM company_secrets WHERE secret_key = 'ONLY_IN_INFISICAL'")).rows;
    const folder = Keyring.fromHex(w.masterKeys, 2); // the key folder's current version is still 1
    assert.equal(stored.key_version, 1);
    assert.equal(stored.version, 1);
    assert.equal(folder.decrypt(stored.secret_value_encrypted, 1), value);
    assert.equal(stored.binding, bind(folder, { companyId: w.companies.acme!, secretKey: "ONLY_IN_INFISICAL", keyVersion: 1, version: 1, ciphertext: stored.secret_value_encrypted }));
    r.invalidate("acme");
    assert.equal(await r.get("acme", "ONLY_IN_INFISICAL"), value);
    await r.close();
    assert.deepEqual(logged.map((e) => [e.source, e.outcome, e.wroteBack]), [["infisical", "found", true], ["database", "found", false]]);
  });

  it("every access goes to the access table in batches, named as the function requires, never with a value", async () => {
    const log = new AccessLog([new TableAccessSink(app.pool)], { batchSize: 50, flushMs: 10 });
    const r = reader({ accessLog: log });
    const since = (await owner.query("SELECT coalesce(max(id), 0) AS id FROM company_secret_access")).rows[0].id;
    await r.get("acme", "STRIPE_SECRET_KEY");
    await r.get("acme", "STRIPE_SECRET_KEY");
    await r.get(w.companies.globex!, "STRIPE_SECRET_KEY");
    await refused(r.get("nobody", "STRIPE_SECRET_KEY"), UnknownTenantError);
    await r.close();
    const { rows } = await owner.query(
      "SELECT tenant, company_id::text AS company, secret_key, source, outcome FROM company_secret_access WHERE id > $1 ORDER BY id",
      [since],
    );
    assert.deepEqual(rows, [
      { tenant: "acme", company: w.companies.acme, secret_key: "STRIPE_SECRET_KEY", source: "database", outcome: "found" },
      { tenant: "acme", company: w.companies.acme, secret_key: "STRIPE_SECRET_KEY", source: "cache", outcome: "found" },
      { tenant: w.companies.globex, company: w.companies.globex, secret_key: "STRIPE_SECRET_KEY", source: "database", outcome: "found" },
      { tenant: "nobody", company: null, secret_key: "STRIPE_SECRET_KEY", source: "database", outcome: "unknown_tenant" },
    ]);
  });

  async function fault(path: string, status: number, count: number): Promise<void> {
    const reply = await fetch(`${w.infisical.siteUrl}/__admin/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ path, status, count, method: "GET" }),
    });
    assert.ok(reply.ok);
  }

  it("an expired Infisical token is renewed once (a 401 logs in again); Infisical down is SourceUnavailableError", async () => {
    const r = reader({ fallback: new TenantFolders(infisical, w.environment), cacheTtlMs: 0 });
    const value = w.infisicalOnly.initech!.STRIPE_SECRET_KEY!;
    assert.equal(await r.get("initech", "STRIPE_SECRET_KEY"), value);
    await fault("/api/v3/secrets/raw/{secretName}", 401, 1);
    assert.equal(await r.get("initech", "STRIPE_SECRET_KEY"), value);
    await fault("/api/v3/secrets/raw/{secretName}", 503, 1);
    const error = await refused(r.get("initech", "STRIPE_SECRET_KEY"), SourceUnavailableError);
    assert.match(error.message, /Infisical answered 503/);
    assert.equal(await r.get("initech", "STRIPE_SECRET_KEY"), value);
  });

  it("a database that cannot be reached is SourceUnavailableError, without its password", async () => {
    const url = new URL(w.appDsn);
    url.port = "1";
    const down = new pg.Pool({ connectionString: url.toString(), connectionTimeoutMillis: 2000 });
    try {
      const error = await refused(reader({ database: down }).get("acme", "STRIPE_SECRET_KEY"), SourceUnavailableError);
      assert.ok(!error.message.includes(decodeURIComponent(url.password)));
    } finally {
      await down.end();
    }
  });
});
