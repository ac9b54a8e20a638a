/**
 * The example app's process: one reader for the whole process, configured from the environment.
 *
 *   DATABASE_URL              the application role (tenant-secrets:appRole), never the provisioner
 *   INFISICAL_SITE_URL, INFISICAL_CLIENT_ID, INFISICAL_CLIENT_SECRET, INFISICAL_PROJECT_ID, INFISICAL_ENVIRONMENT
 *   PORT                      default 3000; 0 picks a free one (printed)
 *   SECRET_CACHE_TTL_MS       default 300000; KEY_FOLDER_TTL_MS default 300000
 *   ACCESS_LOG                "table" (company_secret_access) or "stderr" (default)
 */
import { serve } from "@hono/node-server";
import pg from "pg";
import { AccessLog, Infisical, KeyFolder, StreamAccessSink, TableAccessSink, TenantFolders, TenantSecretReader } from "tenant-secrets-reader";

import { createApp } from "./app.js";

const env = process.env;
if (!env.DATABASE_URL) throw new Error("set DATABASE_URL to the application role's connection");
const infisical = Infisical.fromEnv(env);
const environment = env.INFISICAL_ENVIRONMENT ?? "dev";
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 8 });
const reader = new TenantSecretReader({
  database: pool,
  keyring: new KeyFolder(infisical, environment, { ttlMs: Number(env.KEY_FOLDER_TTL_MS ?? 300_000) }),
  fallback: new TenantFolders(infisical, environment),
  cacheTtlMs: Number(env.SECRET_CACHE_TTL_MS ?? 300_000),
  accessLog: new AccessLog([env.ACCESS_LOG === "table" ? new TableAccessSink(pool) : new StreamAccessSink(process.stderr)]),
});

const server = serve({ fetch: createApp(reader).fetch, port: Number(env.PORT ?? 3000), hostname: "127.0.0.1" }, (info) => {
  console.log(`hono-api listening on http://127.0.0.1:${info.port}`);
});

async function stop(): Promise<void> {
  server.close();
  await reader.close(); // the access log's last batch
  await pool.end();
  process.exit(0);
}
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
