/**
 * What the text a caller passes names (decision 0046): text that reads as a UUID is a company id, never a
 * subdomain; anything else is a subdomain, which must be a valid one (tenant_secrets/tenants_file/names.py).
 * "Reads as a UUID" is exactly ASCII text that Python's `uuid.UUID` accepts, so both readers resolve the same text
 * to the same company, and `tenantctl validate` refuses every such subdomain (tests/fixtures/reader-vectors.json,
 * `tenantRefs`).
 */

export type TenantRef = { readonly companyId: string; readonly subdomain?: undefined } | { readonly subdomain: string; readonly companyId?: undefined };

const SUBDOMAIN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const RESERVED_SUBDOMAINS: ReadonlySet<string> = new Set([
  "admin", "api", "app", "assets", "auth", "blog", "cdn", "dashboard", "dev", "docs", "ftp",
  "help", "imap", "internal", "localhost", "mail", "ns1", "ns2", "pop", "prod", "shared", "smtp",
  "staging", "static", "status", "support", "tenants", "webmail", "www",
]);
// Python's int(text, 16) once uuid.UUID has dropped "urn:", "uuid:", braces at the ends and hyphens, on ASCII
// text (the Python reader parses nothing else): ASCII spaces around, a sign, a 0x prefix, "_" between digits.
const PY_HEX_INT = /^[\t\n\v\f\r ]*\+?(?:0[xX]_?)?([0-9a-fA-F](?:_?[0-9a-fA-F])*)[\t\n\v\f\r ]*$/;

/** The company id (lower-case, hyphenated) that `text` reads as, or null when it is not a UUID. */
export function companyIdOf(text: string): string | null {
  const hex = text.replaceAll("urn:", "").replaceAll("uuid:", "").replace(/^[{}]+|[{}]+$/g, "").replaceAll("-", "");
  if (hex.length !== 32) return null;
  const m = PY_HEX_INT.exec(hex);
  if (!m) return null;
  const digits = BigInt(`0x${m[1]!.replaceAll("_", "")}`).toString(16).padStart(32, "0");
  return `${digits.slice(0, 8)}-${digits.slice(8, 12)}-${digits.slice(12, 16)}-${digits.slice(16, 20)}-${digits.slice(20)}`;
}

/** `text` as the reader resolves it: a company id when it reads as a UUID, else a subdomain. */
export function tenantRef(text: string): TenantRef {
  const companyId = companyIdOf(text);
  return companyId === null ? { subdomain: text } : { companyId };
}

/** The canonical name of a reference: the company id's text, or the subdomain. */
export function refName(ref: TenantRef): string {
  return ref.companyId ?? ref.subdomain!;
}

/** Null for a valid tenant subdomain (a DNS label, not reserved); else why not, never more than the text given. */
export function subdomainProblem(value: string): string | null {
  if (SUBDOMAIN.test(value)) return RESERVED_SUBDOMAINS.has(value) ? `'${value}' is reserved` : null;
  if (!value) return "the subdomain is empty";
  if (value.length > 63) return `the subdomain is ${value.length} characters long`;
  return `'${value}' is not a DNS label: only lowercase letters a-z, digits and hyphens, no hyphen at an end`;
}
