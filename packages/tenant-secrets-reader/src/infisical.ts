/**
 * The reader's Infisical side, through the official SDK (`@infisical/sdk`), as
 * tenant_secrets/reader/sources.py: the master keyring from the key folder, and tenants' folders.
 *
 * Every request asks for the stored text (`expandSecretReferences: false`, no imports), since Infisical
 * would otherwise expand `${env.path.KEY}` in a value into another folder's secret. An SDK error is
 * reduced to its HTTP status: its text names URLs, and this package never passes a driver's text on.
 */
import { InfisicalSDK } from "@infisical/sdk";

import { Keyring } from "./envelope.js";
import { DEFAULT_FOLDER, keyringFromFolder } from "./keyfolder.js";

/** A machine identity with universal auth (the seed's `@repo/infisical` uses the same). */
export interface InfisicalSettings {
  siteUrl: string;
  clientId: string;
  clientSecret: string;
  projectId: string;
}

/** Infisical could not be read; `status` is the HTTP status when there was one. */
export class InfisicalError extends Error {
  override name = "InfisicalError";
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
  }
}

function statusOf(error: unknown): number | null {
  const text = error instanceof Error ? error.message : "";
  const m = /\[StatusCode=(\d{3})\]/.exec(text);
  return m ? Number(m[1]) : null;
}

/** One logged-in SDK client for a process; logs in again once when the access token has expired. */
export class Infisical {
  readonly projectId: string;
  readonly #settings: InfisicalSettings;
  readonly #sdk: InfisicalSDK;
  #login: Promise<unknown> | null = null;

  constructor(settings: InfisicalSettings) {
    this.#settings = settings;
    this.projectId = settings.projectId;
    this.#sdk = new InfisicalSDK({ siteUrl: settings.siteUrl });
  }

  /** The Infisical settings from the environment: INFISICAL_SITE_URL, _CLIENT_ID, _CLIENT_SECRET, _PROJECT_ID. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): Infisical {
    const names = ["INFISICAL_SITE_URL", "INFISICAL_CLIENT_ID", "INFISICAL_CLIENT_SECRET", "INFISICAL_PROJECT_ID"] as const;
    const missing = names.filter((n) => !env[n]);
    if (missing.length) throw new RangeError(`set ${missing.join(", ")} (a machine identity with universal auth)`);
    return new Infisical({
      siteUrl: env.INFISICAL_SITE_URL!,
      clientId: env.INFISICAL_CLIENT_ID!,
      clientSecret: env.INFISICAL_CLIENT_SECRET!,
      projectId: env.INFISICAL_PROJECT_ID!,
    });
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `Infisical(siteUrl=${this.#settings.siteUrl}, projectId=${this.projectId})`;
  }

  toJSON(): { siteUrl: string; projectId: string } {
    return { siteUrl: this.#settings.siteUrl, projectId: this.projectId };
  }

  /** Run `call` with a logged-in client; `what` names the request in errors. */
  async call<T>(what: string, call: (sdk: InfisicalSDK) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      await this.#loggedIn(what);
      try {
        return await call(this.#sdk);
      } catch (error) {
        const status = statusOf(error);
        if (status === 401 && attempt === 0) {
          this.#login = null; // the token expired or was revoked: log in again, once
          continue;
        }
        throw new InfisicalError(`${what}: ${status === null ? "Infisical could not be reached" : `Infisical answered ${status}`}`, status);
      }
    }
  }

  async #loggedIn(what: string): Promise<void> {
    if (this.#login === null) {
      const { clientId, clientSecret } = this.#settings;
      this.#login = this.#sdk.auth().universalAuth.login({ clientId, clientSecret });
    }
    try {
      await this.#login;
    } catch (error) {
      this.#login = null;
      const status = statusOf(error);
      throw new InfisicalError(`${what}: cannot log in to Infisical${status === null ? "" : ` (it answered ${status})`}`, status);
    }
  }

  /** A folder's secrets as `name -> value`; null when the folder does not exist. */
  async listFolder(environment: string, secretPath: string): Promise<Record<string, string> | null> {
    try {
      const { secrets } = await this.call(`listing ${environment}:${secretPath}`, (sdk) =>
        sdk.secrets().listSecrets({
          environment,
          projectId: this.projectId,
          secretPath,
          expandSecretReferences: false,
          includeImports: false,
          viewSecretValue: true,
        }),
      );
      return Object.fromEntries(secrets.map((s) => [s.secretKey, s.secretValue]));
    } catch (error) {
      if (error instanceof InfisicalError && error.status === 404) return null;
      throw error;
    }
  }

  /** Whether the folder exists: one listing of its parent's subfolders. */
  async folderExists(environment: string, path: string): Promise<boolean> {
    const at = path.replace(/\/+$/, "").lastIndexOf("/");
    const parent = at <= 0 ? "/" : path.slice(0, at);
    const name = path.slice(at + 1).replace(/\/+$/, "");
    try {
      const folders = await this.call(`listing the folders of ${environment}:${parent}`, (sdk) =>
        sdk.folders().listFolders({ environment, projectId: this.projectId, path: parent }),
      );
      return !name || folders.some((f) => f.name === name);
    } catch (error) {
      if (error instanceof InfisicalError && error.status === 404) return false;
      throw error;
    }
  }

  /** One secret's value; undefined when the key or its folder does not exist. */
  async getSecret(environment: string, secretPath: string, secretName: string): Promise<string | undefined> {
    try {
      const secret = await this.call(`reading ${secretName} in ${environment}:${secretPath}`, (sdk) =>
        sdk.secrets().getSecret({
          environment,
          projectId: this.projectId,
          secretPath,
          secretName,
          expandSecretReferences: false,
          includeImports: false,
          viewSecretValue: true,
        }),
      );
      if (secret.secretValueHidden) {
        throw new InfisicalError(`the identity may not read the value of ${secretName} in ${environment}:${secretPath}; grant it read access`, 403);
      }
      return secret.secretValue;
    } catch (error) {
      if (error instanceof InfisicalError && error.status === 404) return undefined;
      throw error;
    }
  }
}

