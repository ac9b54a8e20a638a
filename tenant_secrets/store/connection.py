"""Opening a connection with errors that are clear and never show the password."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import conninfo

from tenant_secrets.store.errors import DatabaseUnavailableError

# Up to the last '@' before any query: a password holding an unencoded '@' or '/' is redacted whole.
_URL_USERINFO = re.compile(r"^(?P<head>postgres(?:ql)?://[^:@/?#]*):[^?#]*@", re.IGNORECASE)
_URL_SCHEME = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)
_URL_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&#]*", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s']\S*)", re.IGNORECASE)
REDACTED = "***"


def redact_dsn(dsn: str) -> str:
    """``dsn`` (URL or ``key=value`` form) with any password replaced by ``***``, safe to print."""
    if _URL_SCHEME.match(dsn):
        redacted = _URL_USERINFO.sub(rf"\g<head>:{REDACTED}@", dsn, count=1)
        return _URL_QUERY_PASSWORD.sub(rf"\g<head>{REDACTED}", redacted)
    return _KV_PASSWORD.sub(rf"\g<head>{REDACTED}", dsn)


def connect(dsn: str, *, autocommit: bool = True, connect_timeout: int = 10) -> psycopg.Connection[Any]:
    """Connect to ``dsn``; :class:`DatabaseUnavailableError` names the redacted DSN and libpq's reason.

    The store's functions manage their own transactions, so the default is an autocommit connection.
    """
    if _unencoded_userinfo(dsn):
        # libpq would end the password at the '@' or '/' and quote the rest as a host name in its error.
        raise DatabaseUnavailableError(
            f"invalid database URL {redact_dsn(dsn)}: the user or password holds an unencoded '@' or '/'; "
            "percent-encode them (%40, %2F)"
        )
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=connect_timeout)
    except psycopg.OperationalError as exc:
        reason = _scrub(str(exc).strip(), dsn)
        raise DatabaseUnavailableError(f"cannot connect to {redact_dsn(dsn)}: {reason}") from None
    except psycopg.ProgrammingError:
        # libpq's parse error quotes the fragment it choked on, which may be the password: leave it out.
        raise DatabaseUnavailableError(
            f"invalid database DSN {redact_dsn(dsn)}: not a libpq URL or key=value connection string"
        ) from None


def _unencoded_userinfo(dsn: str) -> bool:
    """Whether a URL's user information (everything before its last '@') holds an '@' or a '/'."""
    if not _URL_SCHEME.match(dsn):
        return False
    rest = _URL_SCHEME.sub("", dsn).split("?", 1)[0]
    userinfo = rest.rpartition("@")[0]
    return "@" in userinfo or "/" in userinfo


def _scrub(message: str, dsn: str) -> str:
    """libpq does not echo passwords, but make sure: drop any password from the DSN found in ``message``."""
    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    if isinstance(password, str) and password:
        message = message.replace(password, REDACTED)
    return redact_dsn(message)
