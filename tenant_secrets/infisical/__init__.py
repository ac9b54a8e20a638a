"""The project's Infisical client: folders and secrets for one project, converging and rate-limit proof.

It uses the official SDK (``infisicalsdk``) for every call the SDK has (login, listing and reading
secrets, folders) and plain ``requests`` for the batch endpoints, which the SDK lacks. Three layers,
as `tenant_secrets/store/` keeps its pure ``_decide`` apart from its statements:

- ``folder_changes.py``: what to send (checks before any write, the differences to write), pure;
- ``transport.py``: how it is sent (credentials, the retry policy, the token cache, the raw calls);
- ``client.py``: :class:`InfisicalClient`, the reads and writes the rest of the project calls.

And two shared by the threads of a process (a provider process serves several calls at once):

- ``batcher.py``: the folder writes of a process's concurrent calls, coalesced into shared batch upserts;
- ``listing.py``: one recursive listing per environment and process, shared by every reader.

No secret value, client secret or token ever appears in an exception, a log line or a repr.

May import secret and tenants_file.
"""

from tenant_secrets.infisical.client import InfisicalClient
from tenant_secrets.infisical.errors import InfisicalError
from tenant_secrets.infisical.folder_changes import ApplyResult
from tenant_secrets.infisical.transport import ENV_VARS, RETRIES_VAR, InfisicalCredentials, RetryPolicy

__all__ = [
    "ENV_VARS",
    "RETRIES_VAR",
    "ApplyResult",
    "InfisicalClient",
    "InfisicalCredentials",
    "InfisicalError",
    "RetryPolicy",
]
