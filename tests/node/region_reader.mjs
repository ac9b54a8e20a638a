// The Node.js reader package (packages/tenant-secrets-reader) as one region's application configures it: that
// region's Infisical and key folder, and a database given by the caller (its own region's, or the other's).
// Reads one request from stdin: {siteUrl, clientId, clientSecret, projectId, environment, databaseUrl, tenant,
// key}; prints {"ok": true, "value": ...} or {"ok": false, "error": <class>, "message": ...}; exit 0 either way.
import pg from "pg";
import { Infisical, KeyFolder, TenantSecretReader } from "../../packages/tenant-secrets-reader/dist/src/index.js";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const request = JSON.parse(input);
const infisical = new Infisical({
  siteUrl: request.siteUrl,
  clientId: request.clientId,
  clientSecret: request.clientSecret,
  projectId: request.projectId,
});
const database = new pg.Pool({ connectionString: request.databaseUrl });
const reader = new TenantSecretReader({ database, keyring: new KeyFolder(infisical, request.environment) });
let result;
try {
  result = { ok: true, value: await reader.getTenantSecret(request.tenant, request.key) };
} catch (err) {
  result = { ok: false, error: err.constructor.name, message: String(err.message) };
} finally {
  await reader.close();
  await database.end();
}
process.stdout.write(JSON.stringify(result));
