"""A tenants.yaml written by an attacker in a pull request: nesting far too deep, characters a
reviewer cannot see, values megabytes long, mappings thousands wide. Each is one short issue per
problem with its line and column, never an exception (issue 19); the three files of the issue first,
then generated families around them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tenant_secrets.tenantctl.main import main
from tenant_secrets.tenants_file.loader import MAX_DEPTH, parse_tenants
from tenant_secrets.tenants_file.model import MAX_ISSUES, Issue, TenantsFileError

ROOT = Path(__file__).resolve().parents[2]
HEAD = "version: 1\ndefaults:\n  storage: both\n  environments: [dev]\n"  # 4 lines
TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"
ISSUE_LINE = re.compile(r"^\S+:\d+:\d+: \S+: \S.*$")


def issues(text: str) -> list[Issue]:
    with pytest.raises(TenantsFileError) as caught:
        parse_tenants(text)
    return list(caught.value.issues)


def issues_or_none(text: str) -> list[Issue]:
    try:
        parse_tenants(text)
    except TenantsFileError as err:
        return list(err.issues)
    return []


# --- the three files of the issue ------------------------------------------------------------------

DEEP_LIST = HEAD + "tenants: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_SOURCE = HEAD + "tenants:\n  - subdomain: a1\n    secrets:\n      K: " + "{a: " * 3000 + "x" + "}" * 3000 + "\n"
NUL_IN_VALUE = HEAD + "tenants:\n  - subdomain: a1\n    name: Acme\x00 Corp\n"


def test_a_list_nested_5000_deep_is_reported_where_it_passes_the_limit() -> None:
    (issue,) = issues(DEEP_LIST)
    # the file's mapping is the first level, so the list opened by the 64th '[' is one too many
    assert (issue.line, issue.column, issue.message) == (5, 10 + MAX_DEPTH - 1, TOO_DEEP)
    assert issue.field.startswith("tenants[0][0][0]")
    assert len(str(issue)) < 300


def test_a_mapping_nested_3000_deep_as_a_source_is_reported_at_its_field() -> None:
    (issue,) = issues(DEEP_SOURCE)
    # four levels around K (the file, tenants, the tenant, its secrets): K's 61st '{' is the 65th
    assert (issue.line, issue.column, issue.message) == (8, 10 + 4 * (MAX_DEPTH - 4), TOO_DEEP)
    assert issue.field.startswith("tenants[0].secrets.K.a.a.a")


def test_a_nul_byte_in_a_value_is_reported_at_its_column() -> None:
    (issue,) = issues(NUL_IN_VALUE)
    assert (issue.line, issue.column, issue.field) == (7, 15, "(file)")
    assert issue.message == "the control character U+0000 is not allowed"


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [("deep-list", DEEP_LIST, ":5:73: "), ("deep-source", DEEP_SOURCE, ":8:250: "), ("nul", NUL_IN_VALUE, ":7:15: ")],
)
def test_tenantctl_validate_prints_one_line_and_exits_1(tmp_path: Path, name: str, text: str, where: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "tenant_secrets.tenantctl", "validate", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith(f"{path}{where}") and ISSUE_LINE.match(line)
    assert done.stderr == f"{path}: 1 problem(s)\n"


# --- depth: every style of nesting, anywhere ------------------------------------------------------

# Where the nesting starts: the text before it, the collections around it, and where it continues
# when it is written inline (line, column) or as a block (line, indentation).
PLACES = {
    "tenants": (HEAD + "tenants:", 1, (5, 10), (6, 2)),
    "a source": (HEAD + "tenants:\n  - subdomain: a1\n    secrets:\n      K:", 4, (8, 10), (9, 8)),
}


def flow_list(depth: int) -> tuple[str, int, bool]:
    """The nesting, how many columns apart two levels open, and whether it goes on the key's line."""
    return "[" * depth + "]" * depth, 1, True


def flow_map(depth: int) -> tuple[str, int, bool]:
    return "{a: " * depth + "x" + "}" * depth, 4, True


def compact_list(depth: int) -> tuple[str, int, bool]:
    return "- " * depth + "x", 2, False  # `- - - x`, on a line of its own: a list in a list in a list


