/**
 * The reader's database side: a tenant's secret in one round trip, as the application role, under the
 * row-level security of decision 0010 (tenant_secrets/reader/database.py does the same in Python).
 *
 * node-postgres sends each parameterised query with its own Sync, so two of them are two round trips and
 * two transactions. One simple-protocol Query message holding two statements is one round trip and, in
 * PostgreSQL, one implicit transaction: the first statement resolves the company (by subdomain or id) and
 * sets `app.company_id` for that transaction only (`set_config(..., true)`); the second reads the row,
 * which the policy lets the role see only for that company. After it the setting is gone, so a pooled
 * connection carries no tenant into its next use. The two literals are a validated subdomain or a
 * canonical UUID, and a key without NUL, quoted with node-postgres' own `escapeLiteral`
 * (docs/decisions/0047-node-reader.md).
 */
import { createHash } from "node:crypto";

import pg from "pg";

import type { TenantRef } from "./names.js";

/** What the reader needs of a pool: a `pg.Pool` as the application role (or anything with its `query`). */
export interface Queryable {
  query(text: string): Promise<unknown>;
}

/** The application's table names: its Drizzle `createTable` prefix, as StoreSettings.table_prefix. */
export class Tables {
  readonly prefix: string;

  constructor(prefix = "") {
    if (prefix && !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(prefix)) {
      throw new RangeError("tablePrefix: letters, digits, '_' and '-', starting with a letter or '_'");
    }
    this.prefix = prefix;
  }

  name(base: string): string {
    return pg.escapeIdentifier(`${this.prefix}${base}`);
  }

  get secrets(): string {
    return this.name("company_secrets");
  }

  get companies(): string {
    return this.name("companies");
  }

  get accessFunction(): string {
    return pg.escapeIdentifier(`${this.prefix}tenant_secrets_record_access`);
  }
}

/** A row as stored: the envelope, its master key version, the secret's version and its binding (null before it is bound). */
export interface StoredRow {
  readonly envelope: string;
  readonly keyVersion: number;
  readonly version: number;
  readonly binding: string | null;
}

/** The company (null when none matches) and its row for the key (null when it has none). */
export interface Lookup {
  readonly companyId: string | null;
  readonly subdomain: string | null;
  readonly row: StoredRow | null;
}

interface Result {
  rows: Record<string, unknown>[];
}

function companyMatch(ref: TenantRef, value: string): string {
  return ref.companyId !== undefined ? `c.id = ${value}::uuid` : `c.subdomain = ${value}`;
}

function companyStatement(tables: Tables, match: string): string {
  return (
    "SELECT c.id::text AS id, c.subdomain, set_config('app.company_id', coalesce(c.id::text, ''), true)" +
    ` FROM (SELECT) AS one LEFT JOIN ${tables.companies} AS c ON ${match}`
  );
}

function secretStatement(tables: Tables, key: string): string {
  // The company filter repeats the policy's, so an owner's or provisioner's pool reads the same row.
  return (
    `SELECT secret_value_encrypted, key_version, version, binding FROM ${tables.secrets}` +
    ` WHERE company_id = nullif(current_setting('app.company_id', true), '')::uuid AND secret_key = ${key}`
  );
}

/** The lookup's two statements as one simple-protocol text, unprepared (exported for the tests and the benchmark). */
export function lookupQuery(tables: Tables, ref: TenantRef, key: string): string {
  if (key.includes("\0")) throw new RangeError("secret key: no NUL");
  const name = ref.companyId ?? ref.subdomain;
  return `${companyStatement(tables, companyMatch(ref, pg.escapeLiteral(name)))};\n${secretStatement(tables, pg.escapeLiteral(key))}`;
}

/**
 * The same two statements as prepared statements of the connection, which halves a miss (the server
 * plans nothing: 89 us against 182 us per lookup in bench/bench.ts). `execute` runs them; `prepareAndExecute`
 * prepares all three (by subdomain, by id, the row) and runs them in the same Query message, for a
 * connection that has not got them yet (SQLSTATE 26000). Names carry a hash of the table names.
 */
