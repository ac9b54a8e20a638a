"""Editing tenants.yaml in place: a reviewed change made by a command keeps the file's comments, key order,
quotes and layout, and is checked against the model before anyone sees it.

`tenantctl migrate` (storage and sources) and `tenantctl rotation bump` (rotation markers) both write
their change through :func:`edit`, so a file they produce always loads.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from tenant_secrets.tenants_file.loader import parse_tenants


def round_trip_yaml() -> YAML:
    """A YAML reader and writer that keeps comments, key order, flow mappings and quotes."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def block_mapping(parent: CommentedMap, name: str, after: Sequence[str]) -> CommentedMap:
    """``parent[name]`` as a block mapping; made when missing, after the last of ``after`` that ``parent`` has."""
    node = parent.get(name)
    if not isinstance(node, CommentedMap):
        node = CommentedMap()
        position = max((list(parent).index(k) + 1 for k in after if k in parent), default=len(parent))
        parent.insert(position, name, node)
    node.fa.set_block_style()
    return node


def edit(text: str, change: Callable[[Any], None], file: str, what: str) -> str:
    """``text`` with ``change`` applied to its round-trip tree, everything else as it was.

    The result is parsed again: a TenantsFileError naming ``file (what)`` is a bug of the command, never the
    user's input, and nothing is written."""
    yaml = round_trip_yaml()
    data: Any = yaml.load(text)
    change(data)
    out = io.StringIO()
    yaml.dump(data, out)
    result = out.getvalue()
    parse_tenants(result, f"{file} ({what})")
    return result
