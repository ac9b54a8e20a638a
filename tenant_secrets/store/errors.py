"""Errors raised by the store. None of them carries a secret value, a ciphertext or a password."""

from __future__ import annotations

from collections.abc import Iterable

from tenant_secrets.tenants_file.names import few


class StoreError(Exception):
    """Base class of the store's own errors."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be reached or refused the connection (the message shows a redacted DSN)."""


class MigrationError(StoreError):
    """The schema cannot be migrated (for example the application's companies table is missing)."""


class CompanyNotFoundError(StoreError):
    """Companies named by the caller do not exist; nothing was written."""

    def __init__(self, missing: Iterable[str], *, what: str = "subdomain") -> None:
        self.missing = tuple(sorted(missing))
        names = few(self.missing)
        super().__init__(
            f"no company with {what} {names} in the companies table: create the "
            f"compan{'y' if len(self.missing) == 1 else 'ies'} in the application first, or fix the "
            f"{what} in tenants.yaml; nothing was written"
        )
