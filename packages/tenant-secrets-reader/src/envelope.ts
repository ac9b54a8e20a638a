/**
 * The encryption envelope shared with the application (Strategy B), as tenant_secrets/secret/envelope.py.
 *
 * AES-256-GCM, a 12-byte random IV, a 32-byte master key given as 64 hex characters; a value is stored as
 * `ivHex:ciphertextHex:authTagHex`, byte for byte what the seed's `encryptSecret` writes, so the seed's
 * `decryptSecret` reads every row this package writes. Which key encrypted a value is the row's
 * `key_version` column, never part of the string, for the same reason.
 *
 * No error raised here contains a key, a plaintext or an envelope: messages name the part that is wrong.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { inspect } from "node:util";

export const KEY_BYTES = 32;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;

const HEX = /^[0-9a-fA-F]*$/;
const KEY_FIX = "give 32 random bytes as 64 hex characters, e.g. the output of `openssl rand -hex 32`";
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/** A master key is malformed; the message names the field, never the value. */
export class MasterKeyError extends Error {
  override name = "MasterKeyError";
}

/** An envelope cannot be read: bad format, another key, or altered. */
export class EnvelopeError extends Error {
  override name = "EnvelopeError";
}

/** A keyring is inconsistent, or lacks a key version that a row needs. */
export class KeyringError extends Error {
  override name = "KeyringError";
}

/** Decode a key given as 64 hex characters; `field` names it in errors. */
export function parseMasterKey(hexKey: string, field: string): Buffer {
  if (typeof hexKey !== "string") throw new MasterKeyError(`${field}: expected a string of 64 hex characters; ${KEY_FIX}`);
  if (hexKey.length !== 2 * KEY_BYTES) {
    throw new MasterKeyError(`${field}: expected 64 hex characters, got ${hexKey.length}; ${KEY_FIX}`);
  }
  if (!HEX.test(hexKey)) throw new MasterKeyError(`${field}: contains characters other than 0-9 and a-f; ${KEY_FIX}`);
  return Buffer.from(hexKey, "hex");
}

function checkKey(key: Buffer): void {
  if (key.length !== KEY_BYTES) throw new MasterKeyError(`a master key must be ${KEY_BYTES} bytes, got ${key.length}`);
}

/** Encrypt `value` (UTF-8) as `ivHex:ciphertextHex:authTagHex`; `iv` is for test vectors only. */
export function encrypt(value: string, key: Buffer, iv: Buffer = randomBytes(IV_BYTES)): string {
  checkKey(key);
  if (!value.isWellFormed()) throw new EnvelopeError("the value is not valid Unicode text (a lone surrogate)");
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const sealed = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
  return `${iv.toString("hex")}:${sealed.toString("hex")}:${cipher.getAuthTag().toString("hex")}`;
}

function split(envelope: string): [Buffer, Buffer, Buffer] {
  const parts = typeof envelope === "string" ? envelope.split(":") : [];
  if (parts.length !== 3) throw bad(`expected 3 parts separated by ':', got ${parts.length}`);
  const [ivHex, ctHex, tagHex] = parts as [string, string, string];
  for (const [name, text, length] of [["iv", ivHex, 2 * IV_BYTES], ["authTag", tagHex, 2 * TAG_BYTES]] as const) {
    if (text.length !== length || !HEX.test(text)) throw bad(`the ${name} part must be ${length} hex characters`);
  }
  if (ctHex.length % 2 || !HEX.test(ctHex)) throw bad("the ciphertext part must be an even number of hex characters");
  return [Buffer.from(ivHex, "hex"), Buffer.from(ctHex, "hex"), Buffer.from(tagHex, "hex")];
}

function bad(reason: string): EnvelopeError {
  return new EnvelopeError(`not an ivHex:ciphertextHex:authTagHex envelope: ${reason}`);
}

/** Decrypt an `ivHex:ciphertextHex:authTagHex` envelope, else throw {@link EnvelopeError}. */
export function decrypt(envelope: string, key: Buffer): string {
  checkKey(key);
  const [iv, ciphertext, tag] = split(envelope);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, iv);
    decipher.setAuthTag(tag);
    plain = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw new EnvelopeError("decryption failed: the envelope was encrypted with another key or has been altered");
  }
  try {
    return STRICT_UTF8.decode(plain);
  } catch {
    throw new EnvelopeError("decryption succeeded but the plaintext is not valid UTF-8");
  }
}

/** Whether `envelope` has the `ivHex:ciphertextHex:authTagHex` shape (it may still not decrypt). */
export function wellFormed(envelope: string): boolean {
  try {
    split(envelope);
    return true;
  } catch {
    return false;
  }
}

/**
 * Master keys by version (>= 1) and the version new values are encrypted with. Its keys are private:
 * `console.log`, `util.inspect` and `JSON.stringify` show the versions only.
 */
export class Keyring {
  readonly #keys: ReadonlyMap<number, Buffer>;
  readonly active: number;

  constructor(keys: ReadonlyMap<number, Buffer>, active: number) {
    for (const [version, key] of keys) {
      if (!Number.isSafeInteger(version) || version < 1) throw new KeyringError(`key versions must be integers >= 1, got ${version}`);
      if (key.length !== KEY_BYTES) throw new MasterKeyError(`key version ${version}: expected ${KEY_BYTES} bytes, got ${key.length}`);
    }
    this.#keys = new Map(keys);
    if (!this.#keys.has(active)) {
      throw new KeyringError(`active key version ${active} is not in the keyring (versions: ${this.versionsText()})`);
    }
    this.active = active;
  }

  /** Build from `{version: hex key}`; errors name `<fieldPrefix>.<version>`. */
  static fromHex(keys: Readonly<Record<string, string>>, active: number, fieldPrefix = "masterKeys"): Keyring {
    const parsed = new Map<number, Buffer>();
    for (const [raw, hexKey] of Object.entries(keys)) {
      const field = `${fieldPrefix}.${raw}`;
      if (!/^[0-9]+$/.test(raw) || Number(raw) < 1) throw new KeyringError(`${field}: a key version must be an integer >= 1`);
      parsed.set(Number(raw), parseMasterKey(hexKey, field));
    }
    return new Keyring(parsed, active);
  }

  get versions(): number[] {
    return [...this.#keys.keys()].sort((a, b) => a - b);
  }

  has(version: number): boolean {
    return this.#keys.has(version);
  }

  /** The key of `version`; {@link KeyringError} if the keyring lacks it. */
  key(version: number): Buffer {
    const key = this.#keys.get(version);
    if (key === undefined) throw new KeyringError(`key version ${version} is not in the keyring (versions: ${this.versionsText()})`);
    return key;
  }

  /** Encrypt with the active key (store `this.active` beside the result). */
  encrypt(value: string): string {
    return encrypt(value, this.key(this.active));
  }

  decrypt(envelope: string, version: number): string {
    return decrypt(envelope, this.key(version));
  }

  toJSON(): { versions: number[]; active: number } {
    return { versions: this.versions, active: this.active };
  }

  [inspect.custom](): string {
    return `Keyring(versions=[${this.versions.join(", ")}], active=${this.active})`;
  }

  private versionsText(): string {
    return this.versions.join(", ") || "none";
  }
}
