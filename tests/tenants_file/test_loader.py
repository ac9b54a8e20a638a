"""The YAML layer of tenants.yaml: positions, tags, line endings, and the messages of odd shapes.

(tests/tenants_file/test_validation_errors.py covers each kind of mistake in the model; this file covers how
the text is read.)
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenant_secrets.tenants_file.loader import (
    MAX_DEPTH,
    YamlDocument,
    _read_composed,
    _read_plain,
    parse_tenants,
    read_yaml,
)
from tenant_secrets.tenants_file.model import Issue, TenantsFileError

ROOT = Path(__file__).resolve().parents[2]

HEAD = "version: 1\ndefaults:\n  storage: both\n  environments: [dev, staging, prod]\n"  # 4 lines


def issues(text: str) -> list[Issue]:
    with pytest.raises(TenantsFileError) as caught:
        parse_tenants(text)
    return list(caught.value.issues)


def summary(text: str) -> list[tuple[int, int, str, str]]:
    return [(i.line, i.column, i.field, i.message) for i in issues(text)]


@pytest.mark.parametrize(
    ("value", "tag"),
    [("!secret a1", "!secret"), ("!!binary aGVsbG8=", "!!binary"), ("!vault {path: x}", "!vault")],
)
def test_yaml_tags_are_refused_once_at_the_tag(value: str, tag: str) -> None:
    """A tag (`!secret`) looks like it does something; it is refused, and not also reported as a wrong type."""
    assert summary(HEAD + f"tenants:\n  - subdomain: {value}\n") == [
        (6, 16, "tenants[0].subdomain", f"the YAML tag {tag} is not supported")
    ]


def test_a_tag_on_an_optional_field_is_still_reported() -> None:
    (issue,) = issues(HEAD + "tenants:\n  - subdomain: a1\n    name: !secret sk_live_fake\n")
    assert (issue.line, issue.column, issue.field) == (7, 11, "tenants[0].name")
    assert "sk_live_fake" not in str(issue)


def test_a_tagged_secret_value_is_refused_without_being_echoed() -> None:
    (issue,) = issues(HEAD + "tenants:\n  - subdomain: a1\n    secrets:\n      X: !secret sk_live_fake\n")
    assert (issue.line, issue.column, issue.message) == (8, 10, "the YAML tag !secret is not supported")
    assert "{from: config}" in issue.hint
    assert "sk_live_fake" not in str(issue)


def test_core_tags_are_plain_values() -> None:
    tenants = parse_tenants(HEAD + "tenants:\n  - subdomain: !!str 123\n    name: !!str Acme\n").document.tenants
    assert (tenants[0].subdomain, tenants[0].name) == ("123", "Acme")


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_positions_do_not_depend_on_line_endings_or_a_byte_order_mark(newline: str, bom: str) -> None:
    text = bom + (HEAD + "tenants:\n  - subdomain: a1\n    storge: both\n").replace("\n", newline)
    assert summary(text) == [(7, 5, "tenants[0].storge", "unknown field 'storge'")]


def test_two_documents_in_one_file_is_a_syntax_error_at_the_second() -> None:
    (issue,) = issues(HEAD + "---\nversion: 1\n")
    assert (issue.line, issue.column, issue.field) == (5, 1, "(file)")
    assert issue.message.startswith("not valid YAML") and "single document" in issue.message


def test_an_undefined_alias_is_a_syntax_error() -> None:
    (issue,) = issues(HEAD + "tenants:\n  - subdomain: a1\n    secrets: *nope\n")
    assert (issue.line, issue.message) == (7, "not valid YAML: found undefined alias")


def test_empty_lists_and_text() -> None:
    assert summary(HEAD + "tenants:\n  - subdomain: a1\n    environments: []\n") == [
        (7, 19, "tenants[0].environments", "the list is empty")
    ]
    found = summary(HEAD + "tenants:\n  - subdomain: a1\n    secrets:\n      X: {generate: {}, rotation: ''}\n")
    assert found == [(8, 35, "tenants[0].secrets.X.rotation", "the text is empty")]


def test_a_list_where_one_of_a_few_words_belongs() -> None:
    (issue,) = issues(HEAD + "tenants:\n  - subdomain: a1\n    storage: [infisical, database]\n")
    assert (issue.line, issue.column, issue.message) == (
        7,
        14,
        "expected one of infisical, database, both, got a list",
    )


def test_a_subdomain_with_accents_suggests_the_plain_letters() -> None:
    (issue,) = issues(HEAD + "tenants:\n  - subdomain: Café-Crème\n")
    assert issue.hint == "did you mean 'cafe-creme'?"


# --- positions, as a property ------------------------------------------------------------------------

names = st.text(string.ascii_lowercase, min_size=1, max_size=12).filter(lambda n: n not in ("true", "false", "null"))


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(names, min_size=1, max_size=8, unique=True),
    indent=st.integers(1, 6),
    blank=st.lists(st.booleans(), min_size=8, max_size=8),
    flow=st.booleans(),
)
def test_every_key_and_value_is_found_where_it_is_written(
    keys: list[str], indent: int, blank: list[bool], flow: bool
) -> None:
    lines = ["root:"]
    where: dict[str, tuple[int, int, int]] = {}  # key -> (line, key column, value column)
    for key, empty_line in zip(keys, blank, strict=False):
        if empty_line:
            lines.append("")
        value = "{a: 1}" if flow else "text"
        lines.append(" " * indent + f"{key}: {value}")
        where[key] = (len(lines), indent + 1, indent + len(key) + 3)
    document = read_yaml("\n".join(lines) + "\n", "t.yaml")
    assert document.issues == ()
    for key, (line, key_column, value_column) in where.items():
        assert document.positions.key(("root", key)) == (line, key_column)
        assert document.positions.value(("root", key)) == (line, value_column)
        if flow:
            assert document.positions.value(("root", key, "a")) == (line, value_column + 4)


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(names, min_size=2, max_size=6), repeat=st.data())
def test_every_duplicate_key_is_reported_at_its_own_line(keys: list[str], repeat: st.DataObject) -> None:
    twice = repeat.draw(st.sampled_from(keys))
    written = [*keys, twice]
    text = "root:\n" + "".join(f"  {key}: x\n" for key in written)
    document = read_yaml(text, "t.yaml")
    expected = [line for line, key in enumerate(written, start=2) if key in written[: line - 2]]
    assert [issue.line for issue in document.issues] == expected
    assert all(issue.message.startswith("duplicate key") for issue in document.issues)


# --- the one-pass reading against the composer ---------------------------------------------------------


def composed(text: str) -> YamlDocument | TenantsFileError:
    try:
        return _read_composed(text, "t.yaml")
    except TenantsFileError as err:
        return err


ONE_PASS = [
    pytest.param((ROOT / "tenants.yaml").read_text(), id="tenants.yaml"),
    pytest.param("", id="empty"),
    pytest.param("# only a comment\n", id="comment"),
    pytest.param("---\na: 1\n...\n", id="explicit document"),
    pytest.param("a: no\nb: yes\nc: on\nd: ~\ne: null\nf: true\ng: False\n", id="YAML 1.2 words"),
    pytest.param("a: 0x1F\nb: 017\nc: 1_000\nd: 0o17\ne: -1.5e3\nf: .inf\ng: .nan\nh: 2026-11-28\n", id="numbers"),
    pytest.param("a: '1'\nb: \"true\"\nc: |\n  two\n  lines\nd: >\n  folded\n  text\n", id="quoted and block"),
    pytest.param("'1': a\n\"true\": b\n? c\n: d\n", id="quoted and explicit keys"),
    pytest.param("a:\nb: []\nc: {}\nd:\n  -\n  - [x, {y: [z]}]\n", id="empty and nested"),
    pytest.param("- a\n- - b\n  - c\n- {d: e}\n", id="a list at the top"),
    pytest.param("plain text\n", id="a scalar at the top"),
    pytest.param("a: x\r\nb:\r\n  c: y\r\n", id="CRLF"),
    pytest.param("\ufeffa: x\n", id="byte order mark"),
    pytest.param("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n", id="as deep as allowed"),
]
COMPOSER_ONLY = [
    pytest.param("a: &x {b: 1}\nc: *x\n", id="anchor and alias"),
    pytest.param("a: *nope\n", id="undefined alias"),
    pytest.param("a: &x [*x]\n", id="alias inside itself"),
    pytest.param("a: !secret x\n", id="tag"),
    pytest.param("a: !!str 1\n", id="core tag"),
    pytest.param("a: 1\na: 2\n", id="duplicate key"),
    pytest.param("1: a\n", id="number key"),
    pytest.param("~: a\n", id="null key"),
    pytest.param("[a]: b\n", id="list key"),
    pytest.param("<<: {a: 1}\n", id="merge key"),
    pytest.param("a: =\n", id="value tag"),
    pytest.param("a: 1\n---\nb: 2\n", id="two documents"),
    pytest.param("%YAML 1.1\n---\na: no\n", id="directive"),
    pytest.param("a: [1, 2\n", id="syntax error"),
    pytest.param("a: b: c\n", id="syntax error in a block"),
    pytest.param("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n", id="too deep"),
]


@pytest.mark.parametrize("text", ONE_PASS)
def test_the_one_pass_reading_returns_what_the_composer_does(text: str) -> None:
    document = _read_plain(text)
    assert document is not None
    assert document == composed(text)


@pytest.mark.parametrize("text", COMPOSER_ONLY)
def test_what_the_one_pass_reading_leaves_to_the_composer(text: str) -> None:
    """Each of these is reported, refused or expanded by the composer's path: the one pass declines it."""
    assert _read_plain(text) is None


