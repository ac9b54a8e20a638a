/**
 * The seed's payments route (apps/hono-api/src/routes/payments.ts in the seed document), reading the
 * request's tenant's STRIPE_SECRET_KEY through tenant-secrets-reader instead of a bare Infisical call.
 *
 * The response proves which key was used without showing it: a short SHA-256 fingerprint, which the
 * end-to-end tests compare (tests/reader/test_hono_example.py). Errors answer with a status and a fixed
 * text; the reader's own message (value-free, but it names the tenant's rows) goes to the server's log.
 */
import { createHash } from "node:crypto";

import { Hono, type Context } from "hono";
import { ReaderError, SecretNotFoundError, UndecryptableSecretError, UnknownTenantError } from "tenant-secrets-reader";

/** What the route needs of the reader: the seed's `getTenantSecret`. */
export interface TenantSecrets {
  getTenantSecret(subdomainOrCompanyId: string, key: string): Promise<string>;
}

/** The seed's `getCompanyFromRequest`: the tenant is the request's subdomain (`acme.example.com` is `acme`). */
export function getCompanyFromRequest(c: Context): { subdomain: string } | null {
  const host = (c.req.header("host") ?? "").split(":")[0]!.toLowerCase();
  const labels = host.split(".");
  return labels.length >= 3 && labels[0] ? { subdomain: labels[0] } : null;
}

export function fingerprint(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("hex").slice(0, 16);
}

export function createApp(secrets: TenantSecrets, log: (line: string) => void = (line) => console.error(line)): Hono {
  const app = new Hono();

  app.post("/api/payments/create", async (c) => {
    const company = getCompanyFromRequest(c);
    if (company === null) return c.json({ error: "no tenant in the request's host" }, 404);
    const stripeKey = await secrets.getTenantSecret(company.subdomain, "STRIPE_SECRET_KEY");
    // Use stripeKey for payment processing (here: only its fingerprint leaves the process)
    return c.json({ tenant: company.subdomain, stripeKeyFingerprint: fingerprint(stripeKey) });
  });

  app.onError((error, c) => {
    log(`${c.req.method} ${c.req.path}: ${error instanceof ReaderError ? `${error.name}: ${error.message}` : error.name}`);
    if (error instanceof UnknownTenantError) return c.json({ error: "unknown tenant" }, 404);
    if (error instanceof SecretNotFoundError) return c.json({ error: "the tenant has no such secret" }, 404);
    if (error instanceof UndecryptableSecretError) return c.json({ error: "the tenant's secret cannot be served" }, 500);
    if (error instanceof ReaderError) return c.json({ error: "tenant secrets are unavailable" }, 503);
    return c.json({ error: "internal error" }, 500);
  });
  return app;
}
