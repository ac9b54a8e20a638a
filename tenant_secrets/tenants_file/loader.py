"""Reads tenants.yaml into the typed model, reporting every problem with file, line, column and field.

Before anything is parsed, the text is checked for what the parser cannot be stopped from doing.
Characters that YAML refuses, or that make a line display other than it reads, are reported at
their line and column (`_refused_characters`; the parser would stop at the first, giving an offset
and a traceback). Nesting deeper than MAX_DEPTH is found in the parser's events (`_too_deep`): the
parser keeps its own stack, while the composer recurses once per level (its C version crashes the
process somewhere between 20,000 and 50,000 levels). Then three passes, all of whose findings are
reported together:

1. `read_yaml` turns the text into plain values (YAML 1.2: `no` stays a string), recording the
   position of every key and value. The common file, with no anchor, alias, tag, duplicate key or
   other oddity, is read in one pass over the C parser's events (`_read_plain`, decision 0040);
   anything else, and any file that pass declines, goes the full path (`_read_composed`): the
   nesting checked on the events, ruamel.yaml's composer, and a walk over its nodes that expands
   aliases within a budget and reports every duplicate key, tag and key that is not text;
2. pydantic validates the values against `TenantsDocument`; each error is mapped back to the
   data path, its position, and a message with a hint (`_describe`);
3. `validation.document_issues` checks what a schema cannot (unique subdomains, overrides for
   environments a tenant is in, ...), on whatever parts of the file are valid.

Why ruamel's composer rather than its constructor: the constructor stops at the first duplicate
key; walking the nodes reports all of them (docs/decisions/0014-yaml-positions.md). The one pass
returns exactly what the full path would, or declines (tests/tenants_file/test_loader.py compares them).
"""

from __future__ import annotations

