"""Strategy B: tenants' secrets encrypted in the application's PostgreSQL ``company_secrets`` table.

Pure Python over psycopg 3 (no Pulumi). Every function takes an open connection and the
:class:`StoreSettings`; :func:`connect` opens one with errors that never show the password. Each
function runs in its own transaction (a savepoint if the caller has one open) and leaves the
connection as it found it, autocommit or not.

May import secret and tenants_file.
"""

from tenant_secrets.secret.envelope import Keyring, KeyringError
from tenant_secrets.store.companies import ensure_companies, find_companies, lookup_companies, require_companies
from tenant_secrets.store.connection import connect, redact_dsn
from tenant_secrets.store.errors import (
    CompanyNotFoundError,
    DatabaseUnavailableError,
    MigrationError,
    StoreError,
)
from tenant_secrets.store.key_state import record_key_state, recorded_key_version
from tenant_secrets.store.migrations import migrate
from tenant_secrets.store.roles import ensure_roles
from tenant_secrets.store.rotation import bind_rows, check_keyring, iter_rotate, key_versions_in_use, rotate
from tenant_secrets.store.schema import SCHEMA_VERSION
from tenant_secrets.store.secrets import (
    ApplyResult,
    CompanyResult,
    RowReading,
    StoredSecret,
    TenantChange,
    apply_tenants,
    insert_if_absent,
    read_rows,
    read_tenant,
    read_tenants,
    row_counts,
    stored_keys,
)
from tenant_secrets.store.settings import StoreSettings

__all__ = [
    "SCHEMA_VERSION",
    "ApplyResult",
    "CompanyNotFoundError",
    "CompanyResult",
    "DatabaseUnavailableError",
    "Keyring",
    "KeyringError",
    "MigrationError",
    "RowReading",
    "StoreError",
    "StoreSettings",
    "StoredSecret",
    "TenantChange",
    "apply_tenants",
    "bind_rows",
    "check_keyring",
    "connect",
    "ensure_companies",
    "ensure_roles",
    "find_companies",
    "insert_if_absent",
    "iter_rotate",
    "key_versions_in_use",
    "lookup_companies",
    "migrate",
    "read_rows",
    "read_tenant",
    "read_tenants",
    "record_key_state",
    "recorded_key_version",
    "redact_dsn",
    "require_companies",
    "rotate",
    "row_counts",
    "stored_keys",
]
