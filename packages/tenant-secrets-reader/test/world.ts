// The services a reader test runs against, arranged by tests/reader/test_node_reader.py (the pytest wrapper
// `make test` runs): a migrated database with the application and provisioning roles, rows written by the
// Python provisioning code, and a local Infisical server whose key folder publishes the keyring. Without
// TENANT_SECRETS_TEST_WORLD the tests that need it are skipped (`npm test` alone runs the pure ones).
import { readFileSync } from "node:fs";

import pg from "pg";

export interface World {
  appDsn: string;
  ownerDsn: string;
  provisionerDsn: string;
  infisical: { siteUrl: string; clientId: string; clientSecret: string; projectId: string };
  environment: string;
  companies: Record<string, string>;
  values: Record<string, Record<string, string>>;
  infisicalOnly: Record<string, Record<string, string>>;
  masterKeys: Record<string, string>;
}

const file = process.env.TENANT_SECRETS_TEST_WORLD;
export const world: World | null = file ? (JSON.parse(readFileSync(file, "utf8")) as World) : null;
export const needsServices = world === null ? "needs the local services: run through `make test` (tests/reader/test_node_reader.py)" : false;

/** Every fake value of the world, which must never appear in an error or a log line. */
export function allValues(w: World): string[] {
  return [...Object.values(w.values), ...Object.values(w.infisicalOnly)].flatMap((v) => Object.values(v));
}

/** A pool that counts its queries: with the simple protocol, one query is one round trip. */
export class CountingPool {
  queries = 0;
  readonly pool: pg.Pool;
  constructor(connectionString: string, max = 4) {
    this.pool = new pg.Pool({ connectionString, max });
  }
  query(text: string): Promise<unknown> {
    this.queries++;
    return this.pool.query(text);
  }
  end(): Promise<void> {
    return this.pool.end();
  }
}
