"""The name rules (subdomains, secret keys), checked against independent oracles with hypothesis,
and against the patterns that the generated JSON Schema gives editors."""

from __future__ import annotations

import string

import jsonschema
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tenant_secrets.tenants_file.names import (
    RESERVED_SUBDOMAINS,
    encoded_label_problem,
    folder_problem,
    infisical_key_problem,
    key_problem,
    subdomain_problem,
)
from tenant_secrets.tenants_file.schema import json_schema

LABEL_CHARS = string.ascii_lowercase + string.digits + "-"
TRICKY = LABEL_CHARS + "_. A\n\t/:Zé\u0131"  # '\u0131' (dotless i) upper-cases to 'I'


def is_dns_label(value: str) -> bool:
    """RFC 1035 label, lowercase only, written without a regex."""
    return (
        0 < len(value) <= 63
        and all(c in LABEL_CHARS for c in value)
        and not value.startswith("-")
        and not value.endswith("-")
    )


def is_env_style_key(value: str) -> bool:
    return (
        0 < len(value) <= 255
        and value[0] in string.ascii_uppercase
        and all(c in string.ascii_uppercase + string.digits + "_" for c in value)
    )


subdomains = st.one_of(
    st.text(LABEL_CHARS, max_size=70), st.text(TRICKY, max_size=70), st.sampled_from(sorted(RESERVED_SUBDOMAINS))
)
keys = st.one_of(
    st.text(string.ascii_uppercase + string.digits + "_", max_size=300),
    st.text(string.ascii_letters + string.digits + "_:/ -\n", max_size=40),
)
SCHEMA = json_schema()


def _validator(definition: dict[str, object]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(definition)


SUBDOMAIN_SCHEMA = _validator(SCHEMA["$defs"]["Tenant"]["properties"]["subdomain"])
KEY_SCHEMA = _validator(SCHEMA["$defs"]["Tenant"]["properties"]["secrets"]["propertyNames"])


@given(subdomains)
@example("a")
@example("a" * 63)
@example("a" * 64)
@example("codewiser\n")
@example("-a")
@example("a-")
@example("a--b")
def test_subdomain_rule_is_a_dns_label_that_is_not_reserved(value: str) -> None:
    expected = is_dns_label(value) and value not in RESERVED_SUBDOMAINS
    assert (subdomain_problem(value) is None) == expected


@given(subdomains)
def test_a_suggested_subdomain_is_itself_valid(value: str) -> None:
    problem = subdomain_problem(value)
    if problem and problem.hint.startswith("did you mean '"):
        suggestion = problem.hint.removeprefix("did you mean '").removesuffix("'?")
        assert subdomain_problem(suggestion) is None


@given(st.text(LABEL_CHARS, min_size=1, max_size=63))
@example("xn--pple-43d")
@example("ab--cd")
@example("a--b")
def test_a_label_with_two_hyphens_in_third_and_fourth_place_is_an_encoded_one(value: str) -> None:
    assert (encoded_label_problem(value) is not None) == (value[2:3] == "-" and value[3:4] == "-")


@given(st.text(st.characters(min_codepoint=0xA0, max_codepoint=0x2FFF, categories=["Ll", "Lo"]), min_size=1))
def test_every_punycode_name_is_refused_naming_what_it_displays(text: str) -> None:
    value = "xn--" + text.encode("punycode").decode("ascii")
    if subdomain_problem(value) is not None:  # too long for a label
        return
    problem = encoded_label_problem(value)
    assert problem is not None
    assert f"can display as '{text}'" in problem.message
    assert f"U+{ord(text[0]):04X}" in problem.message


def test_the_look_alike_of_the_issue_names_its_cyrillic_letter() -> None:
    problem = encoded_label_problem("xn--pple-43d")
    assert problem is not None
    assert problem.message == (
        "'xn--pple-43d' is an encoded name that can display as '\u0430pple' (U+0430 CYRILLIC SMALL LETTER A)"
    )
    assert "docs/decisions/0023-encoded-subdomains.md" in problem.hint


@given(st.text(LABEL_CHARS + "_.A", max_size=70))
def test_the_schema_and_the_validator_agree_on_subdomains(value: str) -> None:
    assert SUBDOMAIN_SCHEMA.is_valid(value) == (subdomain_problem(value) is None)


@given(keys)
@example("A" * 255)
@example("A" * 256)
@example("STRIPE_SECRET_KEY\n")
@example("A:B")
@example(" A")
def test_key_rule_is_an_environment_style_name_of_at_most_255(value: str) -> None:
    assert (key_problem(value) is None) == is_env_style_key(value)


@given(keys)
def test_every_accepted_key_is_one_infisical_accepts(value: str) -> None:
    if key_problem(value) is None:
        assert infisical_key_problem(value) is None
        assert value == value.strip() and ":" not in value and "/" not in value


@given(st.text(string.ascii_letters + string.digits + "_-", max_size=300))
def test_the_schema_and_the_validator_agree_on_keys(value: str) -> None:
    assert KEY_SCHEMA.is_valid(value) == (key_problem(value) is None)


@pytest.mark.parametrize(
    "name", ["www", "api", "admin", "app", "mail", "tenants", "static", "assets", "status", "internal", "localhost"]
)
def test_the_reserved_names_named_in_the_issue(name: str) -> None:
    assert name in RESERVED_SUBDOMAINS
    problem = subdomain_problem(name)
    assert problem is not None and problem.message == f"'{name}' is reserved"


@pytest.mark.parametrize("name", ["tenants", "Tenants", "TENANTS", "shared", "Shared"])
def test_reserved_folder_names_are_reserved_in_any_case(name: str) -> None:
    """Issue 13, item 9: `Tenants` and `TENANTS` passed as platform folders."""
    problem = folder_problem(name)
    assert problem is not None and problem.message == f"'{name}' is reserved"
