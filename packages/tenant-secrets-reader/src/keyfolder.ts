/**
 * The master keyring as the application reads it, as tenant_secrets/secret/keyfolder.py: the secrets of
 * the key folder (`/hono-api`). `MASTER_ENCRYPTION_KEY` is the current key, exactly what the seed's
 * `getMasterKey()` reads; `MASTER_ENCRYPTION_KEY_VERSION` is its version; `MASTER_ENCRYPTION_KEY_V<n>` is
 * the key of version n, for every version a row still uses and for a new version before any row uses
 * it. A folder with `MASTER_ENCRYPTION_KEY` alone (the seed's layout) is version 1. Keys are hex.
 *
 * No error here contains a key: messages name the folder, the secret and the format.
 */
import { Keyring, MasterKeyError, parseMasterKey } from "./envelope.js";

export const CURRENT_KEY = "MASTER_ENCRYPTION_KEY";
export const CURRENT_VERSION = "MASTER_ENCRYPTION_KEY_VERSION";
export const DEFAULT_FOLDER = "/hono-api";
const VERSIONED = /^MASTER_ENCRYPTION_KEY_V([1-9][0-9]*)$/;
const FORMAT = "64 hex characters (32 random bytes, e.g. `openssl rand -hex 32`)";

/** The key folder lacks a key or holds a malformed one. */
export class KeyFolderError extends Error {
  override name = "KeyFolderError";
}

export function versionedName(version: number): string {
  return `MASTER_ENCRYPTION_KEY_V${version}`;
}

function parse(value: string, field: string): Buffer {
  try {
    return parseMasterKey(value.trim(), field);
  } catch (error) {
    if (error instanceof MasterKeyError) throw new KeyFolderError(error.message);
    throw error;
  }
}

/** The keyring a key folder's listing (`name -> value`) publishes; its active version is MASTER_ENCRYPTION_KEY's. */
export function keyringFromFolder(secrets: Readonly<Record<string, string>>, folder = DEFAULT_FOLDER): Keyring {
  const where = folder.replace(/\/+$/, "");
  const current = secrets[CURRENT_KEY];
  if (current === undefined) {
    throw new KeyFolderError(`${where}/${CURRENT_KEY} is missing: the application reads its master key there; set it to ${FORMAT}`);
  }
  const keys = new Map<number, Buffer>();
  for (const [name, value] of Object.entries(secrets)) {
    const m = VERSIONED.exec(name);
    if (m) keys.set(Number(m[1]), parse(value, `${where}/${name}`));
  }
  const currentKey = parse(current, `${where}/${CURRENT_KEY}`);
  const version = currentVersion(secrets, keys, currentKey, where);
  const published = keys.get(version);
  if (published === undefined) keys.set(version, currentKey);
  else if (!published.equals(currentKey)) {
    throw new KeyFolderError(
      `${where}/${CURRENT_KEY} differs from ${where}/${versionedName(version)} although ${CURRENT_VERSION} is ${version}: ` +
        `make them the same key, or fix ${CURRENT_VERSION}`,
    );
  }
  return new Keyring(keys, version);
}

function currentVersion(secrets: Readonly<Record<string, string>>, keys: Map<number, Buffer>, current: Buffer, where: string): number {
  const raw = secrets[CURRENT_VERSION];
  if (raw !== undefined) {
    const text = raw.trim().replace(/^[vV]+/, "");
    if (!/^[0-9]+$/.test(text) || Number(text) < 1) {
      throw new KeyFolderError(`${where}/${CURRENT_VERSION}: expected a whole number >= 1, the version of ${CURRENT_KEY}`);
    }
    return Number(text);
  }
  for (const [version, key] of keys) if (key.equals(current)) return version;
  if (keys.size) {
    const names = [...keys.keys()].sort((a, b) => a - b).map(versionedName).join(", ");
    throw new KeyFolderError(
      `${where}/${CURRENT_KEY} matches none of the versioned keys (${names}) and ${CURRENT_VERSION} is not set: set ${CURRENT_VERSION} to its version`,
    );
  }
  return 1;
}
