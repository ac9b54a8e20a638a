/**
 * The access log (the seed's "log all secret access attempts"): who asked for which key, where it was
 * found and with what outcome, never the value. As tenant_secrets/reader/access_log.py, with one
 * difference the Node reader's hot path needs (docs/decisions/0047-node-reader.md):
 *
 * - `record` only appends the event to a queue (no I/O on the request's path); the queue is written to
 *   every sink in batches, when it reaches `batchSize` or `flushMs` after its first event;
 * - nothing is dropped: a batch a sink refused stays queued and is written again on the next flush
 *   (`onError` is told, without a value); the reader refuses to return a value (`AccessLogError`) once
 *   `maxPending` events are waiting, so a log that cannot keep up stops reads instead of losing entries;
 * - `flush()` writes what is queued now (a service awaits it on shutdown, `close()` does too).
 */
import type { Source } from "./errors.js";
import { describeDatabaseError, Tables } from "./database.js";

/** A pool that takes parameters, e.g. a `pg.Pool`. */
export interface ParamQueryable {
  query(text: string, values: unknown[]): Promise<unknown>;
}

export type Outcome = "found" | "not_found" | "unknown_tenant" | "undecryptable" | "failed";

/** One call of `get`: names and outcome only, by construction no value. */
export interface AccessEvent {
  /** What the caller passed, as resolved: a subdomain, or a company id's canonical text. */
  readonly tenant: string;
  readonly companyId: string | null;
  readonly key: string;
  readonly source: Source | null;
  readonly outcome: Outcome;
  readonly wroteBack: boolean;
  /** Milliseconds since the epoch. */
  readonly at: number;
}

/** Where batches of events go. A sink that throws keeps the batch queued for the next flush. */
export interface AccessSink {
  write(events: readonly AccessEvent[]): Promise<void>;
}

/** One JSON line per event on a stream (default: standard error). */
export class StreamAccessSink implements AccessSink {
  constructor(readonly stream: NodeJS.WritableStream = process.stderr) {}

  async write(events: readonly AccessEvent[]): Promise<void> {
    const text = events.map((e) => JSON.stringify({ event: "secret access", ...e, at: new Date(e.at).toISOString() })).join("\n");
    await new Promise<void>((resolve, reject) => this.stream.write(`${text}\n`, (error) => (error ? reject(error) : resolve())));
  }
}

/**
 * Appends to `company_secret_access` through its SECURITY DEFINER function (migration 0004), one
 * statement per batch, as the application role (`ensure_roles` grants it EXECUTE). The function refuses
 * an entry whose tenant is neither the subdomain nor the id of its company (migration 0006).
 */
export class TableAccessSink implements AccessSink {
  readonly #db: ParamQueryable;
  readonly #statement: string;

  /** `db`: the application role's pool (a `pg.Pool`). */
  constructor(db: ParamQueryable, tables = new Tables()) {
    this.#db = db;
    this.#statement =
      `SELECT ${tables.accessFunction}(e.company_id, e.tenant, e.secret_key, e.source, e.outcome, e.wrote_back)` +
      " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[])" +
      " AS e(company_id, tenant, secret_key, source, outcome, wrote_back)";
  }

  async write(events: readonly AccessEvent[]): Promise<void> {
    await this.#db.query(this.#statement, [
      events.map((e) => e.companyId),
      events.map((e) => e.tenant),
      events.map((e) => e.key),
      events.map((e) => e.source),
      events.map((e) => e.outcome),
      events.map((e) => e.wroteBack),
    ]);
  }
}

export interface AccessLogOptions {
  /** Events per write (default 500). */
  batchSize?: number;
  /** How long an event may wait for its batch (default 100 ms). */
  flushMs?: number;
  /** Events that may wait before reads are refused (default 100,000). */
  maxPending?: number;
  /** Told when a sink fails; the batch stays queued. The error text is the sink's, without values. */
  onError?: (error: Error) => void;
}

/** The reader's access log: a queue written to its sinks in batches, off the request's path. */
export class AccessLog {
  readonly #sinks: readonly AccessSink[];
  readonly #batchSize: number;
  readonly #flushMs: number;
  readonly #maxPending: number;
  readonly #onError: (error: Error) => void;
  #queue: AccessEvent[] = [];
  /** Per sink, the events it has not written yet (a failed sink keeps its own backlog). */
  #backlog: AccessEvent[][];
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> | null = null;
  /** The longest backlog of a sink (0 unless one failed). */
  #backlogMax = 0;
  /** Batches a sink refused (each stays queued and is written again). */
  failures = 0;

  constructor(sinks: readonly AccessSink[], options: AccessLogOptions = {}) {
    this.#sinks = sinks;
    this.#batchSize = options.batchSize ?? 500;
    this.#flushMs = options.flushMs ?? 100;
    this.#maxPending = options.maxPending ?? 100_000;
    this.#onError = options.onError ?? ((error) => process.emitWarning(`tenant-secrets access log: ${error.message}`));
    this.#backlog = sinks.map(() => []);
  }

  /** Events not yet written to every sink. */
  get pending(): number {
    return this.#queue.length + this.#backlogMax;
  }

  /**
   * Queue `event`, without I/O; false (and nothing queued) when `maxPending` events already wait, which
   * only happens while a sink keeps failing: the reader then refuses the read rather than lose its entry.
   */
  record(event: AccessEvent): boolean {
    if (this.#queue.length + this.#backlogMax >= this.#maxPending) return false;
    this.#queue.push(event);
    if (this.#queue.length >= this.#batchSize) void this.flush();
    else if (this.#timer === null) {
      this.#timer = setTimeout(() => void this.flush(), this.#flushMs);
      this.#timer.unref();
    }
    return true;
  }

  /** Write what is queued to every sink; resolves when done (a failing sink keeps its share queued). */
  async flush(): Promise<void> {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    while (this.#flushing !== null) await this.#flushing;
    if (this.#queue.length === 0 && this.#backlog.every((b) => b.length === 0)) return;
    this.#flushing = this.#drain();
    try {
      await this.#flushing;
    } finally {
      this.#flushing = null;
    }
  }

  async #drain(): Promise<void> {
    const taken = this.#queue;
    this.#queue = [];
    for (const backlog of this.#backlog) for (const event of taken) backlog.push(event);
    this.#backlogMax = Math.max(0, ...this.#backlog.map((b) => b.length));
    await Promise.all(
      this.#sinks.map(async (sink, i) => {
        const backlog = this.#backlog[i]!;
        while (backlog.length) {
          const batch = backlog.slice(0, this.#batchSize);
          try {
            await sink.write(batch);
          } catch (error) {
            this.failures++;
            this.#onError(new Error(describeDatabaseError(error)));
            return; // kept: written again on the next flush
          }
          backlog.splice(0, batch.length);
        }
      }),
    );
    this.#backlogMax = Math.max(0, ...this.#backlog.map((b) => b.length));
    if ((this.#queue.length || this.#backlog.some((b) => b.length)) && this.#timer === null) {
      this.#timer = setTimeout(() => void this.flush(), this.#flushMs);
      this.#timer.unref();
    }
  }

  /** Flush, and stop the timer. */
  async close(): Promise<void> {
    await this.flush();
  }
}