import difflib
import re
import types
import typing
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import (
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tenant_secrets.tenants_file import validation
from tenant_secrets.tenants_file.gc_pause import gc_paused
from tenant_secrets.tenants_file.model import (
    FROM_KINDS,
    MAX_ISSUES,
    SOURCE_MARKERS,
    SOURCE_MODELS,
    Defaults,
    Issue,
    Loc,
    PlatformFolder,
    Position,
    Positions,
    Tenant,
    TenantsDocument,
    TenantsFile,
    TenantsFileError,
    did_you_mean,
    dotted,
    issue_at,
)

_CLoader: Any = None
try:  # the C parser (ruamel.yaml.clibz): about 8x faster on a large file, same nodes and marks
    from ruamel.yaml import cyaml

    _CLoader = cyaml.CSafeLoader
except ImportError:  # pragma: no cover - the pure-Python parser gives the same result, slower
    pass

_M = TypeVar("_M", bound=BaseModel)
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_PLAIN_TAGS = frozenset({_STR, _INT, _BOOL, _NULL, _FLOAT, _TIMESTAMP, _MAP, _SEQ})

# A real tenants.yaml nests about 10 collections deep (tenants, a tenant, overrides, an environment,
# secrets, a group, a field's source, generate); the limit leaves room and bounds every recursion
# after it (our walk, pydantic) far below Python's.
MAX_DEPTH = 64
# What YAML refuses: C0 controls but tab and line breaks, DEL, C1 but NEL, surrogates, U+FFFE, U+FFFF.
_YAML_REFUSES = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff"
# What YAML accepts but a reviewer cannot see: bidirectional controls, which reorder how a line
# displays (the "Trojan Source" trick); NEL and the line and paragraph separators, which the parser
# takes for line breaks and a diff does not; a byte order mark after the start.
_INVISIBLE = "\x85\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff"
_REFUSED_CHARACTERS = re.compile(f"[{_YAML_REFUSES}{_INVISIBLE}]")
_REFUSED_BY_YAML = re.compile(f"[{_YAML_REFUSES}]")
_LINE_BREAK = re.compile(r"\r\n?|\n")
_MAX_CHARACTER_ISSUES = 10
_OPENS = (SequenceStartEvent, MappingStartEvent)
_CLOSES = (SequenceEndEvent, MappingEndEvent)


# --- YAML with positions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class YamlDocument:
    """Plain values (dicts, lists, str, int, bool, None) and where each came from."""

    data: Any
    positions: Positions
    issues: tuple[Issue, ...]  # duplicate keys and keys that are not text
    refused: frozenset[Loc] = frozenset()  # values replaced by None after an issue (a tag, a self-alias)


def _compose(text: str) -> Node | None:
    if _CLoader is not None:
        node: Node | None = _CLoader(text).get_single_node()
        return node
    return YAML(typ="safe", pure=True).compose(text)  # type: ignore[no-any-return]


def _events(text: str) -> Iterator[Event]:
    """The parser's events, one at a time: the parser keeps its own stack, and never recurses."""
    if _CLoader is None:
        yield from YAML(typ="safe", pure=True).parse(text)
        return
    parser = _CLoader(text)
    while (event := parser.get_event()) is not None:
        yield event


def read_yaml(text: str, file: str) -> YamlDocument:
    """Parse YAML into plain values with positions; raise TenantsFileError on a syntax error, a refused
    character or nesting deeper than MAX_DEPTH."""
    hostile = _refused_characters(text, file)
    if hostile:
        raise TenantsFileError(hostile)
    return _read_plain(text) or _read_composed(text, file)


_KEY = object()  # a mapping's next node is a key
_ITEM = object()  # a sequence's next node is an item


def _read_plain(text: str) -> YamlDocument | None:
    """The common file in one pass over the C parser's events, without a node tree; None for anything
    else, which `_read_composed` reads and reports: more than one document, a directive, an anchor, an
    alias, a tag (explicit, or resolved to one the walk refuses, such as a merge key), a key that is not
    text or appears twice, nesting deeper than MAX_DEPTH, a syntax error. Without aliases there is no
    budget to keep: every value is written out. On what it reads, it returns exactly what
    `_read_composed` returns (tests/tenants_file/test_loader.py compares them), in about half the time: the
    events are made once instead of twice, and no node is."""
    if _CLoader is None:  # pragma: no cover - the pure-Python parser: the full path only
        return None
    parser = _CLoader(text)
    get, resolve = parser.get_event, parser.resolve
    tags: dict[tuple[str, Any], str] = {}  # (text, implicit) -> tag: most scalars repeat
    values: dict[Loc, Position] = {}
    keys: dict[Loc, Position] = {}
    root: Any = None
    open_: list[list[Any]] = []  # [container, its loc, _KEY | _ITEM | the key whose value comes next]
    try:
        if type(get()) is not StreamStartEvent:
            return None
        event = get()
        if type(event) is StreamEndEvent:  # an empty file
            return YamlDocument(None, Positions(values, keys), ()) if get() is None else None
        if type(event) is not DocumentStartEvent or event.version is not None or event.tags is not None:
            return None
        while True:
            event = get()
            kind = type(event)
            if kind is MappingEndEvent or kind is SequenceEndEvent:
                open_.pop()
                continue
            if kind is ScalarEvent:
                if event.anchor is not None or event.ctag is not None:
                    return None
                raw, implicit = event.value, event.implicit
                tag = tags.get((raw, implicit))
                if tag is None:
                    tag = tags[(raw, implicit)] = str(resolve(ScalarNode, raw, implicit))
                if tag not in _PLAIN_TAGS:
                    return None
                value: Any = _scalar(raw, tag)
                opened: list[Any] | None = None
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if event.anchor is not None or event.ctag is not None or len(open_) >= MAX_DEPTH:
                    return None
                value = {} if kind is MappingStartEvent else []
                opened = [value, (), _KEY if kind is MappingStartEvent else _ITEM]
            elif kind is DocumentEndEvent and not open_:
                break
            else:
                return None
            mark = event.start_mark
            where = (mark.line + 1, mark.column + 1)
            if open_:
                top = open_[-1]
                container, parent, next_ = top
                if next_ is _ITEM:
                    loc: Loc = (*parent, len(container))
                    container.append(value)
                elif next_ is _KEY:
                    if type(value) is not str or value in container:
                        return None
                    keys[(*parent, value)] = where
                    top[2] = value
                    continue
                else:
                    loc = (*parent, next_)
                    container[next_] = value
                    top[2] = _KEY
            else:
                loc, root = (), value
            values[loc] = where
            if opened is not None:
                opened[1] = loc
                open_.append(opened)
        if type(get()) is not StreamEndEvent or get() is not None:
            return None
    except MarkedYAMLError:
        return None
    return YamlDocument(root, Positions(values, keys), ())


def _read_composed(text: str, file: str) -> YamlDocument:
    """Any YAML: the nesting checked on the events, then ruamel's composer, then our walk over its nodes,
    which expands aliases within a budget and reports each duplicate key, tag and key that is not text."""
    try:
        too_deep = _too_deep(text, file)
        if too_deep:
            raise TenantsFileError([too_deep])
        node = _compose(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(str(part) for part in (err.problem, err.context and f"({err.context})") if part)
        hint = "check the indentation and quoting on this line and the one before"
        raise TenantsFileError([Issue(file, line, column, "(file)", f"not valid YAML: {problem}", hint)]) from None
    walker = _Walker(file, budget=10 * len(text) + 10_000)
    data = walker.value(node, ()) if node is not None else None
    positions = Positions(walker.values, walker.keys)
    return YamlDocument(data, positions, tuple(walker.issues), frozenset(walker.refused))


def _refused_characters(text: str, file: str) -> list[Issue]:
    """The first refused character of each line, for the first few lines that have one, then how many
    more there are: one search per line reported, so a file full of them costs one scan, and says so
    in a few lines."""
    issues: list[Issue] = []
    line, line_start, scanned = 1, 0, 0
    if text.startswith("\ufeff"):  # a byte order mark at the start is allowed, and takes no column
        line_start = scanned = 1
    found = _REFUSED_CHARACTERS.search(text, scanned)
    while found:
        for newline in _LINE_BREAK.finditer(text, scanned, found.start()):
            line, line_start = line + 1, newline.end()
        scanned = found.start()
        where = (file, line, found.start() - line_start + 1, "(file)")
        if len(issues) == _MAX_CHARACTER_ISSUES:
            more = _REFUSED_CHARACTERS.subn("", text[found.start() :])[1]
            issues.append(Issue(*where, f"{more:,} more refused character(s) from here on", "remove them"))
            break
        issues.append(Issue(*where, *_describe_character(found.group())))
        next_line = _LINE_BREAK.search(text, found.end())
        found = _REFUSED_CHARACTERS.search(text, next_line.end()) if next_line else None
    return issues


def _describe_character(character: str) -> tuple[str, str]:
    code = f"U+{ord(character):04X}"
    if _REFUSED_BY_YAML.match(character):
        return f"the control character {code} is not allowed", "remove it; YAML does not accept it in a file"
    name = unicodedata.name(character, "NEXT LINE")  # NEL, U+0085, is the one without a name
    return (
        f"the invisible character {code} ({name}) is not allowed",
        "remove it; a reviewer cannot see it, and it changes how the line displays or where it ends",
    )


def _too_deep(text: str, file: str) -> Issue | None:
    """The first collection nested deeper than MAX_DEPTH, from the parser's events."""
    depth = 0
    for index, event in enumerate(_events(text)):
        kind = type(event)
        if kind in _OPENS:
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                field = dotted(_loc_of_event(text, index))
                return Issue(file, mark.line + 1, mark.column + 1, field, *_too_deep_message())
        elif kind in _CLOSES:
            depth -= 1
    return None


def _too_deep_message() -> tuple[str, str]:
    return f"nested more than {MAX_DEPTH} levels deep", "a tenants.yaml needs about 10; write this part flat"


def _loc_of_event(text: str, stop: int) -> Loc:
    """The data path of the stop-th event (on the error path only: a second pass, tracking keys)."""
    open_: list[tuple[Loc, bool, list[Any]]] = []  # (loc, is a mapping, [nodes seen, last key])
    for index, event in enumerate(_events(text)):
        if isinstance(event, CollectionEndEvent):
            open_.pop()
        if not isinstance(event, NodeEvent):
            continue
        loc: Loc = ()
        if open_:
            parent, mapping, seen = open_[-1]
            if mapping and seen[0] % 2 == 0:  # a key: it names the value that follows
                seen[1] = event.value if isinstance(event, ScalarEvent) else "?"
            loc = (*parent, seen[1] if mapping else seen[0])
            seen[0] += 1
        if index == stop:
            return loc
        if isinstance(event, CollectionStartEvent):
            open_.append((loc, isinstance(event, MappingStartEvent), [0, ""]))
    return ()


class _Walker:
    """Node tree -> plain values. Aliases are expanded, within a budget of values (an alias to an alias
    to ... can expand a small file exponentially) and never into themselves."""

    def __init__(self, file: str, budget: int) -> None:
        self.file = file
        self.budget = budget
        self.values: dict[Loc, Position] = {}
        self.keys: dict[Loc, Position] = {}
        self.issues: list[Issue] = []
        self.open: set[int] = set()  # the collections being walked, to catch an alias inside itself
        self.refused: set[Loc] = set()

    def value(self, node: Node, loc: Loc) -> Any:
        where = (node.start_mark.line + 1, node.start_mark.column + 1)
        self.values[loc] = where
        self.budget -= 1
        if self.budget < 0:
            message = "the aliases in this file expand to too many values"
            raise TenantsFileError([Issue(self.file, *where, dotted(loc), message, "write the values out")])
        if id(node) in self.open:
            self._issue(where, loc, "an alias refers to the collection that contains it", "remove the alias")
            self.refused.add(loc)
            return None
        tag = node.tag  # a property that builds the text each time: read once
        if tag not in _PLAIN_TAGS:
            shown = str(tag).replace("tag:yaml.org,2002:", "!!")
            hint = "write the value plainly; a secret's source is a mapping such as {from: config}"
            self._issue(where, loc, f"the YAML tag {shown} is not supported", hint)
            self.refused.add(loc)
            return None
        if not isinstance(node, MappingNode | SequenceNode):
            return _scalar(node.value, tag)
        if len(loc) >= MAX_DEPTH:  # read_yaml checked the file as written: this is aliases within aliases
            message, hint = _too_deep_message()
            raise TenantsFileError([Issue(self.file, *where, dotted(loc), f"{message} (through aliases)", hint)])
        self.open.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, loc)
            return [self.value(item, (*loc, index)) for index, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

    def mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            key_tag = key_node.tag
            if key_tag == _MERGE:
                self._issue(where, loc, "YAML merge keys (<<) are not supported", "write the fields out")
                continue
            key = _scalar(key_node.value, key_tag) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                self._issue(where, loc, "a key must be text", "quote it")
                continue
            if key in result:
                first = self.keys[(*loc, key)][0]
                message = f"duplicate key '{key}'"
                self._issue(where, (*loc, key), message, f"it is already set on line {first}; keep one")
                continue
            self.keys[(*loc, key)] = where
            result[key] = self.value(value_node, (*loc, key))
        return result

    def _issue(self, where: Position, loc: Loc, message: str, hint: str) -> None:
        self.issues.append(Issue(self.file, where[0], where[1], dotted(loc), message, hint))


def _scalar(text: str, tag: str | None) -> Any:
    """YAML 1.2 core scalars; anything else (a date: `rotation: 2026-11-28`) stays text, as written."""
    if tag == _STR:
        return text
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return text.lower() == "true"
    if tag == _INT:
        try:
            return int(text.replace("_", ""), 0)
        except ValueError:
            return int(text, 10)  # 017: leading zeros, decimal in YAML 1.2
    if tag == _FLOAT:
        try:
            return float(text.replace("_", ""))
        except ValueError:  # .inf, .nan
            return text
    return text


# --- pydantic errors as issues --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Located:
    """A pydantic error location resolved against the model: data path and the types around it."""

    path: Loc
    model: type[BaseModel] | None  # the model that holds the last field
    annotation: Any  # the type expected at the path (None for an unknown field)
    on_key: bool  # the error is about a mapping key, not its value


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional, which pydantic's locations do not mention."""
    while True:
        if get_origin(tp) is typing.Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (typing.Union, types.UnionType) and type(None) in get_args(tp):
            others = [a for a in get_args(tp) if a is not type(None)]
            if len(others) != 1:
                return tp
            tp = others[0]
        else:
            return tp


def _tagged(tp: Any, tag: str) -> Any:
    """The member of a tagged union carrying Tag(tag)."""
    for member in get_args(tp):
        if get_origin(member) is typing.Annotated and any(
            isinstance(m, Tag) and m.tag == tag for m in member.__metadata__
        ):
            return member
    return None


def _locate(loc: tuple[str | int, ...]) -> _Located:
    tp: Any = TenantsDocument
    model: type[BaseModel] | None = None
    path: list[str | int] = []
    on_key = False
    for part in loc:
        if part == "[key]":  # the error is about the mapping key just visited
            on_key = True
            continue
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            tp = _tagged(tp, str(part))  # a union tag names the branch, not data
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            model = tp
            info = next((f for n, f in tp.model_fields.items() if (f.alias or n) == part), None)
            tp = info.annotation if info else None
            path.append(part)
        elif origin in (dict, list):
            tp = get_args(tp)[-1]
            path.append(part)
        else:
            path.append(part)
    return _Located(tuple(path), model, _unwrap(tp) if tp is not None else None, on_key)


def _fields_of(model: type[BaseModel] | None) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()] if model else []


_KINDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_SOURCES_HINT = (
    'one of {from: config}, {from: env, var: NAME}, {generate: {bytes: 32}}, {value: "..."}, '
    "{from: infisical, path: /folder, key: KEY} or {decommission: true}"
)


def _flow(example: Any) -> str:
    """{'from': 'env', 'var': 'X'} -> {from: env, var: X}, as one writes it in the file."""
    if isinstance(example, dict):
        return "{" + ", ".join(f"{key}: {_flow(value)}" for key, value in example.items()) + "}"
    return str(example)


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list", dict: "a mapping"}.get(
        type(value), type(value).__name__
    )


