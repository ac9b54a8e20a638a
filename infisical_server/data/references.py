"""Secret reference expansion (``${KEY}`` and ``${env.folder.sub.KEY}``), as Infisical does it on read.

Source: ``expandSecretReferencesFactory`` in ``services/secret-v2-bridge/secret-v2-bridge-fns.ts``:
references resolve depth-first up to 10 levels, cycles stop, and a reference that resolves to nothing
is left as written. Reading a referenced secret needs read access to its environment and path.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from infisical_server.errors import ForbiddenRequest

REFERENCE = re.compile(r"\$\{([a-zA-Z0-9_.-]+)\}")
MAX_DEPTH = 10

Fetch = Callable[[str, str, str], str]
CanRead = Callable[[str, str], bool]


def has_references(value: str) -> bool:
    return REFERENCE.search(value) is not None


def _target(reference: str, environment: str, path: str) -> tuple[str, str, str]:
    parts = reference.strip().split(".")
    if len(parts) == 1:
        return environment, path, parts[0]
    return parts[0], posixpath.join("/", *parts[1:-1]), parts[-1]


def expand(
    value: str,
    *,
    environment: str,
    path: str,
    key: str,
    fetch: Fetch,
    can_read: CanRead,
    skip_multiline_encoding: bool = False,
) -> str:
    """The value with its references replaced; ``fetch`` returns "" for a missing secret."""
    if not value or not has_references(value):
        return value
    expanded = value
    stack: list[tuple[str, str, str, int, frozenset[str]]] = [
        (value, environment, path, 0, frozenset({f"{environment}:{path}:{key}"}))
    ]
    while stack:
        current, current_env, current_path, depth, visited = stack.pop()
        if depth > MAX_DEPTH:
            continue
        for match in REFERENCE.finditer(current):
            ref_env, ref_path, ref_key = _target(match.group(1), current_env, current_path)
            if not can_read(ref_env, ref_path):
                raise ForbiddenRequest(
                    f"You do not have permission to read secret '{ref_key}' in environment '{ref_env}' "
                    f"at path '{ref_path}', which is referenced by secret '{key}' in environment "
                    f"'{environment}' at path '{path}'."
                )
            resolved = fetch(ref_env, ref_path, ref_key)
            ref_id = f"{ref_env}:{ref_path}:{ref_key}"
            if has_references(resolved) and ref_id not in visited:
                stack.append((resolved, ref_env, ref_path, depth + 1, visited | {ref_id}))
            if resolved:
                expanded = expanded.replace(match.group(0), resolved)
    if skip_multiline_encoding and "\n" in expanded:
        escaped = expanded.replace("\n", "\\n")
        return f'"{escaped}"'
    return expanded
