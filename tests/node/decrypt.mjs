// The application's reader: the seed's decryptSecret (seeds/000_55bf520eca77db85.txt, Strategy B),
// with its TypeScript types removed and every crypto call exactly as written there. getMasterKey()
// stands in for the Infisical lookup and returns the key of the item being decrypted.
//
// stdin: a JSON list of {envelope, keyHex}; stdout: a JSON list of the plaintexts, in order.
import crypto from "crypto";

let currentKeyHex;

async function getMasterKey() {
  return currentKeyHex;
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

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const plaintexts = [];
for (const { envelope, keyHex } of JSON.parse(Buffer.concat(chunks).toString("utf8"))) {
  currentKeyHex = keyHex;
  plaintexts.push(await decryptSecret(envelope));
}
process.stdout.write(JSON.stringify(plaintexts));
