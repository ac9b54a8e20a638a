/**
 * The row binding, as tenant_secrets/secret/binding.py (decision 0027): each row of `company_secrets`
 * carries, in its `binding` column (which the seed's `decryptSecret` never reads), an HMAC-SHA256 over
 * the row's identity and ciphertext, so a ciphertext swapped or copied from another row is refused:
 *
 *     key     = HKDF-SHA256(master key of the row's key_version, salt = none, info = "tenant-secrets row-binding v1")
 *     message = "tenant-secrets row v1" NUL company id (lower case) NUL secret key NUL key_version NUL version NUL ciphertext
 *     binding = hex(HMAC-SHA256(key, message))
 *
 * Both languages are checked against one set of vectors (tests/fixtures/reader-vectors.json).
 * Nothing here returns or throws a key, a value or a ciphertext.
 */
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";

import { type Keyring, wellFormed } from "./envelope.js";

const INFO = "tenant-secrets row-binding v1";
const DOMAIN = "tenant-secrets row v1";
const KEPT_KEYS = 32;
const bindingKeys = new Map<string, Buffer>();

/** The MAC key of rows encrypted with `masterKey` (HKDF without salt: RFC 5869's zero salt). */
export function bindingKey(masterKey: Buffer): Buffer {
  const id = masterKey.toString("base64");
  let key = bindingKeys.get(id);
  if (key === undefined) {
    key = Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), INFO, 32));
    if (bindingKeys.size >= KEPT_KEYS) bindingKeys.clear();
    bindingKeys.set(id, key);
  }
  return key;
}

/** A row as far as its binding is concerned. */
export interface BoundRow {
  companyId: string;
  secretKey: string;
  keyVersion: number;
  version: number;
  ciphertext: string;
  binding: string | null;
}

/** The binding of a row: hex HMAC-SHA256 over its identity and ciphertext. */
export function rowBinding(masterKey: Buffer, row: Omit<BoundRow, "binding">): string {
  const message = [DOMAIN, row.companyId.toLowerCase(), row.secretKey, String(row.keyVersion), String(row.version), row.ciphertext].join("\0");
  return createHmac("sha256", bindingKey(masterKey)).update(message, "utf8").digest("hex");
}

/** The binding `row` should carry, under its own key version's master key. */
export function bind(keyring: Keyring, row: Omit<BoundRow, "binding">): string {
  return rowBinding(keyring.key(row.keyVersion), row);
}

/** Why a row's binding does not hold (binding.py's `Problem`, by name in lower case). */
export type Problem = "missing" | "malformed" | "altered";

export const PROBLEM_TEXT: Readonly<Record<Problem, string>> = {
  missing: "has no binding yet",
  malformed: "holds a ciphertext that is not a whole envelope (truncated or altered)",
  altered: "holds a ciphertext that was not written for it (moved from another row, altered, or put back from elsewhere)",
};

/** Whether `row`'s ciphertext is bound to it: null when it is. Throws KeyringError when the keyring lacks its version. */
export function checkRow(keyring: Keyring, row: BoundRow): Problem | null {
  if (!wellFormed(row.ciphertext)) return "malformed";
  if (row.binding === null || row.binding === undefined) return "missing";
  const expected = Buffer.from(bind(keyring, row), "utf8");
  const given = Buffer.from(row.binding.toLowerCase(), "utf8");
  return given.length === expected.length && timingSafeEqual(given, expected) ? null : "altered";
}
