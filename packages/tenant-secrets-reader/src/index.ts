/**
 * tenant-secrets-reader: tenants' secrets for a Node.js service, the seed's hybrid `getTenantSecret`
 * (memory, then the database, then the tenant's Infisical folder). Guide:
 * docs/guides/master-key-and-readers.md; design: docs/decisions/0047-node-reader.md.
 *
 *     const infisical = Infisical.fromEnv();
 *     const reader = new TenantSecretReader({
 *       database: new pg.Pool({ connectionString: process.env.APP_DATABASE_URL }),  // the application role
 *       keyring: new KeyFolder(infisical, "prod"),                                  // /hono-api
 *       fallback: new TenantFolders(infisical, "prod"),                             // /tenants/<subdomain>
 *     });
 *     const stripeKey = await reader.getTenantSecret("codewiser", "STRIPE_SECRET_KEY");
 */
export { AccessLog, type AccessEvent, type AccessLogOptions, type AccessSink, type Outcome, StreamAccessSink, TableAccessSink } from "./accessLog.js";
export { type BoundRow, type Problem, bind, bindingKey, checkRow, rowBinding } from "./binding.js";
export { SecretCache } from "./cache.js";
export { type Lookup, type Queryable, type StoredRow, Tables, lookupQuery, readSecret } from "./database.js";
export { EnvelopeError, Keyring, KeyringError, MasterKeyError, decrypt, encrypt, parseMasterKey, wellFormed } from "./envelope.js";
export {
  AccessLogError,
  ReaderError,
  SecretNotFoundError,
  type Source,
  SourceUnavailableError,
  UndecryptableSecretError,
  UnknownTenantError,
  WriteBackError,
} from "./errors.js";
export { Infisical, InfisicalError, type InfisicalSettings, KeyFolder, type KeyringSource, StaticKeyring, TenantFolders } from "./infisical.js";
export { CURRENT_KEY, CURRENT_VERSION, DEFAULT_FOLDER, KeyFolderError, keyringFromFolder, versionedName } from "./keyfolder.js";
export { type TenantRef, companyIdOf, subdomainProblem, tenantRef } from "./names.js";
export { MAX_KEY_LENGTH, type ReaderOptions, TenantSecretReader } from "./reader.js";
export { type WritePool, insertIfAbsent } from "./writeback.js";
