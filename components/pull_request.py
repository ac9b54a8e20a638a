"""A pull request's preview may read, never write (docs/decisions/0022-pull-request-trust.md).

The pull-request workflow marks its runs with TENANT_SECRETS_PULL_REQUEST=true. Such a run only
previews, and with a database role that can write nothing and read every row of the store; the
Infisical identity's rights cannot be read back without attempting a write, so they are the setup's
(docs/guides/pull-requests.md).
"""

from __future__ import annotations

import os

import pulumi

from tenant_secrets import store
from tenant_secrets.stack.head_data import PULL_REQUEST_ENV, is_pull_request_run
from tenant_secrets.stack.settings import StackSettings
from tenant_secrets.store.preflight import preview_role_problems


def guard(settings: StackSettings) -> None:
    """In a pull request's run: fail unless it is a preview with read-only database credentials."""
    if not is_pull_request_run(os.environ):
        return
    if not pulumi.runtime.is_dry_run():
        raise pulumi.RunError(f"{PULL_REQUEST_ENV} is set: a pull request's run only previews; the deploy applies")
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        return
    try:
        with store.connect(dsn) as conn:
            problems = preview_role_problems(conn, settings.store)
    except store.DatabaseUnavailableError as err:
        raise pulumi.RunError(f"DATABASE_URL: {err}") from None
    if problems:
        raise pulumi.RunError(
            f"a pull request's preview needs a read-only database role in DATABASE_URL: {'; '.join(problems)} "
            "(docs/guides/pull-requests.md)"
        )
