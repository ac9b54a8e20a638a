/**
 * The seed's hybrid `getTenantSecret(subdomainOrCompanyId, key)`, done right, with the contract of the
 * Python reader (tenant_secrets/reader/reader.py, decision 0021; this package: decision 0047):
 *
 * 1. memory: a cache with a ttl and a size bound, invalidated by tenant (subdomain or id) and key;
 * 2. the database: one round trip as the application role under row-level security; the row is
 *    decrypted with the key of its `key_version` from the key folder (read again at once when that
 *    version is missing), and served only if its binding holds (decision 0027);
 * 3. the tenant's Infisical folder `/tenants/<subdomain>` when the database has no row, also for a
 *    tenant that has no `companies` row at all; optionally written back as a bound row.
 *
 * Every call is queued on the access log (batched, off the hot path). Errors are typed and never carry
 * a value. Concurrent misses of one secret share one lookup.
 */
import { PROBLEM_TEXT, checkRow } from "./binding.js";
import { AccessLog, type Outcome, StreamAccessSink } from "./accessLog.js";
import { type CachedSecret, SecretCache, cacheKey } from "./cache.js";
import { type Queryable, type StoredRow, Tables, describeDatabaseError, readSecret } from "./database.js";
import { Keyring } from "./envelope.js";
import {
  AccessLogError,
  type ErrorContext,
  ReaderError,
  SecretNotFoundError,
  type Source,
  SourceUnavailableError,
  UndecryptableSecretError,
  UnknownTenantError,
  WriteBackError,
} from "./errors.js";
import { type KeyringSource, StaticKeyring, type TenantFolders } from "./infisical.js";
import { type TenantRef, refName, subdomainProblem, tenantRef } from "./names.js";
import { type WritePool, insertIfAbsent } from "./writeback.js";

export const MAX_KEY_LENGTH = 255; // company_secrets.secret_key is varchar(255)

export interface ReaderOptions {
  /** The application role's pool (`tenant-secrets:appRole`), e.g. `new pg.Pool({connectionString})`. */
  database: Queryable;
  /** A keyring, or where to read it: a {@link KeyFolder} (the key folder, `/hono-api`). */
  keyring: Keyring | KeyringSource;
  /** The tenant's Infisical folder, when the database has no row (or no company). */
  fallback?: TenantFolders;
  /** A pool of a role that may insert (the provisioning role): a value found only in Infisical is stored, bound. */
  writeBack?: WritePool;
  /** How long a value is kept in memory (default 5 minutes; 0: no cache). */
  cacheTtlMs?: number;
  /** How many values are kept (default 1024). */
  cacheSize?: number;
  /** Where every access is recorded (default: JSON lines on standard error). */
  accessLog?: AccessLog;
  /** Serve rows that have no binding yet (only between deploying this version and the stack's next `pulumi up`). */
  allowUnbound?: boolean;
  /** The application's Drizzle table prefix (StoreSettings.table_prefix). */
  tablePrefix?: string;
  /** Milliseconds, monotonic (tests). */
  clock?: () => number;
}

interface Found {
  value: string;
  companyId: string | null;
  subdomain: string | null;
  source: Source;
  wroteBack: boolean;
  cacheable: boolean;
}

function outcomeOf(error: ReaderError): Outcome {
  if (error instanceof UnknownTenantError) return "unknown_tenant";
  if (error instanceof SecretNotFoundError) return "not_found";
  if (error instanceof UndecryptableSecretError) return "undecryptable";
  return "failed";
}

function fail(kind: new (message: string, context: ErrorContext) => ReaderError, at: ErrorContext, reason: string): ReaderError {
  return new kind(`${at.key} of tenant ${at.tenant}: ${reason}`, { ...at });
}

/** Tenants' secrets for a service: {@link get} by subdomain or company id. One reader serves a whole process. */
export class TenantSecretReader {
  readonly #db: Queryable;
  readonly #keys: KeyringSource;
  readonly #fallback: TenantFolders | undefined;
  readonly #writeBack: WritePool | undefined;
  readonly #cache: SecretCache;
  readonly #log: AccessLog;
  readonly #allowUnbound: boolean;
  readonly #tables: Tables;
  readonly #clock: () => number;
  readonly #inflight = new Map<string, Promise<Found>>();

