/**
 * The reader's memory cache, as tenant_secrets/reader/cache.py: decrypted values for a bounded time (ttl),
 * a bounded number of them (least recently used out first), keyed by the tenant's canonical name (company
 * id or subdomain) and the key. Each entry remembers the company id and the subdomain, so invalidating a
 * tenant by either name drops it under both. Only values are cached: a missing secret is asked again.
 */
import type { Source } from "./errors.js";

export interface CachedSecret {
  readonly value: string;
  readonly companyId: string | null;
  readonly subdomain: string | null;
  readonly source: Source;
  readonly expiresAt: number;
}

export function cacheKey(name: string, key: string): string {
  return `${name}\0${key}`;
}

export class SecretCache {
  readonly #entries = new Map<string, CachedSecret>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #clock: () => number;

  constructor(options: { ttlMs: number; maxEntries: number; clock?: () => number }) {
    if (!(options.ttlMs >= 0) || !(options.maxEntries >= 0)) throw new RangeError("cache: ttlMs and maxEntries must be >= 0");
    this.#ttlMs = options.ttlMs;
    this.#max = options.maxEntries;
    this.#clock = options.clock ?? performance.now.bind(performance);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The entry under `id` (see {@link cacheKey}), unless it has expired. */
  get(id: string): CachedSecret | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined) return undefined;
    if (this.#clock() >= entry.expiresAt) {
      this.#entries.delete(id);
      return undefined;
    }
    this.#entries.delete(id); // most recently used last
    this.#entries.set(id, entry);
    return entry;
  }

  put(id: string, entry: Omit<CachedSecret, "expiresAt">): void {
    if (!this.#ttlMs || !this.#max) return;
    this.#entries.delete(id);
    this.#entries.set(id, { ...entry, expiresAt: this.#clock() + this.#ttlMs });
    while (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value!);
  }

  /** Drop the entries of a tenant (by company id or subdomain; all when undefined) and key (all when undefined). */
  invalidate(tenant?: { companyId?: string; subdomain?: string }, key?: string): number {
    let dropped = 0;
    for (const [id, entry] of this.#entries) {
      if (key !== undefined && !id.endsWith(`\0${key}`)) continue;
      if (tenant !== undefined) {
        const named = tenant.companyId !== undefined ? entry.companyId === tenant.companyId : entry.subdomain === tenant.subdomain;
        if (!named) continue;
      }
      this.#entries.delete(id);
      dropped++;
    }
    return dropped;
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `SecretCache(entries=${this.#entries.size}, ttlMs=${this.#ttlMs}, maxEntries=${this.#max})`;
  }
}
