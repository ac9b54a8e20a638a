// The memory cache and the access log, without services: what a service relies on between requests.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { AccessLog, type AccessEvent, type AccessSink, SecretCache } from "../src/index.js";
import { cacheKey } from "../src/cache.js";

const ACME = "00000000-0000-4000-a000-00000000000a";

describe("the cache", () => {
  it("keeps a value for its ttl, then forgets it", () => {
    let now = 0;
    const cache = new SecretCache({ ttlMs: 1000, maxEntries: 10, clock: () => now });
    cache.put(cacheKey("acme", "K"), { value: "fake-v", companyId: ACME, subdomain: "acme", source: "database" });
    now = 999;
    assert.equal(cache.get(cacheKey("acme", "K"))?.value, "fake-v");
    now = 1000;
    assert.equal(cache.get(cacheKey("acme", "K")), undefined);
    assert.equal(cache.size, 0);
  });

  it("drops the least recently used entry when full", () => {
    const cache = new SecretCache({ ttlMs: 1000, maxEntries: 2 });
    for (const k of ["A", "B"]) cache.put(cacheKey("acme", k), { value: `fake-${k}`, companyId: ACME, subdomain: "acme", source: "database" });
    cache.get(cacheKey("acme", "A"));
    cache.put(cacheKey("acme", "C"), { value: "fake-C", companyId: ACME, subdomain: "acme", source: "database" });
    assert.deepEqual(["A", "B", "C"].map((k) => cache.get(cacheKey("acme", k))?.value), ["fake-A", undefined, "fake-C"]);
  });

  it("invalidates a tenant by its id or its subdomain, under both names, and one key or all", () => {
    const cache = new SecretCache({ ttlMs: 1000, maxEntries: 10 });
    const entry = { value: "fake-v", companyId: ACME, subdomain: "acme", source: "database" as const };
    cache.put(cacheKey("acme", "K"), entry);
    cache.put(cacheKey(ACME, "K"), entry);
    cache.put(cacheKey("acme", "OTHER"), entry);
    cache.put(cacheKey("globex", "K"), { ...entry, companyId: null, subdomain: "globex" });
    assert.equal(cache.invalidate({ companyId: ACME }, "K"), 2);
    assert.equal(cache.invalidate({ subdomain: "acme" }), 1);
    assert.equal(cache.invalidate(), 1);
  });

  it("caches nothing with a ttl of 0", () => {
    const cache = new SecretCache({ ttlMs: 0, maxEntries: 10 });
    cache.put(cacheKey("acme", "K"), { value: "fake-v", companyId: ACME, subdomain: "acme", source: "database" });
    assert.equal(cache.size, 0);
  });
});

function event(i: number): AccessEvent {
  return { tenant: "acme", companyId: ACME, key: `K${i}`, source: "cache", outcome: "found", wroteBack: false, at: Date.now() };
}

describe("the access log", () => {
  it("writes events in batches, in order, none lost", async () => {
    const batches: AccessEvent[][] = [];
    const log = new AccessLog([{ write: async (events) => void batches.push([...events]) }], { batchSize: 100, flushMs: 5 });
    for (let i = 0; i < 250; i++) assert.equal(log.record(event(i)), true);
    await log.flush();
    assert.deepEqual(batches.map((b) => b.length), [100, 100, 50]);
    assert.deepEqual(batches.flat().map((e) => e.key), Array.from({ length: 250 }, (_, i) => `K${i}`));
  });

  it("keeps what a failing sink refused and writes it later; refuses new events only when the backlog is full", async () => {
    let failing = true;
    const written: AccessEvent[] = [];
    const errors: string[] = [];
    const sink: AccessSink = {
      write: async (events) => {
        if (failing) throw new Error("connection refused");
        written.push(...events);
      },
    };
    const log = new AccessLog([sink], { batchSize: 10, flushMs: 1000, maxPending: 25, onError: (e) => errors.push(e.message) });
    for (let i = 0; i < 25; i++) assert.equal(log.record(event(i)), true);
    await log.flush();
    assert.equal(log.pending, 25);
    assert.equal(log.record(event(25)), false, "a full backlog refuses the event (the read is then refused)");
    assert.ok(errors.length >= 1 && errors.every((m) => m.includes("connection refused")));
    failing = false;
    await log.flush();
    assert.equal(log.pending, 0);
    assert.deepEqual(written.map((e) => e.key), Array.from({ length: 25 }, (_, i) => `K${i}`));
    assert.equal(log.record(event(26)), true);
    await log.close();
  });
});
