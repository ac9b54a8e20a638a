"""The one error the Infisical client raises: it names environment, path, keys and status, never a value."""

from __future__ import annotations

from collections.abc import Collection

RERUN = "re-running converges (every write is a difference against what Infisical holds)"


class InfisicalError(Exception):
    """A call to Infisical failed. The message names environment, path, keys and status, never a value."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        environment: str | None = None,
        path: str | None = None,
        keys: Collection[str] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.environment = environment
        self.path = path
        self.keys = tuple(keys)