def _describe(error: Mapping[str, Any], at: _Located) -> tuple[str, str]:
    """Message and hint for one pydantic error. Values of secrets are never echoed."""
    kind, given = error["type"], error.get("input")
    field_name = str(at.path[-1]) if at.path else "(file)"
    description = ""
    if at.model and at.path and isinstance(at.path[-1], str):
        info = next((f for n, f in at.model.model_fields.items() if (f.alias or n) == at.path[-1]), None)
        description = (info.description or "") if info else ""
    if kind == "extra_forbidden":
        marker = next((m for m in SOURCE_MARKERS if m in _fields_of(at.model)), None)
        if field_name in SOURCE_MARKERS and at.model in SOURCE_MODELS and marker:
            return f"a second value source '{field_name}' besides '{marker}'", "a secret takes exactly one source"
        fields = _fields_of(at.model)
        return f"unknown field '{field_name}'", did_you_mean(field_name, fields) + f"Allowed here: {', '.join(fields)}"
    if kind == "missing":
        extra: Any = at.model.model_config.get("json_schema_extra") if at.model in SOURCE_MODELS else None
        example = extra["examples"][0] if isinstance(extra, dict) and extra.get("examples") else None
        hint = f"For example {_flow(example)}" if example else description
        return f"missing required field '{field_name}'", hint
    if kind == "value_source":
        return _source_problem(given)
    if kind == "literal_error":
        allowed = [str(a) for a in get_args(at.annotation)] if get_origin(at.annotation) is Literal else []
        if at.path == ("version",):
            return f"unsupported version {given!r}", "this tenantctl reads version: 1"
        if allowed == ["True"]:
            return f"{field_name} takes only true", "a key is deleted by {decommission: true}, and kept otherwise"
        if not isinstance(given, str | int | float | bool):
            return f"expected one of {', '.join(allowed)}, got {_type_name(given)}", ""
        return f"unknown {field_name} '{given}'", did_you_mean(str(given), allowed) + f"Allowed: {', '.join(allowed)}"
    if kind in _KINDS:
        message = f"expected {_KINDS[kind]}, got {_type_name(given)}"
        if kind == "list_type" and isinstance(given, dict) and field_name == "environments":
            return message, (
                "write the environments as a list ([dev, staging]); "
                "per-environment secrets go under overrides: {dev: {secrets: ...}}"
            )
        if kind == "string_type" and isinstance(given, int) and not isinstance(given, bool):
            return message, f'quote it: "{given}"'
        if kind == "string_type" and isinstance(given, float | bool):
            return message, "quote it: in YAML, unquoted numbers and true/false are not text"
        return message, description
    if kind in ("uuid_parsing", "uuid_type"):
        return "not a UUID", description
    if kind in ("too_short", "string_too_short") and not given:
        what = "list" if isinstance(given, list) else "mapping" if isinstance(given, dict) else "text"
        return f"the {what} is empty", description
    if kind.startswith(("greater_than", "less_than", "too_short", "too_long", "string_too_short")):
        return str(error["msg"]).replace("Input should", "should"), description
    if "hint" in (error.get("ctx") or {}):
        return str(error["msg"]), str(error["ctx"]["hint"])
    return str(error["msg"]), description


