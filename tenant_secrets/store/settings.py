"""Where the store's tables live: names derived from the application's table prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import sql

# Base names, before the prefix. `companies` is the application's table; the others are ours.
COMPANIES = "companies"
SECRETS = "company_secrets"
HISTORY = "company_secret_versions"
AUDIT = "company_secret_audit"
ACCESS = "company_secret_access"
MIGRATIONS = "tenant_secrets_migrations"
APP_ROLES = "tenant_secrets_app_roles"
KEY_STATE = "tenant_secrets_key_state"

_MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1
_LONGEST_BASE = max(len(n) for n in (COMPANIES, SECRETS, HISTORY, AUDIT, ACCESS, MIGRATIONS, APP_ROLES, KEY_STATE))
MAX_PREFIX = _MAX_IDENTIFIER - _LONGEST_BASE
# Drizzle's createTable prefixes are often a project name plus "_" (hyphens included: every name is
# quoted, here as in Drizzle). The first character must not be a digit or a hyphen.
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class StoreSettings:
    """How the store maps onto the application's database.

    ``table_prefix`` is prepended verbatim to every table name, companies included, exactly as the
    application's Drizzle ``createTable`` does. ``create_companies_table`` is for demos and tests only:
    the companies table belongs to the application.
    """

    table_prefix: str = ""
    history_retention: int = 10
    create_companies_table: bool = False

    def __post_init__(self) -> None:
        if self.table_prefix and not _PREFIX.fullmatch(self.table_prefix):
            raise ValueError(
                "table_prefix: use letters, digits, '_' and '-', starting with a letter or '_' "
                "(the application's Drizzle createTable prefix, e.g. 'deliverychat_')"
            )
        if len(self.table_prefix) > MAX_PREFIX:
            raise ValueError(f"table_prefix: at most {MAX_PREFIX} characters, so table names fit in 63")
        if isinstance(self.history_retention, bool) or self.history_retention < 0:
            raise ValueError("history_retention: a whole number >= 0 of previous values to keep per secret")

    def name(self, base: str) -> str:
        """The prefixed table name for ``base`` (one of the module's base names)."""
        return f"{self.table_prefix}{base}"

    def access_function(self) -> str:
        """The function that appends to the access log (migration 0004), unqualified."""
        return f"{self.table_prefix}tenant_secrets_record_access"

    def write_function(self) -> str:
        """The trigger function that completes rows written without the keyring (migration 0008), unqualified."""
        return f"{self.table_prefix}tenant_secrets_keyless_write"

    def table(self, base: str) -> sql.Identifier:
        """The prefixed table as an identifier, resolved through the connection's search_path."""
        return sql.Identifier(self.name(base))
