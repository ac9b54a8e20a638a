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


def hidden_values(environment: str, path: str, keys: Collection[str]) -> InfisicalError | None:
    """The error for a listing whose values the identity may not read (``keys``), or None when there are none."""
    hidden = sorted(keys)
    if not hidden:
        return None
    return InfisicalError(
        f"the identity may not read the values of {', '.join(hidden)} in {environment}:{path}; "
        "grant it read access to that path",
        environment=environment,
        path=path,
        keys=hidden,
    )