def _source_problem(given: Any) -> tuple[str, str]:
    if not isinstance(given, Mapping):
        return (
            f"a secret needs a value source, not {_type_name(given)}",
            "a secret's value is never written in this file: use {from: config} and "
            '`pulumi config set --secret`, or {value: "..."} for a value that is not secret',
        )
    if "from" in given:
        kind = str(given["from"])
        return f"unknown source 'from: {kind}'", did_you_mean(
            kind, list(FROM_KINDS)
        ) + "Allowed: config, env, infisical"
    for name in given:  # a mistyped marker ({form: config}) gets the hint every other field gets
        hint = did_you_mean(str(name), SOURCE_MARKERS)
        if hint:
            return f"no value source: unknown field '{name}'", hint + _SOURCES_HINT
    return "no value source", _SOURCES_HINT


# --- the file ---------------------------------------------------------------------------------------


def load_tenants_file(path: str | Path) -> TenantsFile:
    """Parse and validate; raise TenantsFileError listing every issue found."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "it is not UTF-8 text"
        raise TenantsFileError([Issue(file, 1, 1, "(file)", f"cannot read it: {reason}")]) from None
    return parse_tenants(text, file)


def parse_tenants(text: str, file: str = "tenants.yaml") -> TenantsFile:
    """Validate tenants.yaml's text; raise TenantsFileError listing every issue found."""
    with gc_paused():
        return _parse(text, file)


