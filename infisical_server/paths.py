"""Path and value rules shared by the routes, as Infisical applies them.

Sources: ``lib/fn`` (prefixWithSlash, removeTrailingSlash), ``lib/validator/validate-folder-name.ts``
and the ``secretValue`` transform of the raw secret routes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FOLDER_NAME = re.compile(r"^[a-zA-Z0-9\-_]+$")

# ECMAScript String.prototype.trim() strips WhiteSpace and LineTerminator code points, a set that
# differs from Python's str.isspace (e.g. U+FEFF is JS whitespace, U+001C is not).
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


@dataclass(frozen=True)
class Location:
    """Where an operation happens: a project, an environment slug and a folder path."""

    project_id: str
    environment: str
    path: str


def js_trim(text: str) -> str:
    return text.strip(JS_WHITESPACE)


def prefix_with_slash(path: str) -> str:
    return path if path.startswith("/") else f"/{path}"


def remove_trailing_slash(path: str) -> str:
    """Drop one trailing slash, except from the root (Infisical's removeTrailingSlash)."""
    if path == "/":
        return path
    return path[:-1] if path.endswith("/") else path


def normalize_folder_path(path: str) -> str:
    """What the folder routes do with a ``path``: trim, add a leading slash, drop a trailing one."""
    return remove_trailing_slash(prefix_with_slash(js_trim(path)))


def is_valid_folder_name(name: str) -> bool:
    return bool(FOLDER_NAME.match(name))


def is_valid_secret_path(path: str) -> bool:
    """Every non-empty segment is a valid folder name (Infisical's isValidSecretPath)."""
    return all(is_valid_folder_name(segment) for segment in path.split("/") if segment)


def segments(path: str) -> list[str]:
    return [segment for segment in path.split("/") if segment]


def join(parent: str, name: str) -> str:
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


def is_within(path: str, prefix: str) -> bool:
    """True when ``path`` is ``prefix`` or below it; the root prefix covers every path."""
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


def transform_secret_value(value: str) -> str:
    """The raw routes' value transform: trim, but keep one trailing newline if there was one."""
    return f"{js_trim(value)}\n" if value.endswith("\n") else js_trim(value)
