"""Reading tenants' secrets in a service: the seed's ``getTenantSecret`` and its hybrid
(docs/guides/master-key-and-readers.md, "Reading secrets in a service"; docs/decisions/0021-reader-library.md).
Pure Python, no Pulumi.

    reader = SecretReader(
        database=DsnConnections(app_dsn),                      # the application role (decision 0010)
        keyring=KeyFolder(credentials, "prod"),                # /hono-api, kept for 5 minutes
        fallback=TenantFolders(credentials, "prod"),           # /tenants/<subdomain> when the row is absent
    )
    stripe_key = reader.get("codewiser", "STRIPE_SECRET_KEY")
    reader.close()                                             # the access log's last entries, at shutdown

Installable alone as the distribution tenant-secrets-reader (readers/python/pyproject.toml ships this
package's import closure: keep its imports few). May import infisical, store, secret and tenants_file.
"""

from tenant_secrets.reader.access_log import AccessEvent, AccessLog, LoggerAccessLog, Outcome, Source, TableAccessLog
from tenant_secrets.reader.database import ConnectionFactory, DsnConnections
from tenant_secrets.reader.errors import (
    AccessLogError,
    ReaderError,
    SecretNotFoundError,
    SourceUnavailableError,
    UndecryptableSecretError,
    UnknownTenantError,
    WriteBackError,
)
from tenant_secrets.reader.reader import SecretReader
from tenant_secrets.reader.sources import KeyFolder, KeyringSource, StaticKeyring, TenantFolders

__all__ = [
    "AccessEvent",
    "AccessLog",
    "AccessLogError",
    "ConnectionFactory",
    "DsnConnections",
    "KeyFolder",
    "KeyringSource",
    "LoggerAccessLog",
    "Outcome",
    "ReaderError",
    "SecretNotFoundError",
    "SecretReader",
    "Source",
    "SourceUnavailableError",
    "StaticKeyring",
    "TableAccessLog",
    "TenantFolders",
    "UndecryptableSecretError",
    "UnknownTenantError",
    "WriteBackError",
]