# Words that YAML 1.2 reads as text, numbers, booleans or null, as keys and as values; and what the one
# pass declines: merge keys, the value tag, anchors, aliases, tags.
WORDS = "a | b | tenant-1 | yes | no | on | null | ~ | true | False | 1 | 017 | 0x1F | 1_0 | -2 | .5 | .inf"
WORDS += " | 2026-11-28 | 'x y' | \"1\" | '' | a b | = | << | &k v | *k | !t v | !!str 2"
DECLINED = ("=", "<<", "&", "*", "!", "%", "---")

# A tree is a word or (flow, "map", [(key, tree), ...]) or (flow, "seq", [tree, ...]); keys may repeat.
Tree = Any


def block(tree: Tree, indent: int) -> list[str]:
    """The tree as YAML lines: block collections, flow where the tree says so (and when empty)."""
    if isinstance(tree, str) or tree[0] or not tree[2]:
        return [" " * indent + flow(tree)]
    _, kind, items = tree
    lines = []
    for item in items:
        head, value = (f"{item[0]}:", item[1]) if kind == "map" else ("-", item)
        nested = block(value, indent + 2)
        if len(nested) == 1:
            lines.append(f"{' ' * indent}{head} {nested[0].lstrip()}")
        else:
            lines += [" " * indent + head, *nested]
    return lines


def flow(tree: Tree) -> str:
    if isinstance(tree, str):
        return tree
    _, kind, items = tree
    if kind == "map":
        return "{" + ", ".join(f"{key}: {flow(value)}" for key, value in items) + "}"
    return "[" + ", ".join(flow(item) for item in items) + "]"


words = st.sampled_from(WORDS.split(" | "))
trees = st.recursive(
    words,
    lambda children: st.one_of(
        st.tuples(st.booleans(), st.just("map"), st.lists(st.tuples(words, children), max_size=4)),
        st.tuples(st.booleans(), st.just("seq"), st.lists(children, max_size=4)),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(tree=trees, start=st.sampled_from(["", "---\n", "%YAML 1.2\n---\n"]), second=st.booleans())
def test_the_one_pass_reading_agrees_with_the_composer_or_declines(tree: Tree, start: str, second: bool) -> None:
    """Whatever the one pass reads is what the composer's path reads; it declines only what it must."""
    text = start + "\n".join(block(tree, 0)) + ("\n---\nx: 1\n" if second else "\n")
    document, expected = _read_plain(text), composed(text)
    assert document is None or document == expected
    if not any(mark in text for mark in DECLINED) and isinstance(expected, YamlDocument) and not expected.issues:
        assert document is not None
