"""The YAML layer of tenants.yaml: positions, tags, line endings, and the messages of odd shapes.

(tests/core/test_validation_errors.py covers each kind of mistake in the model; this file covers how
the text is read.)
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenant_secrets.loader import parse_tenants, read_yaml
from tenant_secrets.model import Issue, TenantsFileError

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