  constructor(options: ReaderOptions) {
    this.#db = options.database;
    this.#keys = options.keyring instanceof Keyring ? new StaticKeyring(options.keyring) : options.keyring;
    this.#fallback = options.fallback;
    this.#writeBack = options.writeBack;
    if (this.#writeBack !== undefined && this.#fallback === undefined) throw new RangeError("writeBack needs a fallback: it stores values found in Infisical");
    this.#clock = options.clock ?? performance.now.bind(performance);
    this.#cache = new SecretCache({ ttlMs: options.cacheTtlMs ?? 300_000, maxEntries: options.cacheSize ?? 1024, clock: this.#clock });
    this.#log = options.accessLog ?? new AccessLog([new StreamAccessSink()]);
    this.#allowUnbound = options.allowUnbound ?? false;
    this.#tables = new Tables(options.tablePrefix);
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `TenantSecretReader(cache=${this.#cache.size} entries, fallback=${this.#fallback !== undefined}, writeBack=${this.#writeBack !== undefined})`;
  }

  /**
   * The value of `key` for the tenant named by `tenant`: a subdomain, or a company id (text that reads as a
   * UUID is always a company id, decision 0046). Rejects with {@link UnknownTenantError},
   * {@link SecretNotFoundError}, {@link UndecryptableSecretError}, {@link SourceUnavailableError},
   * {@link WriteBackError} or {@link AccessLogError}; none of their messages contains a value.
   */
  async get(tenant: string, key: string): Promise<string> {
    // A hit needs no parsing: entries are kept under canonical names, which read as themselves.
    const hit = typeof tenant === "string" ? this.#cache.get(cacheKey(tenant, key)) : undefined;
    if (hit !== undefined) return this.#served(tenant, key, hit);
    return this.#miss(tenant, key);
  }

  /** The seed's name for {@link get}. */
  getTenantSecret(subdomainOrCompanyId: string, key: string): Promise<string> {
    return this.get(subdomainOrCompanyId, key);
  }

  /** Forget cached values: of `tenant` (by subdomain or id; all when undefined), of `key` (all when undefined). */
  invalidate(tenant?: string, key?: string): number {
    if (tenant === undefined) return this.#cache.invalidate(undefined, key);
    const ref = tenantRef(tenant);
    return this.#cache.invalidate(ref.companyId !== undefined ? { companyId: ref.companyId } : { subdomain: ref.subdomain }, key);
  }

  /** Write what the access log holds; call on shutdown. */
  async close(): Promise<void> {
    await this.#log.close();
  }

  #served(name: string, key: string, hit: CachedSecret): string {
    this.#record(name, key, hit.companyId, "cache", "found", false);
    return hit.value;
  }

