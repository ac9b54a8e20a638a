// The application's own write and read: the seed's setTenantSecret and getTenantSecret
// (seeds/000_55bf520eca77db85.txt, Strategy B), with their TypeScript types removed, on the seed's
// Drizzle schema (packages/db/src/schema/company-secrets.ts), through drizzle-orm and pg as the
// application runs them. The seed's code is unchanged: it names only the seed's columns, and the table
// the stack provisions completes the rest (migration 0008_keyless_writes, docs/decisions/0049).
//
// getMasterKey is the seed's: MASTER_ENCRYPTION_KEY from Infisical /hono-api through the official
// Infisical Node SDK, as `@repo/infisical`'s getSecrets reads it (like seed_app.mjs), or, when the input
// gives `keyHex` (the store's tests, which run no Infisical), that key.
//
// stdin: {databaseUrl, tablePrefix?, keyHex? | {siteUrl, clientId, clientSecret, projectId, environment?},
//         ops: [{op: "set", companyId, secretKey, secretValue} | {op: "get", companyId, secretKey}]}
// stdout: one entry per op, in order: {ok: true, value?} or {ok: false, error, code?}. An error is the
// error's message and SQLSTATE only (pg puts no value in either; a Drizzle error quotes its parameters,
// so its message is never printed: its cause's is).
import crypto from "crypto";
import { drizzle } from "drizzle-orm/node-postgres";
import { pgTableCreator, text, timestamp, unique, uuid, varchar } from "drizzle-orm/pg-core";
import pg from "pg";

const input = JSON.parse(await new Promise((resolve) => {
  const chunks = [];
  process.stdin.on("data", (c) => chunks.push(c));
  process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
}));

const ENVIRONMENT = input.environment ?? "dev";

// `@repo/infisical`'s getSecrets, or the test's key when it runs no Infisical.
let getSecrets;
if (input.keyHex) {
  getSecrets = async () => ({ MASTER_ENCRYPTION_KEY: input.keyHex });
} else {
  const { InfisicalSDK } = await import("@infisical/sdk");
  const client = new InfisicalSDK({ siteUrl: input.siteUrl });
  await client.auth().universalAuth.login({ clientId: input.clientId, clientSecret: input.clientSecret });
  getSecrets = async (secretPath, environment) => {
    const { secrets } = await client.secrets().listSecrets({
      environment,
      projectId: input.projectId,
      secretPath,
    });
    return Object.fromEntries(secrets.map((s) => [s.secretKey, s.secretValue]));
  };
}

// packages/db/src/table.ts: the application's table prefix.
const createTable = pgTableCreator((name) => `${input.tablePrefix ?? ""}${name}`);
const companies = createTable("companies", { id: uuid("id").primaryKey().defaultRandom() });

// --- the seed, unchanged ------------------------------------------------------------------------

// packages/db/src/schema/company-secrets.ts
const companySecrets = createTable(
  "company_secrets",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    companyId: uuid("company_id")
      .notNull()
      .references(() => companies.id, { onDelete: "cascade" }),
    secretKey: varchar("secret_key", { length: 255 }).notNull(),
    secretValueEncrypted: text("secret_value_encrypted").notNull(),
    createdAt: timestamp("created_at").defaultNow().notNull(),
    updatedAt: timestamp("updated_at").defaultNow().notNull(),
  },
  (table) => ({
    uniqueCompanySecret: unique().on(table.companyId, table.secretKey),
  }),
);

const pool = new pg.Pool({ connectionString: input.databaseUrl, max: 1 });
const db = drizzle(pool, { schema: { companySecrets } });

// Get master encryption key from Infisical
async function getMasterKey(environment = ENVIRONMENT) {
  const secrets = await getSecrets("/hono-api", environment);
  const key = secrets.MASTER_ENCRYPTION_KEY;
  if (!key) throw new Error("MASTER_ENCRYPTION_KEY not found");
  return key;
}

// Encrypt tenant secret
async function encryptSecret(value) {
  const masterKey = await getMasterKey();
  const iv = crypto.randomBytes(12); // 12 bytes for GCM
  const cipher = crypto.createCipheriv(
    "aes-256-gcm",
    Buffer.from(masterKey, "hex"),
    iv,
  );
  let encrypted = cipher.update(value, "utf8", "hex");
  encrypted += cipher.final("hex");
  const authTag = cipher.getAuthTag().toString("hex");
  return `${iv.toString("hex")}:${encrypted}:${authTag}`;
}

// Decrypt tenant secret
async function decryptSecret(encryptedValue) {
  const masterKey = await getMasterKey();
  const [ivHex, encrypted, authTagHex] = encryptedValue.split(":");
  const iv = Buffer.from(ivHex, "hex");
  const authTag = Buffer.from(authTagHex, "hex");
  const decipher = crypto.createDecipheriv(
    "aes-256-gcm",
    Buffer.from(masterKey, "hex"),
    iv,
  );
  decipher.setAuthTag(authTag);
  let decrypted = decipher.update(encrypted, "hex", "utf8");
  decrypted += decipher.final("utf8");
  return decrypted;
}

// Store tenant secret
async function setTenantSecret(
  companyId,
  secretKey,
  secretValue,
) {
  const encrypted = await encryptSecret(secretValue);
  await db
    .insert(companySecrets)
    .values({
      companyId,
      secretKey,
      secretValueEncrypted: encrypted,
    })
    .onConflictDoUpdate({
      target: [companySecrets.companyId, companySecrets.secretKey],
      set: { secretValueEncrypted: encrypted },
    });
}

// Retrieve tenant secret
async function getTenantSecret(
  companyId,
  secretKey,
) {
  const secret = await db.query.companySecrets.findFirst({
    where: (secrets, { eq, and }) =>
      and(eq(secrets.companyId, companyId), eq(secrets.secretKey, secretKey)),
  });

  if (!secret?.secretValueEncrypted) return null;

  return await decryptSecret(secret.secretValueEncrypted);
}

// --- the test's driver ----------------------------------------------------------------------------

function describe(err) {
  // Drizzle wraps the driver's error in one whose message quotes the query's parameters (the ciphertext):
  // only the driver's own message and SQLSTATE are reported.
  const cause = err && err.cause ? err.cause : err;
  return { ok: false, error: String(cause && cause.message), code: cause && cause.code };
}

const results = [];
try {
  for (const op of input.ops) {
    try {
      if (op.op === "set") {
        await setTenantSecret(op.companyId, op.secretKey, op.secretValue);
        results.push({ ok: true });
      } else {
        results.push({ ok: true, value: await getTenantSecret(op.companyId, op.secretKey) });
      }
    } catch (err) {
      results.push(describe(err));
    }
  }
} finally {
  await pool.end();
}
process.stdout.write(JSON.stringify(results));
