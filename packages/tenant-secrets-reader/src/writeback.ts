/**
 * The optional write-back of a value found only in the tenant's Infisical folder, as the Python reader's
 * `insert_if_absent` (decision 0021): one `INSERT ... ON CONFLICT DO NOTHING`, so a row that exists,
 * whoever wrote it a moment ago, is never changed; the row is bound (decision 0027: HMAC over its
 * company, key, key_version, version 1 and ciphertext) under the active version of a keyring read afresh
 * from the key folder, with `key_version` and `version` given explicitly; and the stored row is read back,
 * decrypted, compared and its binding checked before the transaction commits. A row the seed's own
 * `setTenantSecret` writes carries no binding; this one always does (docs/decisions/0047-node-reader.md).
 */
import type pg from "pg";

import { bind, checkRow } from "./binding.js";
import type { Tables } from "./database.js";
import type { Keyring } from "./envelope.js";

/** A pool of a role that may insert into company_secrets (the provisioning role), e.g. a `pg.Pool`. */
export interface WritePool {
  connect(): Promise<pg.PoolClient>;
}

/** Store `value` for the company if it has no `key` yet; true if this call wrote it. Throws when the row read back differs. */
export async function insertIfAbsent(pool: WritePool, tables: Tables, companyId: string, key: string, value: string, keyring: Keyring): Promise<boolean> {
  const ciphertext = keyring.encrypt(value);
  const row = { companyId, secretKey: key, keyVersion: keyring.active, version: 1, ciphertext };
  const binding = bind(keyring, row);
  const client = await pool.connect();
  let healthy = true;
  try {
    await client.query("BEGIN");
    const stored = await client.query({
      text:
        `INSERT INTO ${tables.secrets} (company_id, secret_key, secret_value_encrypted, key_version, version, binding)` +
        " VALUES ($1::uuid, $2, $3, $4, 1, $5) ON CONFLICT (company_id, secret_key) DO NOTHING" +
        " RETURNING company_id::text, secret_key, secret_value_encrypted, key_version, version, binding",
      values: [companyId, key, ciphertext, keyring.active, binding],
    });
    const back = stored.rows[0] as Record<string, unknown> | undefined;
    if (back === undefined) {
      await client.query("COMMIT");
      return false;
    }
    const readBack = {
      companyId: String(back.company_id),
      secretKey: String(back.secret_key),
      keyVersion: Number(back.key_version),
      version: Number(back.version),
      ciphertext: String(back.secret_value_encrypted),
      binding: back.binding === null ? null : String(back.binding),
    };
    let same = false;
    try {
      same = keyring.decrypt(readBack.ciphertext, readBack.keyVersion) === value && checkRow(keyring, readBack) === null;
    } catch {
      same = false;
    }
    if (!same) {
      await client.query("ROLLBACK");
      throw new Error(`the stored ${key} of company ${companyId} does not read back as the bound value written; nothing was written`);
    }
    await client.query("COMMIT");
    return true;
  } catch (error) {
    try {
      await client.query("ROLLBACK"); // a no-op warning when already rolled back
    } catch {
      healthy = false; // a broken connection is not put back in the pool
    }
    throw error;
  } finally {
    client.release(!healthy);
  }
}
