"""Reads tenants.yaml into the typed model, reporting every problem with file, line and column.

YAML is composed with PyYAML's C loader, whose nodes carry their positions: on a 1,000-tenant
file that takes 0.1 s where ruamel.yaml's round-trip loader takes 1.6 s
(docs/decisions/0004-tenants-file.md). Turning nodes into plain values here is also where
duplicate keys are caught, all of them, not only the first.
"""

from __future__ import annotations

import difflib
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tenant_secrets.model import (
    Defaults,
    FromConfig,
    FromEnv,
    FromInfisical,
    Generated,
    GenerateSpec,
    Issue,
    Override,
    Position,
    Tenant,
    TenantsDocument,
    TenantsFile,
    TenantsFileError,
)

Loc = tuple[str | int, ...]

KNOWN_FIELDS = sorted(
    {
        name
        for model in (
            TenantsDocument,
            Defaults,
            Tenant,
            Override,
            FromConfig,
            FromEnv,
            FromInfisical,
            Generated,
            GenerateSpec,
        )
        for name, info in model.model_fields.items()
        for name in (info.alias or name,)
    }
    | {"value", "decommission"}
)
SOURCE_MARKERS = frozenset({"from", "generate", "value", "decommission"})
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Document:
    """Plain values from a composed YAML node tree, with each node's (line, column), 1-based."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Loc, Position] = {}
        self.issues: list[Issue] = []

    def value(self, node: yaml.Node, loc: Loc) -> Any:
        self.positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.scalar(key_node)
                if key in result:
                    self.issues.append(
                        Issue(
                            self.file,
                            key_node.start_mark.line + 1,
                            key_node.start_mark.column + 1,
                            _dotted((*loc, key)),
                            f"duplicate key '{key}'",
                            f"it is already set at line {self.positions[(*loc, key)][0]}; keep one",
                        )
                    )
                    continue
                result[key] = self.value(value_node, (*loc, key))
                self.positions[(*loc, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*loc, index)) for index, item in enumerate(node.value)]
        return self.scalar(node)

    @staticmethod
    def scalar(node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return str(node.value)
        if node.tag == _TIMESTAMP:  # a date-like string stays a string (rotation: 2026-11-28)
            return node.value
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(file)"


def _data_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """Pydantic's error location, less the union tags that are not part of the data."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        elif part == "[key]":
            continue
        elif (
            isinstance(node, dict)
            and isinstance(part, str)
            and part not in ("source", "group")
            and not part.startswith(("from-", "generate", "value", "decommission"))
        ):
            path.append(part)  # a missing field: report it at its parent
            break
        else:
            continue
        path.append(part)
    return tuple(path)


def _issue_from(error: Any, data: Any, doc: _Document) -> Issue:
    loc = _data_loc(tuple(error["loc"]), data)
    line, column = _position(doc.positions, loc)
    message, hint = error["msg"], ""
    if error["type"] == "extra_forbidden" and str(loc[-1]) in SOURCE_MARKERS:
        message = f"a second value source ('{loc[-1]}')"
        hint = "a secret takes exactly one of from, generate, value or decommission"
    elif error["type"] == "extra_forbidden":
        name = str(loc[-1])
        message = f"unknown field '{name}'"
        close = difflib.get_close_matches(name, KNOWN_FIELDS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "remove it"
    elif error["type"] == "missing":
        message = f"missing required field '{error['loc'][-1]}'"
    elif error["type"] == "value_source":
        hint = "see tenants.schema.json for the shapes"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return Issue(doc.file, line, column, _dotted(loc), message, hint)


def _position(positions: dict[Loc, Position], loc: Loc) -> Position:
    while loc and loc not in positions:
        loc = loc[:-1]
    return positions.get(loc, (1, 1))


def _semantic_issues(document: TenantsDocument, doc: _Document) -> list[Issue]:
    """What a schema cannot say: uniqueness, overrides for absent environments, key clashes."""
    issues: list[Issue] = []
    counts = Counter(t.subdomain for t in document.tenants)
    first_seen: dict[str, int] = {}
    for index, tenant in enumerate(document.tenants):
        where = ("tenants", index)
        if counts[tenant.subdomain] > 1:
            if tenant.subdomain in first_seen:
                line, column = _position(doc.positions, (*where, "subdomain"))
                issues.append(
                    Issue(
                        doc.file, line, column, _dotted((*where, "subdomain")),
                        f"duplicate subdomain '{tenant.subdomain}'",
                        f"tenants[{first_seen[tenant.subdomain]}] already declares it; merge the two entries",
                    )
                )  # fmt: skip
            first_seen.setdefault(tenant.subdomain, index)
        environments = tenant.environments if tenant.environments is not None else document.defaults.environments
        for env in tenant.overrides:
            if env not in environments:
                line, column = _position(doc.positions, (*where, "overrides", env))
                issues.append(
                    Issue(
                        doc.file, line, column, _dotted((*where, "overrides", env)),
                        f"an override for '{env}', where {tenant.subdomain} does not exist",
                        f"add '{env}' to its environments ({', '.join(environments)}) or remove the override",
                    )
                )  # fmt: skip
        for secrets_loc, secrets in [((*where, "secrets"), tenant.secrets)] + [
            ((*where, "overrides", env, "secrets"), o.secrets) for env, o in tenant.overrides.items()
        ]:
            issues += _clashes(secrets, secrets_loc, doc)
    for name, secrets in document.platform.items():
        issues += _clashes(secrets, ("platform", name), doc)
    return issues


def _clashes(secrets: dict[str, Any], loc: Loc, doc: _Document) -> list[Issue]:
    """A group field that flattens onto a key declared on its own (SMTP.host vs SMTP_HOST)."""
    issues = []
    for key, spec in secrets.items():
        if isinstance(spec, dict):
            for name in spec:
                flat = f"{key}_{name.upper()}"
                if flat in secrets:
                    line, column = _position(doc.positions, (*loc, key, name))
                    issues.append(
                        Issue(
                            doc.file,
                            line,
                            column,
                            _dotted((*loc, key, name)),
                            f"the group field becomes {flat}, which is also declared on its own",
                            "keep one of the two",
                        )
                    )
    return issues


def load_tenants_file(path: str | Path) -> TenantsFile:
    """Parse and validate; raise TenantsFileError listing every issue found."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise TenantsFileError([Issue(file, 1, 1, "(file)", f"cannot read it: {err.strerror}")]) from None
    return parse_tenants(text, file)


def parse_tenants(text: str, file: str = "tenants.yaml") -> TenantsFile:
    doc = _Document(file)
    try:
        node = yaml.compose(text, Loader=yaml.CSafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise TenantsFileError(
            [
                Issue(
                    file,
                    line,
                    column,
                    "(file)",
                    f"not valid YAML: {err.problem or err.context}",
                    "fix the syntax",
                )
            ]
        ) from None
    data = doc.value(node, ()) if node is not None else {}
    if not isinstance(data, dict):
        raise TenantsFileError(
            [Issue(file, 1, 1, "(file)", "the top level must be a mapping", "start with `version: 1`")]
        )
    issues = list(doc.issues)
    try:
        document = TenantsDocument.model_validate(data)
    except ValidationError as err:
        issues += [_issue_from(error, data, doc) for error in err.errors()]
        raise TenantsFileError(sorted(issues, key=lambda i: (i.line, i.column))) from None
    issues += _semantic_issues(document, doc)
    if issues:
        raise TenantsFileError(sorted(issues, key=lambda i: (i.line, i.column)))
    return TenantsFile(file, document, doc.positions)
