// The application's side of the keyring: the seed's getMasterKey() and decryptSecret()
// (seeds/000_55bf520eca77db85.txt, Strategy B) with their TypeScript types removed, reading the key
// folder through the official Infisical Node SDK as the seed's `getSecrets` does.
//
// Two readers, chosen by `mode`:
//   "seed"      the seed's code unchanged: every row is decrypted with MASTER_ENCRYPTION_KEY;
//   "versioned" the smallest change that survives a rotation (docs/guides/master-key-and-readers.md, "Master key rotation and the
//               application"): getMasterKey takes the row's key_version and reads
//               MASTER_ENCRYPTION_KEY_V<key_version>, falling back to MASTER_ENCRYPTION_KEY.
//
// The seed's getMasterKey defaults to the "dev" environment; here that default is the test's
// `environment` (dev unless given), the only departure from the seed's text.
//
// stdin: {siteUrl, clientId, clientSecret, projectId, environment?, mode, rows: [{envelope, keyVersion}]}
// stdout: one entry per row, in order: {ok: true, value} or {ok: false, error}.
import crypto from "crypto";
import { InfisicalSDK } from "@infisical/sdk";

const input = JSON.parse(await new Promise((resolve) => {
  const chunks = [];
  process.stdin.on("data", (c) => chunks.push(c));
  process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
}));

const ENVIRONMENT = input.environment ?? "dev";

// `@repo/infisical`'s getSecrets: a folder's secrets as an object, through the official SDK.
const client = new InfisicalSDK({ siteUrl: input.siteUrl });
await client.auth().universalAuth.login({ clientId: input.clientId, clientSecret: input.clientSecret });
async function getSecrets(secretPath, environment) {
  const { secrets } = await client.secrets().listSecrets({
    environment,
    projectId: input.projectId,
    secretPath,
  });
  return Object.fromEntries(secrets.map((s) => [s.secretKey, s.secretValue]));
}

// --- the seed, unchanged ------------------------------------------------------------------------

// Get master encryption key from Infisical
async function getMasterKey(environment = ENVIRONMENT) {
  const secrets = await getSecrets("/hono-api", environment);
  const key = secrets.MASTER_ENCRYPTION_KEY;
  if (!key) throw new Error("MASTER_ENCRYPTION_KEY not found");
  return key;
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

// --- the smallest change: the key chosen by the row's key_version --------------------------------

async function getMasterKeyVersioned(environment = ENVIRONMENT, keyVersion) {
  const secrets = await getSecrets("/hono-api", environment);
  const key = secrets[`MASTER_ENCRYPTION_KEY_V${keyVersion}`] ?? secrets.MASTER_ENCRYPTION_KEY;
  if (!key) throw new Error("MASTER_ENCRYPTION_KEY not found");
  return key;
}

async function decryptSecretVersioned(encryptedValue, keyVersion) {
  const masterKey = await getMasterKeyVersioned(ENVIRONMENT, keyVersion);
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

const results = [];
for (const { envelope, keyVersion } of input.rows) {
  try {
    const value = input.mode === "versioned"
      ? await decryptSecretVersioned(envelope, keyVersion)
      : await decryptSecret(envelope);
    results.push({ ok: true, value });
  } catch (err) {
    results.push({ ok: false, error: String(err && err.message) });
  }
}
process.stdout.write(JSON.stringify(results));