export class LookupStatements {
  readonly #bySubdomain: string;
  readonly #byId: string;
  readonly #secret: string;
  readonly #prepare: string;

  constructor(tables: Tables) {
    const tag = createHash("sha256").update(`${tables.companies}\0${tables.secrets}`).digest("hex").slice(0, 12);
    this.#bySubdomain = `tenant_secrets_company_by_subdomain_${tag}`;
    this.#byId = `tenant_secrets_company_by_id_${tag}`;
    this.#secret = `tenant_secrets_secret_${tag}`;
    this.#prepare =
      `PREPARE ${this.#bySubdomain} (text) AS ${companyStatement(tables, "c.subdomain = $1")};\n` +
      `PREPARE ${this.#byId} (text) AS ${companyStatement(tables, "c.id = $1::uuid")};\n` +
      `PREPARE ${this.#secret} (text) AS ${secretStatement(tables, "$1")};\n`;
  }

  execute(ref: TenantRef, key: string): string {
    if (key.includes("\0")) throw new RangeError("secret key: no NUL");
    const company = ref.companyId !== undefined ? `${this.#byId}(${pg.escapeLiteral(ref.companyId)})` : `${this.#bySubdomain}(${pg.escapeLiteral(ref.subdomain)})`;
    return `EXECUTE ${company};\nEXECUTE ${this.#secret}(${pg.escapeLiteral(key)})`;
  }

  prepareAndExecute(ref: TenantRef, key: string): string {
    return this.#prepare + this.execute(ref, key);
  }
}

const statementsByTables = new WeakMap<Tables, LookupStatements>();

function statementsOf(tables: Tables): LookupStatements {
  let statements = statementsByTables.get(tables);
  if (statements === undefined) statementsByTables.set(tables, (statements = new LookupStatements(tables)));
  return statements;
}

function codeOf(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}

/**
 * The company named by `ref` and its row for `key`, in one round trip: the prepared statements, prepared
 * in the same message when the connection lacks them; the unprepared text when preparing fails (a pooler
 * that moves sessions, or a statement of ours already there: SQLSTATE 42P05).
 */
export async function readSecret(db: Queryable, tables: Tables, ref: TenantRef, key: string): Promise<Lookup> {
  const statements = statementsOf(tables);
  let results: Result[];
  try {
    results = (await db.query(statements.execute(ref, key))) as Result[];
  } catch (error) {
    if (codeOf(error) !== "26000") throw error; // invalid_sql_statement_name: not prepared on this connection
    try {
      results = (await db.query(statements.prepareAndExecute(ref, key))) as Result[];
    } catch (again) {
      if (codeOf(again) !== "42P05") throw again; // duplicate_prepared_statement
      results = (await db.query(lookupQuery(tables, ref, key))) as Result[];
    }
  }
  return parseLookup(results);
}

function parseLookup(all: Result[]): Lookup {
  if (!Array.isArray(all) || all.length < 2) throw new Error("the lookup did not return two results");
  const results = all.slice(-2);
  const company = results[0]!.rows[0];
  if (company === undefined || company.id === null) return { companyId: null, subdomain: null, row: null };
  const found = results[1]!.rows[0];
  const row =
    found === undefined
      ? null
      : {
          envelope: String(found.secret_value_encrypted),
          keyVersion: Number(found.key_version),
          version: Number(found.version),
          binding: found.binding === null ? null : String(found.binding),
        };
  return { companyId: String(company.id), subdomain: String(company.subdomain), row };
}

/** A database error as text safe to show: its class and SQLSTATE, and its first line (never its detail, which can quote a row). */
export function describeDatabaseError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const state = typeof code === "string" ? ` (${/^[0-9A-Z]{5}$/.test(code) ? "SQLSTATE " : ""}${code})` : "";
    return `${error.name}${state}: ${(error.message.split("\n")[0] ?? "").slice(0, 200)}`;
  }
  return "an unknown error";
}
