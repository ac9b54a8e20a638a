// The Node side of the readers' shared test vectors (tests/fixtures/reader-vectors.json): the envelope,
// the row binding, the key folder's keyring and what names a company agree byte for byte with the Python
// reader, which checks itself against the same file (tests/secret/test_shared_vectors.py).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { EnvelopeError, KeyFolderError, Keyring, bindingKey, checkRow, companyIdOf, decrypt, encrypt, keyringFromFolder, rowBinding, subdomainProblem, tenantRef, wellFormed } from "../src/index.js";

const path = process.env.TENANT_SECRETS_VECTORS ?? new URL("../../../../tests/fixtures/reader-vectors.json", import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const vectors: any = JSON.parse(readFileSync(path, "utf8"));

function keyringOf(spec: { active: number; keys: Record<string, string> }): Keyring {
  return Keyring.fromHex(spec.keys, spec.active);
}

describe("shared vectors: the envelope", () => {
  for (const v of vectors.envelopes) {
    it(`${v.name}: decrypts to its plaintext, and encrypting with its IV gives the same envelope`, () => {
      const key = Buffer.from(v.keyHex, "hex");
      assert.equal(decrypt(v.envelope, key), v.plaintext);
      assert.equal(encrypt(v.plaintext, key, Buffer.from(v.ivHex, "hex")), v.envelope);
    });
  }
  for (const v of vectors.badEnvelopes) {
    it(`${v.name}: refused, and the error shows no envelope`, () => {
      assert.equal(wellFormed(v.envelope), v.wellFormed);
      assert.throws(
        () => decrypt(v.envelope, Buffer.from(v.keyHex, "hex")),
        (error: Error) => error instanceof EnvelopeError && !error.message.includes(v.envelope.split(":")[1] || "\u0000"),
      );
    });
  }
});

describe("shared vectors: the row binding", () => {
  for (const v of vectors.bindings) {
    it(`${v.name}: the same HKDF key and HMAC`, () => {
      const key = Buffer.from(v.masterKeyHex, "hex");
      assert.equal(bindingKey(key).toString("hex"), v.bindingKeyHex);
      assert.equal(rowBinding(key, v), v.binding);
    });
  }
  for (const v of vectors.checkRow) {
    it(`${v.name}: ${v.problem ?? "bound"}`, () => {
      assert.equal(checkRow(keyringOf(v.keyring), v.row), v.problem);
    });
  }
});

describe("shared vectors: the key folder", () => {
  for (const v of vectors.keyFolders) {
    it(`${v.name}: ${v.keyring === null ? "refused" : `active v${v.keyring.active}`}`, () => {
      if (v.keyring === null) {
        assert.throws(
          () => keyringFromFolder(v.secrets, "/hono-api"),
          (error: Error) => error instanceof KeyFolderError && Object.values(v.secrets as Record<string, string>).every((s) => s.length < 16 || !error.message.includes(s.trim())),
        );
        return;
      }
      const keyring = keyringFromFolder(v.secrets, "/hono-api");
      assert.equal(keyring.active, v.keyring.active);
      assert.deepEqual(Object.fromEntries(keyring.versions.map((n) => [String(n), keyring.key(n).toString("hex")])), v.keyring.keys);
    });
  }
});

describe("shared vectors: what names a company (decision 0046)", () => {
  for (const v of vectors.tenantRefs) {
    it(`${JSON.stringify(v.text)}: ${v.companyId ?? (v.subdomain ? "a subdomain" : "neither")}`, () => {
      assert.equal(companyIdOf(v.text), v.companyId);
      const ref = tenantRef(v.text);
      assert.equal(ref.subdomain !== undefined && subdomainProblem(ref.subdomain) === null, v.subdomain);
      // what this reader takes for a company id, `tenantctl validate` refuses as a tenant's subdomain
      if (companyIdOf(v.text) !== null) assert.equal(v.tenantName, false);
    });
  }
});
