// The application's writer: the seed's encryptSecret (seeds/000_55bf520eca77db85.txt, Strategy B),
// with its TypeScript types removed and every crypto call exactly as written there. getMasterKey()
// stands in for the Infisical lookup and returns the key of the item being encrypted.
//
// stdin: a JSON list of {value, keyHex}; stdout: a JSON list of the envelopes, in order.
import crypto from "crypto";

let currentKeyHex;

async function getMasterKey() {
  return currentKeyHex;
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

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const envelopes = [];
for (const { value, keyHex } of JSON.parse(Buffer.concat(chunks).toString("utf8"))) {
  currentKeyHex = keyHex;
  envelopes.push(await encryptSecret(value));
}
process.stdout.write(JSON.stringify(envelopes));