STYLES: dict[str, Callable[[int], tuple[str, int, bool]]] = {
    "flow list": flow_list,
    "flow mapping": flow_map,
    "compact block list": compact_list,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    style=st.sampled_from(sorted(STYLES)),
    place=st.sampled_from(sorted(PLACES)),
    depth=st.one_of(st.integers(MAX_DEPTH - 6, MAX_DEPTH + 2), st.integers(1, 3000)),
)
@example(style="flow list", place="tenants", depth=MAX_DEPTH - 1)
@example(style="flow list", place="tenants", depth=MAX_DEPTH)
def test_nesting_on_one_line_is_refused_exactly_past_the_limit(style: str, place: str, depth: int) -> None:
    before, around, inline, block = PLACES[place]
    nested, step, on_key_line = STYLES[style](depth)
    if on_key_line:
        text, (line, column) = f"{before} {nested}\n", inline
    else:
        text, (line, column) = f"{before}\n{' ' * (block[1] - 1)}{nested}\n", block
    found = issues_or_none(text)
    if around + depth <= MAX_DEPTH:
        assert not any(i.message == TOO_DEEP for i in found)
        return
    assert [(i.line, i.column, i.message) for i in found] == [(line, column + step * (MAX_DEPTH - around), TOO_DEEP)]
    assert found[0].field.startswith(("tenants[0]", "tenants.a", "tenants[0].secrets.K"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    place=st.sampled_from(sorted(PLACES)),
    depth=st.one_of(st.integers(MAX_DEPTH - 6, MAX_DEPTH + 2), st.integers(1, 300)),
)
def test_block_mappings_nested_by_indentation_are_refused_past_the_limit(place: str, depth: int) -> None:
    before, around, _, (line, indent) = PLACES[place]
    lines = [" " * (indent - 1 + level) + "a:" for level in range(depth)]
    found = issues_or_none(before + "\n" + "\n".join(lines) + " x\n")
    deep = [i for i in found if i.message == TOO_DEEP]
    if around + depth <= MAX_DEPTH:
        assert deep == []
        return
    level = MAX_DEPTH - around  # the mapping that opens level MAX_DEPTH + 1, counted from 0
    assert [(i.line, i.column) for i in found] == [(line + level, indent + level)]


def test_aliases_cannot_nest_deeper_than_the_file_is_written() -> None:
    half = MAX_DEPTH // 2 + 1
    text = (
        "a: &a " + "[" * half + "]" * half + "\n"  # each half deep, within the limit as written
        "b: &b " + "[" * (half - 1) + "*a" + "]" * (half - 1) + "\n"
        "c: *b\n"
    )
    found = issues(text)
    assert [(i.line, i.message) for i in found] == [(1, f"{TOO_DEEP} (through aliases)")]
    assert found[0].field.startswith("b[0][0]")


# --- characters a reviewer cannot see, or that YAML refuses ---------------------------------------

REFUSED = (
    [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"]
    + ["\x7f", "\x80", "\x85", "\x9f", "\u061c", "\u200e", "\u200f", "\u2028", "\u2029"]
    + ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\ufeff"]
    + ["\ufffe", "\uffff"]
)
VALID = (ROOT / "tenants.yaml").read_text()


@settings(max_examples=80, deadline=None)
@given(character=st.sampled_from(REFUSED), place=st.data())
@example(character="\x00", place=None)  # the issue's NUL, at the start of the file
def test_a_refused_character_anywhere_is_reported_at_its_line_and_column(
    character: str, place: st.DataObject | None
) -> None:
    lines = VALID.split("\n")
    line = place.draw(st.integers(0, len(lines) - 1)) if place else 0
    column = place.draw(st.integers(0, len(lines[line]))) if place else 0
    assume((line, column, character) != (0, 0, "\ufeff"))  # a byte order mark at the start is allowed
    lines[line] = lines[line][:column] + character + lines[line][column:]
    (issue,) = issues("\n".join(lines))
    assert (issue.line, issue.column, issue.field) == (line + 1, column + 1, "(file)")
    assert f"U+{ord(character):04X}" in issue.message


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_lines_are_counted_as_yaml_counts_them(newline: str) -> None:
    text = (HEAD + "tenants:\n  - subdomain: a1\n    name: \u202eevil\n").replace("\n", newline)
    (issue,) = issues(text)
    assert (issue.line, issue.column) == (7, 11)
    assert issue.message == "the invisible character U+202E (RIGHT-TO-LEFT OVERRIDE) is not allowed"


def test_a_file_full_of_them_is_a_few_lines_not_one_per_character() -> None:
    found = issues(HEAD + "tenants:\n" + "  # \x00\x01\x02\n" * 5000)
    assert len(found) == 11
    assert [i.line for i in found] == list(range(6, 17))  # the first on each line, then how many more
    assert found[-1].message == "14,970 more refused character(s) from here on"


@pytest.mark.parametrize(
    "text",
    [
        "\ufeff" + HEAD,  # a byte order mark at the start
        # a tab, accents, CJK, an emoji
        HEAD + 'tenants:\n  - subdomain: a1\n    name: "Caf\u00e9 \u6771\u4eac\t\U0001f600"\n',
        HEAD + "tenants:\n  - subdomain: a1\n    name: 'say \u201cno\u201d'  # a comment \u2014 with a dash\n",
    ],
)
def test_printable_text_is_accepted(text: str) -> None:
    assert not any("character" in i.message for i in issues_or_none(text))


# --- size and width ---------------------------------------------------------------------------------

MEGABYTE = "x" * 1_000_000
LONG_PLACES = {
    "subdomain": "tenants:\n  - subdomain: {}\n",
    "storage": "tenants:\n  - subdomain: a1\n    storage: {}\n",
    "environment": "tenants:\n  - subdomain: a1\n    environments: [{}]\n",
    "unknown field": "tenants:\n  - subdomain: a1\n    ? {}\n    : 1\n",
    "secret key": "tenants:\n  - subdomain: a1\n    secrets:\n      ? {}\n      : {{from: config}}\n",
    "source": "tenants:\n  - subdomain: a1\n    secrets:\n      K: {{from: {}}}\n",
    "comment": "tenants: # {}\n  - subdomain: ''\n",
}


@pytest.mark.parametrize("place", sorted(LONG_PLACES))
def test_a_megabyte_long_line_is_never_printed_back(place: str) -> None:
    found = issues(HEAD + LONG_PLACES[place].format(MEGABYTE))
    assert found
    assert all(len(str(issue)) < 600 for issue in found), [len(str(i)) for i in found]


def refusal(text: str) -> TenantsFileError:
    with pytest.raises(TenantsFileError) as caught:
        parse_tenants(text)
    return caught.value


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(1, 3000))
@example(width=MAX_ISSUES)
@example(width=MAX_ISSUES + 1)
def test_every_item_of_a_wide_list_is_reported_at_its_line_up_to_the_limit(width: int) -> None:
    refused = refusal(HEAD + "tenants:\n" + "".join(f"  - {n}\n" for n in range(width)))
    shown = min(width, MAX_ISSUES)
    assert [(i.line, i.message) for i in refused.issues] == [
        (6 + n, "expected a mapping, got a number") for n in range(shown)
    ]
    assert refused.more == width - shown
    assert str(refused).count("\n") == shown - 1 + (width > shown)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(1, 3000))
def test_every_bad_key_of_a_wide_mapping_is_reported_up_to_the_limit(width: int) -> None:
    keys = "".join(f"      key{n}: {{from: config}}\n" for n in range(width))
    refused = refusal(HEAD + "tenants:\n  - subdomain: a1\n    secrets:\n" + keys)
    assert [i.line for i in refused.issues] == list(range(8, 8 + min(width, MAX_ISSUES)))
    assert all(i.message.endswith("is not an environment-style name") for i in refused.issues)
    assert refused.more == max(0, width - MAX_ISSUES)


def test_tenantctl_validate_lists_the_first_issues_and_counts_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(HEAD + "tenants: [" + "1, " * 1500 + "1]\n")
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == MAX_ISSUES + 1
    assert lines[-1] == f"{path}: 501 more problem(s) not shown; fix these and run again"
    assert captured.err == f"{path}: 1,501 problem(s)\n"
