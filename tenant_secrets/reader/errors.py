"""The reader's errors. None of them carries a secret value, a ciphertext or a key: messages name the
tenant, the secret's key, where it was looked for and why it could not be read."""

from __future__ import annotations

from tenant_secrets.reader.access_log import Source


class ReaderError(Exception):
    """Base class: ``tenant`` and ``key`` as the caller gave them; ``source`` where the lookup ended."""

    def __init__(
        self,
        message: str,
        *,
        tenant: str,
        key: str,
        source: Source | None = None,
        company_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.tenant = tenant
        self.key = key
        self.source = source
        self.company_id = company_id


class UnknownTenantError(ReaderError):
    """No company has this subdomain or id (or the subdomain is not a valid one)."""


class SecretNotFoundError(ReaderError):
    """The tenant exists but holds no such secret where the reader looks."""


class UndecryptableSecretError(ReaderError):
    """The database holds the secret but it cannot be decrypted: its key version is not published, or the
    envelope is malformed or was encrypted with another key. The reader never falls back past it."""


class SourceUnavailableError(ReaderError):
    """The database, Infisical or the key folder could not be read (after the client's retries)."""


class WriteBackError(ReaderError):
    """A value read from Infisical could not be written back to the database; it was not returned."""


class AccessLogError(ReaderError):
    """The access could not be recorded; the value was not returned (reads are audited or refused)."""