  #record(tenant: string, key: string, companyId: string | null, source: Source | null, outcome: Outcome, wroteBack: boolean): void {
    if (!this.#log.record({ tenant, companyId, key, source, outcome, wroteBack, at: Date.now() })) {
      throw new AccessLogError(`${key} of tenant ${tenant}: the access log is not keeping up (its sinks fail), so the read is refused`, {
        tenant,
        key,
        source,
        companyId,
      });
    }
  }

  async #miss(tenant: string, key: string): Promise<string> {
    if (typeof key !== "string" || !key || key.length > MAX_KEY_LENGTH || key.includes("\0")) {
      throw new RangeError(`secret key: 1 to ${MAX_KEY_LENGTH} characters, no NUL`);
    }
    if (typeof tenant !== "string") throw new TypeError("tenant: a subdomain or a company id, as text");
    const ref = tenantRef(tenant);
    const name = refName(ref).slice(0, MAX_KEY_LENGTH); // as recorded: a caller may pass any text
    let found: Found;
    try {
      found = await this.#find(ref, name, key);
    } catch (error) {
      if (error instanceof ReaderError) this.#record(name, key, error.companyId, error.source, outcomeOf(error), false);
      throw error;
    }
    this.#record(name, key, found.companyId, found.source, "found", found.wroteBack);
    return found.value;
  }

  async #find(ref: TenantRef, name: string, key: string): Promise<Found> {
    if (ref.subdomain !== undefined) {
      const problem = subdomainProblem(ref.subdomain);
      if (problem !== null) throw fail(UnknownTenantError, { tenant: name, key }, `not a tenant subdomain (${problem})`);
    }
    const id = cacheKey(name, key);
    const cached = this.#cache.get(id);
    if (cached !== undefined) return { ...cached, source: "cache", wroteBack: false, cacheable: false };
    const shared = this.#inflight.get(id);
    if (shared !== undefined) return shared; // another caller is looking this secret up: its answer is ours
    const mine = this.#lookUp(ref, name, key).then((found) => {
      if (found.cacheable) this.#cache.put(id, found);
      return found;
    });
    this.#inflight.set(id, mine);
    try {
      return await mine;
    } finally {
      this.#inflight.delete(id);
    }
  }

  async #lookUp(ref: TenantRef, name: string, key: string): Promise<Found> {
    const at: ErrorContext = { tenant: name, key, source: "database", companyId: null };
    let lookup;
    try {
      lookup = await readSecret(this.#db, this.#tables, ref, key);
    } catch (error) {
      throw fail(SourceUnavailableError, at, `cannot read it from the database: ${describeDatabaseError(error)}`);
    }
    if (lookup.companyId === null) {
      if (ref.subdomain === undefined || this.#fallback === undefined) {
        throw fail(UnknownTenantError, at, `no company has the ${ref.subdomain === undefined ? "id" : "subdomain"} ${name}`);
      }
      // A tenant kept in Infisical only has no companies row: its folder is named by its subdomain.
      at.source = "infisical";
      const value = await this.#fromInfisical(ref.subdomain, at);
      if (value === undefined) {
        const folder = this.#fallback.folder(ref.subdomain);
        if (!(await this.#folderExists(ref.subdomain, at))) {
          throw fail(UnknownTenantError, at, `no company has the subdomain ${name}, nor has Infisical ${folder}`);
        }
        throw fail(SecretNotFoundError, at, `no company has the subdomain ${name}, and Infisical ${folder} does not hold it`);
      }
      return { value, companyId: null, subdomain: ref.subdomain, source: "infisical", wroteBack: false, cacheable: true };
    }
    const { companyId, subdomain } = lookup as { companyId: string; subdomain: string };
    at.companyId = companyId;
    if (lookup.row !== null) {
      return { value: await this.#decrypt(lookup.row, at), companyId, subdomain, source: "database", wroteBack: false, cacheable: true };
    }
    if (this.#fallback === undefined) throw fail(SecretNotFoundError, at, "the database holds no such secret");
    at.source = "infisical";
    const value = await this.#fromInfisical(subdomain, at);
    if (value === undefined) {
      throw fail(SecretNotFoundError, at, `neither the database nor Infisical ${this.#fallback.folder(subdomain)} holds it`);
    }
    if (this.#writeBack === undefined) return { value, companyId, subdomain, source: "infisical", wroteBack: false, cacheable: true };
    const wrote = await this.#store(this.#writeBack, companyId, value, at);
    // A row that appeared since the read (a provisioning run, the application) wins: read it next time.
    return { value, companyId, subdomain, source: "infisical", wroteBack: wrote, cacheable: wrote };
  }

  async #decrypt(row: StoredRow, at: ErrorContext): Promise<string> {
    const keyring = await this.#keyring((keys) => keys.keyringWith(row.keyVersion), at);
    if (!keyring.has(row.keyVersion)) {
      throw fail(
        UndecryptableSecretError,
        at,
        `it is encrypted with master key version ${row.keyVersion}, which the keyring (versions ${keyring.versions.join(", ")}) lacks: ` +
          "publish that version in the key folder",
      );
    }
    let value: string;
    try {
      value = keyring.decrypt(row.envelope, row.keyVersion);
    } catch (error) {
      throw fail(UndecryptableSecretError, at, `key version ${row.keyVersion}: ${(error as Error).message}`);
    }
    const problem = checkRow(keyring, {
      companyId: at.companyId!,
      secretKey: at.key,
      keyVersion: row.keyVersion,
      version: row.version,
      ciphertext: row.envelope,
      binding: row.binding,
    });
    if (problem === "missing" && !this.#allowUnbound) {
      // Decision 0049: the application's own setTenantSecret (a writer without the master keys) leaves rows unbound.
      throw fail(
        UndecryptableSecretError,
        at,
        `the stored row (version ${row.version}, key version ${row.keyVersion}) ${PROBLEM_TEXT[problem]}: a writer without ` +
          "the master keys wrote it (the application's setTenantSecret, or a hand-made UPDATE); it was not served: the " +
          "stack's next `pulumi up` binds it, or pass allowUnbound: true",
      );
    }
    if (problem !== null && problem !== "missing") {
      throw fail(
        UndecryptableSecretError,
        at,
        `the stored row (version ${row.version}, key version ${row.keyVersion}) ${PROBLEM_TEXT[problem]}; ` +
          "it was not served: find out how it was changed, then run `pulumi up` to rewrite it",
      );
    }
    return value;
  }

  async #fromInfisical(subdomain: string, at: ErrorContext): Promise<string | undefined> {
    try {
      return await this.#fallback!.get(subdomain, at.key);
    } catch (error) {
      throw fail(SourceUnavailableError, at, `cannot read it from Infisical ${this.#fallback!.folder(subdomain)}: ${(error as Error).message}`);
    }
  }

  async #folderExists(subdomain: string, at: ErrorContext): Promise<boolean> {
    try {
      return await this.#fallback!.exists(subdomain);
    } catch (error) {
      throw fail(SourceUnavailableError, at, `cannot read it from Infisical ${this.#fallback!.folder(subdomain)}: ${(error as Error).message}`);
    }
  }

  async #store(pool: WritePool, companyId: string, value: string, at: ErrorContext): Promise<boolean> {
    const keyring = await this.#keyring((keys) => keys.freshKeyring(), at);
    try {
      return await insertIfAbsent(pool, this.#tables, companyId, at.key, value, keyring);
    } catch (error) {
      throw fail(WriteBackError, at, `cannot write it back to the database: ${describeDatabaseError(error)}`);
    }
  }

  async #keyring(read: (keys: KeyringSource) => Promise<Keyring>, at: ErrorContext): Promise<Keyring> {
    try {
      return await read(this.#keys);
    } catch (error) {
      throw fail(SourceUnavailableError, at, `cannot read the master keyring: ${(error as Error).message}`);
    }
  }
}
