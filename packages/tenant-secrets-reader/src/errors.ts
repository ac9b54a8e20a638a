/**
 * The reader's errors, as tenant_secrets/reader/errors.py. None carries a secret value, a ciphertext or a
 * key: messages name the tenant, the secret's key, where it was looked for and why it could not be read,
 * and a cause from a driver or the Infisical SDK is never attached (its text could quote a row).
 */

/** Where a value was found, or where the lookup ended. */
export type Source = "cache" | "database" | "infisical";

export interface ErrorContext {
  tenant: string;
  key: string;
  source?: Source | null;
  companyId?: string | null;
}

/** Base class: `tenant` and `key` as the caller gave them; `source` where the lookup ended. */
export class ReaderError extends Error {
  readonly tenant: string;
  readonly key: string;
  readonly source: Source | null;
  readonly companyId: string | null;

  constructor(message: string, context: ErrorContext) {
    super(message);
    this.name = new.target.name;
    this.tenant = context.tenant;
    this.key = context.key;
    this.source = context.source ?? null;
    this.companyId = context.companyId ?? null;
  }
}

/** No company has this subdomain or id and (for a subdomain) its Infisical folder lacks the key; or the text is no subdomain. */
export class UnknownTenantError extends ReaderError {}

/** The tenant exists but holds no such secret where the reader looks. */
export class SecretNotFoundError extends ReaderError {}

/** The row exists but cannot be served: its key version is not published, it does not decrypt, or its
 * ciphertext is not bound to it (moved from another row). The reader never falls back past it. */
export class UndecryptableSecretError extends ReaderError {}

/** The database, Infisical or the key folder could not be read. */
export class SourceUnavailableError extends ReaderError {}

/** A value read from Infisical could not be written back to the database; it was not returned. */
export class WriteBackError extends ReaderError {}

/** The access log could not keep up (its backlog is full and its sinks fail); the value was not returned. */
export class AccessLogError extends ReaderError {}
