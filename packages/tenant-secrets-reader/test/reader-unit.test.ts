// The reader's own logic without services: a stand-in database that answers the lookup's two statements
// as PostgreSQL would, with rows encrypted and bound by this package. What the services tests cannot
// arrange cheaply: a full access log refusing reads, invalidation by either name, shared lookups.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";

import { AccessLog, AccessLogError, Keyring, TenantSecretReader, bind, type Queryable } from "../src/index.js";

const ACME = "00000000-0000-4000-a000-00000000000a";
const keyring = new Keyring(new Map([[1, randomBytes(32)]]), 1);

/** Answers the lookup for company acme, which holds STRIPE_SECRET_KEY; counts the queries. */
class FakeDatabase implements Queryable {
  queries = 0;
  readonly ciphertext = keyring.encrypt("fake-acme-stripe");
  async query(text: string): Promise<unknown> {
    this.queries++;
    await new Promise((resolve) => setTimeout(resolve, 5));
    const isAcme = text.includes("'acme'") || text.includes(`'${ACME}'`);
    const company = isAcme ? { id: ACME, subdomain: "acme" } : { id: null, subdomain: null };
    const binding = bind(keyring, { companyId: ACME, secretKey: "STRIPE_SECRET_KEY", keyVersion: 1, version: 1, ciphertext: this.ciphertext });
    const row = { secret_value_encrypted: this.ciphertext, key_version: 1, version: 1, binding };
    return [{ rows: [company] }, { rows: isAcme && text.includes("'STRIPE_SECRET_KEY'") ? [row] : [] }];
  }
}

const quiet = () => new AccessLog([{ write: async () => {} }]);

describe("the reader's logic", () => {
  it("concurrent misses share one query; the id and the subdomain are invalidated together", async () => {
    const db = new FakeDatabase();
    const reader = new TenantSecretReader({ database: db, keyring, accessLog: quiet() });
    const values = await Promise.all([...Array(10)].map(() => reader.get("acme", "STRIPE_SECRET_KEY")));
    assert.deepEqual(new Set(values), new Set(["fake-acme-stripe"]));
    assert.equal(db.queries, 1);
    await reader.get(ACME.toUpperCase(), "STRIPE_SECRET_KEY");
    assert.equal(db.queries, 2);
    assert.equal(reader.invalidate(`{${ACME}}`), 2, "an id in any spelling drops the entries under both names");
    await reader.get("acme", "STRIPE_SECRET_KEY");
    assert.equal(db.queries, 3);
  });

  it("a read is refused, not served unrecorded, once the access log's backlog is full", async () => {
    const log = new AccessLog([{ write: async () => Promise.reject(new Error("sink down")) }], { maxPending: 3, onError: () => {} });
    const reader = new TenantSecretReader({ database: new FakeDatabase(), keyring, accessLog: log });
    for (let i = 0; i < 3; i++) assert.equal(await reader.get("acme", "STRIPE_SECRET_KEY"), "fake-acme-stripe");
    await log.flush();
    await assert.rejects(reader.get("acme", "STRIPE_SECRET_KEY"), (error: Error) => {
      assert.ok(error instanceof AccessLogError);
      assert.ok(!error.message.includes("fake-acme-stripe"));
      return true;
    });
  });

  it("shows no key, no value and no credential when logged or serialised", async () => {
    const reader = new TenantSecretReader({ database: new FakeDatabase(), keyring, accessLog: quiet() });
    await reader.get("acme", "STRIPE_SECRET_KEY");
    const { inspect } = await import("node:util");
    for (const shown of [inspect(reader, { depth: 5 }), inspect(keyring, { depth: 5 }), JSON.stringify(keyring)]) {
      assert.ok(!shown.includes("fake-acme-stripe"));
      assert.ok(!shown.includes(keyring.key(1).toString("hex")));
    }
  });
});
