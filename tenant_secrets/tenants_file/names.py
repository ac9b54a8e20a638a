"""The names tenants.yaml gives: subdomains, platform folders, secret keys, environments, paths.

Each `*_problem` function returns None for a valid name, else what is wrong and how to fix it. They
are the one definition of a valid name: the model validates the file with them, and the providers
check paths with them before any request. Kept apart from the pydantic model so that a process that
only checks names (the dynamic provider, on every preview) does not import pydantic.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# The one list of subdomains a tenant may not take: the application's own hosts, our own
# folders (/tenants) and config namespaces (`secrets.shared.*`), and the environments' hosts.
RESERVED_SUBDOMAINS = frozenset(
    {
        "admin", "api", "app", "assets", "auth", "blog", "cdn", "dashboard", "dev", "docs", "ftp",
        "help", "imap", "internal", "localhost", "mail", "ns1", "ns2", "pop", "prod", "shared", "smtp",
        "staging", "static", "status", "support", "tenants", "webmail", "www",
    }
)  # fmt: skip
TENANTS_FOLDER = "tenants"  # tenant folders live under /tenants/<subdomain>
SHARED_NAMESPACE = "shared"  # `secrets.shared.*` in stack config: values several owners read
RESERVED_FOLDERS = frozenset({TENANTS_FOLDER, SHARED_NAMESPACE})
SUBDOMAIN_MAX = 63
_ENCODED_DECISION = "docs/decisions/0023-encoded-subdomains.md"
KEY_MAX = 255

_SUBDOMAIN_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_KEY_RE = re.compile(r"[A-Z][A-Z0-9_]*")
_FIELD_RE = re.compile(r"[a-z][a-z0-9_]*")
_ENVIRONMENT_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_REGION_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
REGION_MAX = 32
_FOLDER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_ENV_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONFIG_PATH_RE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_INFISICAL_PATH_RE = re.compile(r"/|(?:/[A-Za-z0-9_-]+)+/?")


@dataclass(frozen=True)
class Problem:
    """What is wrong with a name, and how to fix it."""

    message: str
    hint: str = ""


def subdomain_problem(value: str) -> Problem | None:
    """None for a valid tenant subdomain: a DNS label (1-63 of a-z, 0-9, '-'; no '-' at an end), not reserved."""
    if _SUBDOMAIN_RE.fullmatch(value):
        if value in RESERVED_SUBDOMAINS:
            return Problem(
                f"'{value}' is reserved",
                "it would shadow one of the application's own hosts or folders; choose another",
            )
        return None
    if not value:
        return Problem("the subdomain is empty", "a subdomain is 1-63 lowercase letters, digits and hyphens")
    if len(value) > SUBDOMAIN_MAX:
        return Problem(f"the subdomain is {len(value)} characters long", "a DNS label has at most 63")
    suggestion = _as_label(value)
    hint = f"did you mean '{suggestion}'?" if suggestion and subdomain_problem(suggestion) is None else ""
    if _SUBDOMAIN_RE.fullmatch(value.strip("-")):
        return Problem(f"'{value}' starts or ends with a hyphen", hint or "remove the hyphen at the end")
    return Problem(
        f"'{value}' is not a DNS label: only lowercase letters a-z, digits and hyphens",
        hint or "a subdomain is 1-63 lowercase letters, digits and hyphens",
    )


def encoded_label_problem(value: str) -> Problem | None:
    """None unless a DNS label is one DNS reserves for encoded names: '--' in its third and fourth
    characters, as in punycode's xn--, which browsers can show as other text (xn--pple-43d as 'apple'
    with a Cyrillic first letter). Refused for a tenant that is not decommissioned (docs/decisions/0023)."""
    if value[2:4] != "--":
        return None
    hint = f"a new tenant takes a plain name of a-z, 0-9 and '-' ({_ENCODED_DECISION})"
    if not value.startswith("xn--"):
        return Problem(f"'{value}' has '--' in its third and fourth characters, reserved for encoded names", hint)
    try:
        shown = value[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return Problem(f"'{value}' is an encoded (punycode) name, and not a valid one", hint)
    letters = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '')}".rstrip() for c in dict.fromkeys(shown) if c > "~")
    message = f"'{value}' is an encoded name that can display as '{shown}'"
    return Problem(f"{message} ({letters})" if letters else message, hint)


def uuid_label_problem(value: str) -> Problem | None:
    """None unless a DNS label reads as a UUID to the readers: what Python's `uuid.UUID` accepts, which is 32
    hex digits once its hyphens are dropped, or `0x` and 30 (`0-x...` too, hyphens being dropped first). Both
    readers (`tenant_secrets.reader.database.tenant_ref`, the Node reader's `names.ts`) take such text as a
    company id, never as a subdomain, so a tenant named like another company's id could otherwise stand in
    for it (issue 26, item 6). The same `uuid.UUID` call decides here and in the Python reader, so the two
    cannot disagree; tests/fixtures/reader-vectors.json (`tenantRefs`) holds the Node reader to it. Refused
    for a tenant that is not decommissioned."""
    try:
        uuid.UUID(value)
    except ValueError:
        return None
    return Problem(
        f"'{value}' reads as a UUID, which names a company by its id, not a subdomain",
        "choose a subdomain that is not 32 hex digits, or 0x and 30 (with or without hyphens)",
    )


def _as_label(value: str) -> str:
    """The nearest DNS label: accents dropped (café -> cafe), every other run of characters one hyphen."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    label = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return label[:SUBDOMAIN_MAX].rstrip("-")


def key_problem(value: str) -> Problem | None:
    """None for a valid secret key: what Infisical accepts, and an environment-style name the app can read."""
    if _KEY_RE.fullmatch(value) and len(value) <= KEY_MAX:
        return None
    found = infisical_key_problem(value)
    if found:
        return found
    suggestion = re.sub(r"[^A-Z0-9]+", "_", value.upper()).strip("_")
    hint = f"did you mean {suggestion}?" if _KEY_RE.fullmatch(suggestion) and suggestion != value else ""
    return Problem(
        f"'{value}' is not an environment-style name",
        hint or "a key is an uppercase letter, then uppercase letters, digits and underscores",
    )


def infisical_key_problem(value: str) -> Problem | None:
    """None for a key Infisical accepts: non-empty, trimmed, no ':' or '/', at most 255 characters."""
    if not value.strip():
        return Problem("the key is empty")
    if value != value.strip():
        return Problem(f"'{value}' has leading or trailing spaces", "remove them")
    if ":" in value or "/" in value:
        return Problem(f"'{value}' contains ':' or '/'", "Infisical refuses both in a secret's key")
    if len(value) > KEY_MAX:
        return Problem(f"the key is {len(value)} characters long", f"Infisical takes at most {KEY_MAX}")
    return None


def _pattern_problem(regex: re.Pattern[str], what: str, rule: str) -> Callable[[str], Problem | None]:
    def problem(value: str) -> Problem | None:
        return None if regex.fullmatch(value) else Problem(f"'{value}' is not a valid {what}", rule)

    return problem


group_field_problem = _pattern_problem(
    _FIELD_RE, "group field", "a group's fields are lowercase names (host, port, api_key); each becomes GROUP_FIELD"
)
environment_problem = _pattern_problem(
    _ENVIRONMENT_RE, "environment name", "environment names are Infisical slugs: lowercase letters, digits, hyphens"
)


def region_problem(value: str) -> Problem | None:
    """None for a valid region name: a lowercase letter, then lowercase letters, digits and single hyphens."""
    rule = "a region is a lowercase name such as eu or us-east (a letter, then letters, digits, hyphens)"
    if len(value) > REGION_MAX:
        return Problem(f"the region name is {len(value)} characters", f"at most {REGION_MAX}; {rule}")
    return None if _REGION_RE.fullmatch(value) else Problem(f"'{value}' is not a valid region name", rule)


env_var_problem = _pattern_problem(
    _ENV_VAR_RE, "environment variable name", "a letter or underscore, then letters, digits and underscores"
)
config_path_problem = _pattern_problem(
    _CONFIG_PATH_RE, "config path", "a dotted path inside the stack's `secrets` config object, e.g. shared.stripe_key"
)
infisical_path_problem = _pattern_problem(
    _INFISICAL_PATH_RE, "Infisical folder path", "an absolute folder path, e.g. /legacy/acmecorp"
)


def folder_problem(value: str) -> Problem | None:
    """None for a platform folder name: an Infisical folder name, not one of ours (/tenants)."""
    if value.lower() in RESERVED_FOLDERS:  # `Tenants` is another folder to Infisical, but no less confusing
        return Problem(f"'{value}' is reserved", f"/{TENANTS_FOLDER} holds the tenants' folders; choose another name")
    if not _FOLDER_RE.fullmatch(value) or len(value) > SUBDOMAIN_MAX:
        return Problem(
            f"'{value}' is not a valid folder name", "letters, digits, hyphens and underscores, at most 63 characters"
        )
    return None


def few(names: Iterable[str], shown: int = 3, sep: str = ", ") -> str:
    """Names for a message that stays short at any fleet size: a few of them, then how many more.

    ``few(["a", "b", "c", "d", "e"])`` is ``"a, b, c and 2 more"``; a message naming every one of
    5,000 tenants would be tens of kilobytes on one line."""
    listed = list(names)
    head = sep.join(listed[:shown])
    return f"{head} and {len(listed) - shown} more" if len(listed) > shown else head