/** Where the reader gets master keys. */
export interface KeyringSource {
  /** A keyring to decrypt a row of `version`: it holds that version if the source has it (the caller checks). */
  keyringWith(version: number): Promise<Keyring>;
  /** The keyring as the source holds it now, to encrypt a write: a kept one may be a rotation old. */
  freshKeyring(): Promise<Keyring>;
}

/** A keyring given directly (from the service's own configuration). */
export class StaticKeyring implements KeyringSource {
  constructor(readonly keyring: Keyring) {}
  async keyringWith(): Promise<Keyring> {
    return this.keyring;
  }
  async freshKeyring(): Promise<Keyring> {
    return this.keyring;
  }
}

/**
 * The keyring the key folder publishes (keyfolder.ts), read with one listing and kept for `ttlMs`, so a
 * rotation's new version is picked up. {@link keyringWith} reads the folder again at once when a row
 * names a version the kept keyring lacks (a rotation has just published it); concurrent callers that
 * saw the same stale keyring share that one read.
 */
export class KeyFolder implements KeyringSource {
  readonly #infisical: Infisical;
  readonly #environment: string;
  readonly #folder: string;
  readonly #ttlMs: number;
  readonly #clock: () => number;
  #kept: Keyring | null = null;
  #expires = 0;
  #loading: Promise<Keyring> | null = null;
  /** How many times the folder was listed (for tests and the benchmark). */
  reads = 0;

  constructor(infisical: Infisical, environment: string, options: { folder?: string; ttlMs?: number; clock?: () => number } = {}) {
    this.#infisical = infisical;
    this.#environment = environment;
    this.#folder = options.folder ?? DEFAULT_FOLDER;
    this.#ttlMs = options.ttlMs ?? 300_000;
    if (!(this.#ttlMs >= 0)) throw new RangeError("ttlMs: milliseconds >= 0 to keep the key folder's keyring");
    this.#clock = options.clock ?? performance.now.bind(performance);
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `KeyFolder(environment=${this.#environment}, folder=${this.#folder}, ttlMs=${this.#ttlMs})`;
  }

  /** The kept keyring, read again when its ttl is up. */
  async keyring(): Promise<Keyring> {
    if (this.#kept !== null && this.#clock() < this.#expires) return this.#kept;
    return this.#load(this.#kept);
  }

  async keyringWith(version: number): Promise<Keyring> {
    const seen = await this.keyring();
    if (seen.has(version)) return seen;
    return this.#load(seen);
  }

  async freshKeyring(): Promise<Keyring> {
    return this.#load(this.#kept, true);
  }

  /** Read the folder, unless someone already replaced `stale` (or is reading it now). */
  #load(stale: Keyring | null, always = false): Promise<Keyring> {
    if (!always && this.#kept !== stale && this.#kept !== null) return Promise.resolve(this.#kept);
    if (this.#loading === null) {
      this.#loading = (async () => {
        try {
          this.reads++;
          const listing = await this.#infisical.listFolder(this.#environment, this.#folder);
          const keyring = keyringFromFolder(listing ?? {}, this.#folder);
          this.#kept = keyring;
          this.#expires = this.#clock() + this.#ttlMs;
          return keyring;
        } finally {
          this.#loading = null;
        }
      })();
    }
    return this.#loading;
  }
}

/** The fallback: a tenant's secret from its Infisical folder `/tenants/<subdomain>` (one request). */
export class TenantFolders {
  readonly #infisical: Infisical;
  readonly #environment: string;

  constructor(infisical: Infisical, environment: string) {
    this.#infisical = infisical;
    this.#environment = environment;
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `TenantFolders(environment=${this.#environment})`;
  }

  folder(subdomain: string): string {
    return `/tenants/${subdomain}`;
  }

  /** The value of `key` in the tenant's folder; undefined when the key or the folder does not exist. */
  get(subdomain: string, key: string): Promise<string | undefined> {
    return this.#infisical.getSecret(this.#environment, this.folder(subdomain), key);
  }

  /** Whether the tenant has a folder (one more request): tells an unknown tenant from a missing secret. */
  exists(subdomain: string): Promise<boolean> {
    return this.#infisical.folderExists(this.#environment, this.folder(subdomain));
  }
}
