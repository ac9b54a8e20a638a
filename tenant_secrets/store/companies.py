"""Reading (and, for demos, creating) rows of the application's companies table."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

import psycopg
from psycopg import sql

from tenant_secrets.store.errors import CompanyNotFoundError, StoreError
from tenant_secrets.store.settings import COMPANIES, StoreSettings


def lookup_companies(
    conn: psycopg.Connection[Any], settings: StoreSettings, subdomains: Collection[str]
) -> dict[str, str]:
    """``subdomain -> company id`` (uuid text) for those of ``subdomains`` that exist, in one query."""
    if not subdomains:
        return {}
    with conn.transaction():
        rows = conn.execute(
            sql.SQL("SELECT subdomain, id::text FROM {} WHERE subdomain = ANY(%s::text[])").format(
                settings.table(COMPANIES)
            ),
            [list(subdomains)],
        ).fetchall()
    return {str(subdomain): str(company_id) for subdomain, company_id in rows}


def find_companies(
    conn: psycopg.Connection[Any], settings: StoreSettings, subdomains: Collection[str], ids: Collection[str]
) -> dict[str, str]:
    """``subdomain -> id`` of the companies named by subdomain or by id (uuid text), in one query."""
    rows = conn.execute(
        sql.SQL("SELECT subdomain, id::text FROM {} WHERE subdomain = ANY(%s::text[]) OR id = ANY(%s::uuid[])").format(
            settings.table(COMPANIES)
        ),
        [list(subdomains), list(ids)],
    ).fetchall()
    return {str(subdomain): str(cid) for subdomain, cid in rows}


def require_companies(
    conn: psycopg.Connection[Any], settings: StoreSettings, subdomains: Collection[str]
) -> dict[str, str]:
    """Like :func:`lookup_companies`, but :class:`CompanyNotFoundError` names every missing subdomain."""
    found = lookup_companies(conn, settings, subdomains)
    if missing := set(subdomains) - found.keys():
        raise CompanyNotFoundError(missing)
    return found


def ensure_companies(
    conn: psycopg.Connection[Any],
    settings: StoreSettings,
    companies: Mapping[str, tuple[str | None, str | None]],
) -> dict[str, str]:
    """Demo only: insert the companies missing from ``subdomain -> (id or None, name or None)``.

    A missing id is generated, a missing name is the subdomain. Returns ``subdomain -> id`` for all.
    A company that exists under another id than the one asked for is an error, not silently kept.
    """
    if not companies:
        return {}
    subdomains = list(companies)
    wanted = {s: company_id(i, label=s) for s, (i, _name) in companies.items() if i is not None}
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (id, subdomain, name)"
                " SELECT coalesce(u.id, gen_random_uuid()), u.subdomain, coalesce(u.name, u.subdomain)"
                " FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS u(id, subdomain, name)"
                " ON CONFLICT (subdomain) DO NOTHING"
            ).format(settings.table(COMPANIES)),
            [[wanted.get(s) for s in subdomains], subdomains, [companies[s][1] for s in subdomains]],
        )
        found = lookup_companies(conn, settings, subdomains)
        if clashes := sorted(s for s, i in wanted.items() if found[s] != i):
            raise StoreError(
                f"companies {', '.join(clashes)} already exist with another id than the one given: "
                "fix the company_id or leave it out; nothing was written"
            )
    return found


def company_id(value: str, *, label: str) -> str:
    """``value`` as a canonical uuid string, else ``ValueError`` naming ``label`` (never a secret)."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{label}: company id must be a UUID") from None