def _parse(text: str, file: str) -> TenantsFile:
    yaml_doc = read_yaml(text, file)
    data, positions = yaml_doc.data, yaml_doc.positions
    if not isinstance(data, dict):
        what = "empty" if data is None else f"{_type_name(data)}, not a mapping"
        raise TenantsFileError([Issue(file, 1, 1, "(file)", f"the file is {what}", "it starts with `version: 1`")])
    issues = list(yaml_doc.issues)
    try:
        document = TenantsDocument.model_validate(data)
    except ValidationError as err:
        errors = err.errors(include_url=False)  # described up to MAX_ISSUES, at some 40 µs each
        located = [(error, _locate(tuple(error["loc"]))) for error in errors[:MAX_ISSUES]]
        located = [(e, at) for e, at in located if not any(at.path[: len(r)] == r for r in yaml_doc.refused)]
        for error, at in _one_per_shape(_without_misspelt_missing(located)):
            message, hint = _describe(error, at)
            on_key = at.on_key or error["type"] == "extra_forbidden"
            issues.append(issue_at(file, positions, at.path, message, hint.strip(), at_key=on_key))
        issues += _issues_of_valid_parts(data, positions, file)
        raise TenantsFileError(issues, undescribed=len(errors[MAX_ISSUES:])) from None
    issues += validation.document_issues(
        file,
        positions,
        document.defaults,
        list(enumerate(document.tenants)),
        list(document.platform.items()),
        regions=document.regions,
    )
    if issues:
        raise TenantsFileError(issues)
    return TenantsFile(file, document, positions)


def _one_per_shape(located: list[tuple[Any, _Located]]) -> list[tuple[Any, _Located]]:
    """A field of two shapes (`decommission`: true, or a list of regions) fails once per shape. An error inside
    one shape (a region of the list) says what is wrong; the other shape's "expected true or false" does not.
    Two type errors at one place become one naming both shapes."""
    paths = [at.path for _, at in located]
    kept: list[tuple[Any, _Located]] = []
    shapes: dict[Loc, list[Any]] = {}
    for error, at in located:
        if error["type"] not in _KINDS:
            kept.append((error, at))
        elif not any(len(p) > len(at.path) and p[: len(at.path)] == at.path for p in paths):
            if at.path not in shapes:
                kept.append((error, at))
            shapes.setdefault(at.path, []).append(error)
    merged = []
    for error, at in kept:
        alike = shapes.get(at.path, [])
        if error["type"] in _KINDS and len(alike) > 1:
            wanted = ", or ".join(dict.fromkeys(_KINDS[e["type"]] for e in alike))
            message = f"expected {wanted}, got {_type_name(error.get('input'))}"
            merged.append(({**error, "type": "shapes", "msg": message}, at))
        else:
            merged.append((error, at))
    return merged


def _without_misspelt_missing(located: list[tuple[Any, _Located]]) -> list[tuple[Any, _Located]]:
    """`{from: env, vra: X}` is one mistake: 'vra' is unknown because 'var' is misspelt. Report the
    unknown field (its hint names 'var') and not also the missing one."""
    unknown = {at.path for error, at in located if error["type"] == "extra_forbidden"}

    def misspelt(at: _Located) -> bool:
        parent, name = at.path[:-1], str(at.path[-1])
        siblings = [str(p[-1]) for p in unknown if p[:-1] == parent]
        return bool(difflib.get_close_matches(name, siblings, n=1, cutoff=0.6))

    return [(error, at) for error, at in located if error["type"] != "missing" or not misspelt(at)]


def _issues_of_valid_parts(data: dict[str, Any], positions: Positions, file: str) -> list[Issue]:
    """When the document as a whole is invalid, still check across the parts that are valid on their own,
    so one run reports a duplicate subdomain or an override for an absent environment next to a typo
    elsewhere. An invalid part is replaced by its outline: the fields that are valid on their own."""
    raw_defaults = data.get("defaults")
    defaults = _outline(Defaults, raw_defaults, {"storage": "both"}, ("environments",))
    raw_tenants = data.get("tenants") if isinstance(data.get("tenants"), list) else []
    tenants = [
        (index, tenant)
        for index, raw in enumerate(raw_tenants or [])
        if (tenant := _outline(Tenant, raw, {}, ("subdomain",))) is not None
    ]
    raw_platform = data.get("platform") if isinstance(data.get("platform"), dict) else {}
    platform = [
        (name, folder)
        for name, raw in (raw_platform or {}).items()
        if (folder := _outline(PlatformFolder, raw, {}, ())) is not None
    ]
    placeholder = {"storage": "both", "environments": ["x"]}
    outline = _valid(TenantsDocument, {"version": 1, "defaults": placeholder, "regions": data.get("regions")})
    listed = [index for index, raw in enumerate(raw_tenants or []) if isinstance(raw, dict) and "regions" in raw]
    unsure = frozenset(index for index, tenant in tenants if tenant.regions is None and index in listed)
    return validation.document_issues(
        file,
        positions,
        defaults,
        tenants,
        platform,
        regions=outline.regions if outline is not None else None,
        regions_valid=outline is not None,
        invalid_regions=unsure,
    )


def _outline(model: type[_M], raw: Any, placeholders: dict[str, Any], required: tuple[str, ...]) -> _M | None:
    """The part itself if valid; else, when its `required` fields are valid, the part made of them and of
    every other field that is valid on its own (`placeholders` stand in for required fields that the
    cross-field checks do not read). None when even the required fields are not valid."""
    whole = _valid(model, raw)
    if whole is not None or not isinstance(raw, dict):
        return whole
    kept = {**placeholders, **{name: raw[name] for name in required if name in raw}}
    if _valid(model, kept) is None:
        return None
    for name, value in raw.items():
        if name not in kept and _valid(model, {**kept, name: value}) is not None:
            kept[name] = value
    return _valid(model, kept)


def _valid(model: type[_M], raw: Any) -> _M | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None
