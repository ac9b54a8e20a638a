"""Every kind of mistake in tenants.yaml is reported at its file:line:column and field, all in one run."""

from __future__ import annotations

import pytest

from tenant_secrets.tenants_file.loader import load_tenants_file, parse_tenants
from tenant_secrets.tenants_file.model import Issue, TenantsFileError

HEAD = """\
version: 1
defaults:
  storage: both
  environments: [dev, staging, prod]
"""  # four lines: the bodies below start on line 5


def issues(text: str) -> list[Issue]:
    with pytest.raises(TenantsFileError) as caught:
        parse_tenants(text)
    return list(caught.value.issues)


def where(text: str) -> list[tuple[int, int, str]]:
    return [(i.line, i.column, i.field) for i in issues(text)]


def only(text: str) -> Issue:
    found = issues(text)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def test_the_issue_renders_as_file_line_column_field_message_hint() -> None:
    issue = Issue("tenants.yaml", 12, 7, "tenants[2].secrets.X", "no value source", "add one")
    assert str(issue) == "tenants.yaml:12:7: tenants[2].secrets.X: no value source. Add one"
    assert (
        str(Issue("t.yaml", 1, 1, "version", "unsupported version 2")) == "t.yaml:1:1: version: unsupported version 2"
    )


def test_the_error_lists_every_issue_one_per_line_in_file_order() -> None:
    text = HEAD + "tenants:\n  - subdomain: WWW\n    storge: both\n  - subdomain: ok-one\n    name: 5\n"
    with pytest.raises(TenantsFileError) as caught:
        parse_tenants(text)
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[0] for line in lines] == ["tenants.yaml:6:16", "tenants.yaml:7:5", "tenants.yaml:9:11"]


def test_yaml_syntax_error_names_the_line() -> None:
    issue = only(HEAD + "tenants:\n  - subdomain: a1\n   name: x\n")
    assert (issue.line, issue.column, issue.field) == (7, 4, "(file)")
    assert issue.message.startswith("not valid YAML")


def test_an_unclosed_flow_mapping_is_a_syntax_error() -> None:
    issue = only(HEAD + "tenants:\n  - subdomain: a1\n    secrets:\n      X: {from: config\n")
    assert issue.line == 9
    assert "not valid YAML" in issue.message


def test_every_duplicate_key_is_reported_not_only_the_first() -> None:
    text = HEAD + (
        "tenants:\n"
        "  - subdomain: a1\n"  # 6
        "    name: A\n"
        "    name: B\n"  # 8
        "    secrets:\n"
        "      X: {from: config}\n"
        "      X: {from: env, var: Y}\n"  # 11
    )
    found = issues(text)
    assert [(i.line, i.column, i.field) for i in found] == [
        (8, 5, "tenants[0].name"),
        (11, 7, "tenants[0].secrets.X"),
    ]
    assert found[0].message == "duplicate key 'name'"
    assert "line 7" in found[0].hint


def test_unknown_fields_suggest_the_field_meant() -> None:
    found = issues(HEAD + "tenants:\n  - subdomain: a1\n    storge: both\n    secret:\n      X: {from: config}\n")
    assert [(i.line, i.column, i.field, i.message) for i in found] == [
        (7, 5, "tenants[0].storge", "unknown field 'storge'"),
        (8, 5, "tenants[0].secret", "unknown field 'secret'"),
    ]
    assert found[0].hint.startswith("did you mean 'storage'?")
    assert found[1].hint.startswith("did you mean 'secrets'?")


def test_a_misspelt_field_is_one_issue_not_also_a_missing_one() -> None:
    issue = only(HEAD + "tenants:\n  - subdomain: a1\n    secrets:\n      X: {from: env, vra: Y}\n")
    assert (issue.line, issue.column, issue.field, issue.message) == (
        8,
        22,
        "tenants[0].secrets.X.vra",
        "unknown field 'vra'",
    )
    assert issue.hint == "did you mean 'var'? Allowed here: from, var, expires, review_by"


def test_a_missing_field_with_an_unrelated_unknown_one() -> None:
    found = issues(HEAD + "tenants:\n  - subdomain: a1\n    secrets:\n      X: {from: env, colour: blue}\n")
    assert [(i.line, i.column, i.field, i.message) for i in found] == [
        (8, 10, "tenants[0].secrets.X.var", "missing required field 'var'"),
        (8, 22, "tenants[0].secrets.X.colour", "unknown field 'colour'"),
    ]
    assert found[0].hint == "For example {from: env, var: CODEWISER_SENDGRID_API_KEY}"


def test_wrong_types() -> None:
    text = HEAD + (
        "tenants:\n"
        "  - subdomain: 123\n"  # 6
        "    name: [a]\n"
        "    decommission: 'yes'\n"  # 8
        "    secrets:\n"
        "      PORT: {value: 587}\n"  # 10
        "      BYTES: {generate: {bytes: '32'}}\n"
    )
    found = issues(text)
    assert [(i.line, i.column, i.field, i.message) for i in found] == [
        (6, 16, "tenants[0].subdomain", "expected text, got a number"),
        (7, 11, "tenants[0].name", "expected text, got a list"),
        (8, 19, "tenants[0].decommission", "expected true or false, or a list, got text"),
        (10, 21, "tenants[0].secrets.PORT.value", "expected text, got a number"),
        (11, 33, "tenants[0].secrets.BYTES.generate.bytes", "expected a whole number, got text"),
    ]
    assert found[0].hint == 'quote it: "123"'
    assert found[3].hint == 'quote it: "587"'


def test_duplicate_subdomains_are_reported_at_the_second() -> None:
    issue = only(HEAD + "tenants:\n  - subdomain: acme\n  - subdomain: beta\n  - subdomain: acme\n")
    assert (issue.line, issue.column, issue.field) == (8, 16, "tenants[2].subdomain")
    assert issue.message == "duplicate subdomain 'acme'"
    assert "tenants[0]" in issue.hint


def test_a_duplicate_subdomain_is_reported_next_to_an_error_elsewhere() -> None:
    text = HEAD + "tenants:\n  - subdomain: acme\n  - subdomain: acme\n  - subdomain: beta\n    storage: infisicle\n"
    found = issues(text)
    assert [(i.line, i.field, i.message) for i in found] == [
        (7, "tenants[1].subdomain", "duplicate subdomain 'acme'"),
        (9, "tenants[2].storage", "unknown storage 'infisicle'"),
    ]
    assert found[1].hint == "did you mean 'infisical'? Allowed: infisical, database, both"


def test_invalid_and_reserved_subdomains() -> None:
    text = HEAD + (
        "tenants:\n"
        "  - subdomain: www\n"
        "  - subdomain: Code_Wiser\n"
        "  - subdomain: acme-\n"
        f"  - subdomain: {'a' * 64}\n"
        "  - subdomain: ''\n"
    )
    found = issues(text)
    assert [(i.line, i.column, i.field) for i in found] == [
        (n, 16, f"tenants[{n - 6}].subdomain") for n in range(6, 11)
    ]
    assert [i.message for i in found] == [
        "'www' is reserved",
        "'Code_Wiser' is not a DNS label: only lowercase letters a-z, digits and hyphens",
        "'acme-' starts or ends with a hyphen",
        "the subdomain is 64 characters long",
        "the subdomain is empty",
    ]
    assert found[1].hint == "did you mean 'code-wiser'?"
    assert found[2].hint == "did you mean 'acme'?"


def test_an_encoded_subdomain_is_refused_unless_the_tenant_is_decommissioned() -> None:
    text = HEAD + "tenants:\n  - subdomain: apple\n  - subdomain: xn--pple-43d\n  - subdomain: ab--cd\n"
    found = issues(text)
    assert [(i.line, i.column, i.field) for i in found] == [
        (7, 16, "tenants[1].subdomain"),
        (8, 16, "tenants[2].subdomain"),
    ]
    assert found[0].message.startswith("'xn--pple-43d' is an encoded name that can display as")
    gone = HEAD + "tenants:\n  - subdomain: xn--pple-43d\n    decommission: true\n"
    assert parse_tenants(gone).document.tenants[0].decommission


def test_a_subdomain_that_reads_as_a_company_id_is_refused_unless_the_tenant_is_decommissioned() -> None:
    """Issue 26, item 6: the reader takes UUID text as a company id, so a tenant so named would stand in for it."""
    acme = "3f2b8c1e-9d4a-4e6b-8a1f-2c7d5e9b0a14"  # another company's id, as text
    text = HEAD + (
        "tenants:\n"
        "  - subdomain: acme\n"
        f"  - subdomain: {acme}\n"  # 7
        f"  - subdomain: {acme.replace('-', '')}\n"  # hyphens dropped: uuid.UUID and PostgreSQL read it the same
        "  - subdomain: 3f2b-8c1e-9d4a-4e6b-8a1f-2c7d-5e9b-0a14\n"  # PostgreSQL's groups of four
        "  - subdomain: deadbeef-cafe\n"  # hex, but not 32 digits: a name
        f"  - subdomain: 0x{acme.replace('-', '')[2:]}\n"  # 11: Python's int takes a 0x prefix, and so do the readers
        f"  - subdomain: 0-x{acme.replace('-', '')[2:]}\n"  # hyphens dropped first: 0x again
    )
    found = issues(text)
    assert [(i.line, i.column, i.field) for i in found] == [
        (7, 16, "tenants[1].subdomain"),
        (8, 16, "tenants[2].subdomain"),
        (9, 16, "tenants[3].subdomain"),
        (11, 16, "tenants[5].subdomain"),
        (12, 16, "tenants[6].subdomain"),
    ]
    assert found[0].message == f"'{acme}' reads as a UUID, which names a company by its id, not a subdomain"
    assert found[0].hint == "choose a subdomain that is not 32 hex digits, or 0x and 30 (with or without hyphens)"
    gone = HEAD + f"tenants:\n  - subdomain: {acme}\n    decommission: true\n"
    assert parse_tenants(gone).document.tenants[0].decommission


def test_bad_key_names_are_reported_at_the_key() -> None:
    text = HEAD + (
        "tenants:\n"
        "  - subdomain: a1\n"
        "    secrets:\n"
        "      stripe_key: {from: config}\n"  # 8
        "      'A:B': {from: config}\n"
        "      ' PADDED': {from: config}\n"
        "      1PASSWORD: {from: config}\n"
        f"      {'K' * 256}: {{from: config}}\n"
    )
    found = issues(text)
    assert [(i.line, i.column) for i in found] == [(8, 7), (9, 7), (10, 7), (11, 7), (12, 7)]
    assert found[0].field == "tenants[0].secrets.stripe_key"
    assert [i.message for i in found] == [
        "'stripe_key' is not an environment-style name",
        "'A:B' contains ':' or '/'",
        "' PADDED' has leading or trailing spaces",
        "'1PASSWORD' is not an environment-style name",
        "the key is 256 characters long",
    ]
    assert found[0].hint == "did you mean STRIPE_KEY?"


def test_a_secret_with_no_source() -> None:
    text = HEAD + "tenants:\n  - subdomain: a1\n    secrets:\n      A: {}\n      B: {var: X}\n      C: {from: vault}\n"
    found = issues(text)
    assert [(i.line, i.column, i.field, i.message) for i in found] == [
        (8, 10, "tenants[0].secrets.A", "no value source"),
        (9, 10, "tenants[0].secrets.B", "no value source"),
        (10, 10, "tenants[0].secrets.C", "unknown source 'from: vault'"),
    ]
    assert "{from: config}" in found[0].hint


def test_a_mistyped_source_marker_gets_did_you_mean() -> None:
    text = HEAD + "tenants:\n  - subdomain: a1\n    secrets:\n      A: {form: config}\n      B: {vaule: not-secret}\n"
    found = issues(text)
    assert [(i.line, i.message) for i in found] == [
        (8, "no value source: unknown field 'form'"),
        (9, "no value source: unknown field 'vaule'"),
    ]
    assert found[0].hint.startswith("did you mean 'from'? ")
    assert found[1].hint.startswith("did you mean 'value'? ")
    assert "{from: config}" in found[0].hint


def test_a_secret_with_two_sources_is_reported_at_the_second() -> None:
    text = HEAD + (
        "tenants:\n"
        "  - subdomain: a1\n"
        "    secrets:\n"
        "      A: {from: config, value: x}\n"
        "      B: {generate: {bytes: 32}, from: env, var: Y}\n"
    )
    found = issues(text)
    assert [(i.line, i.column, i.field, i.message) for i in found] == [
        (8, 25, "tenants[0].secrets.A.value", "a second value source 'value' besides 'from'"),
        (9, 11, "tenants[0].secrets.B.generate", "a second value source 'generate' besides 'from'"),
    ]


def test_a_value_written_in_the_file_is_refused_and_never_echoed() -> None:
    fake = "sk_test_FAKE0000000000000000"
    issue = only(HEAD + f"tenants:\n  - subdomain: a1\n    secrets:\n      STRIPE_SECRET_KEY: {fake}\n")
    assert (issue.line, issue.column, issue.field) == (8, 26, "tenants[0].secrets.STRIPE_SECRET_KEY")
    assert issue.message == "a secret needs a value source, not text"
    assert "pulumi config set --secret" in issue.hint
    assert fake not in str(issue)


def test_bad_generate_parameters() -> None:
    text = HEAD + (
        "tenants:\n"
        "  - subdomain: a1\n"
        "    secrets:\n"
        "      A: {generate: {bytes: 8, encoding: base32}}\n"
        "      B: {generate: {bytes: 4096}, rotation: ''}\n"
        "      C: {generate: 32}\n"
    )
    found = issues(text)
    assert [(i.line, i.column, i.field) for i in found] == [
        (8, 29, "tenants[0].secrets.A.generate.bytes"),
        (8, 42, "tenants[0].secrets.A.generate.encoding"),
        (9, 29, "tenants[0].secrets.B.generate.bytes"),
        (9, 46, "tenants[0].secrets.B.rotation"),
        (10, 21, "tenants[0].secrets.C.generate"),
    ]
    assert found[0].message == "should be greater than or equal to 16"
    assert found[1].message == "unknown encoding 'base32'"
    assert found[2].message == "should be less than or equal to 128"
    assert found[4].message == "expected a mapping, got a number"


def test_rotation_may_be_a_number_or_a_date() -> None:
    text = HEAD + (
        "tenants:\n"
        "  - subdomain: a1\n"
        "    secrets:\n"
        "      A: {generate: {bytes: 32}, rotation: 2}\n"
        "      B: {generate: {bytes: 32}, rotation: 2026-11-28}\n"
    )
    secrets = parse_tenants(text).document.tenants[0].secrets
    assert [s.rotation for s in secrets.values()] == ["2", "2026-11-28"]  # type: ignore[union-attr]


def test_an_override_for_an_environment_the_tenant_is_not_in() -> None:
    text = HEAD + (
        "tenants:\n"
        "  - subdomain: a1\n"
        "    environments: [dev, staging]\n"
        "    overrides:\n"
        "      prod:\n"  # 9
        "        secrets:\n"
        "          X: {from: config}\n"
    )
    issue = only(text)
    assert (issue.line, issue.column, issue.field) == (9, 7, "tenants[0].overrides.prod")
    assert issue.message == "an override for 'prod', where a1 does not exist"
    assert issue.hint == "add 'prod' to its environments (dev, staging), or remove the override"


def test_an_undeclared_environment_suggests_the_declared_one() -> None:
    text = HEAD + "tenants:\n  - subdomain: a1\n    environments: [dev, prdo]\n    overrides:\n      stagin: {}\n"
    found = issues(text)
    assert [(i.line, i.column, i.field) for i in found] == [
        (7, 25, "tenants[0].environments[1]"),
        (9, 7, "tenants[0].overrides.stagin"),
    ]
    assert found[0].hint == "did you mean 'prod'? Declared: dev, staging, prod"
    assert found[1].hint.startswith("did you mean 'staging'?")


def test_environments_written_as_a_map_points_to_overrides() -> None:
    issue = only(HEAD + "tenants:\n  - subdomain: a1\n    environments:\n      dev:\n        secrets: {}\n")
    assert (issue.line, issue.column, issue.field) == (8, 7, "tenants[0].environments")
    assert "overrides" in issue.hint


def test_unknown_storage_and_unknown_version() -> None:
    text = "version: 2\ndefaults:\n  storage: vault\n  environments: [dev]\n"
    found = issues(text)
    assert [(i.line, i.column, i.field, i.message) for i in found] == [
        (1, 10, "version", "unsupported version 2"),
        (3, 12, "defaults.storage", "unknown storage 'vault'"),
    ]


def test_missing_required_parts() -> None:
    found = issues("version: 1\ntenants:\n  - name: No Subdomain\n")
    assert [(i.line, i.column, i.field, i.message) for i in found] == [
        (1, 1, "defaults", "missing required field 'defaults'"),
        (3, 5, "tenants[0].subdomain", "missing required field 'subdomain'"),
    ]


def test_group_fields_and_flattened_keys() -> None:
    text = HEAD + (
        "tenants:\n"
        "  - subdomain: a1\n"
        "    secrets:\n"
        "      SMTP_HOST: {from: config}\n"
        "      SMTP:\n"
        "        host: {value: smtp.example.test}\n"  # 10
        "        Port: {value: '587'}\n"
    )
    found = issues(text)
    assert [(i.line, i.column, i.field, i.message) for i in found] == [
        (11, 9, "tenants[0].secrets.SMTP.Port", "'Port' is not a valid group field"),
    ]
    clash = only(text.replace("        Port: {value: '587'}\n", ""))
    assert (clash.line, clash.column, clash.field) == (10, 9, "tenants[0].secrets.SMTP.host")
    assert clash.message == "gives the key SMTP_HOST, which tenants[0].secrets.SMTP_HOST also declares"


def test_a_plain_value_in_a_group_needs_a_source() -> None:
    issue = only(
        HEAD + "tenants:\n  - subdomain: a1\n    secrets:\n      SMTP:\n        host: {value: x}\n        port: 587\n"
    )
    assert (issue.line, issue.column, issue.field) == (10, 15, "tenants[0].secrets.SMTP.port")


def test_a_tenant_cannot_read_another_tenants_config() -> None:
    text = HEAD + (
        "tenants:\n"
        "  - subdomain: acme\n"
        "  - subdomain: beta\n"
        "    secrets:\n"
        "      STRIPE_SECRET_KEY: {from: config, key: acme.STRIPE_SECRET_KEY}\n"  # 9
        "      SHARED_KEY: {from: config, key: shared.stripe_test_key}\n"
    )
    issue = only(text)
    assert (issue.line, issue.column, issue.field) == (9, 46, "tenants[1].secrets.STRIPE_SECRET_KEY.key")
    assert issue.message == "reads secrets.acme.STRIPE_SECRET_KEY, which belongs to 'acme'"


def test_platform_folder_names() -> None:
    text = HEAD + (
        "platform:\n"
        "  tenants: {}\n"  # 6
        "  acme:\n"
        "    secrets:\n"
        "      X: {value: y}\n"
        "tenants:\n"
        "  - subdomain: acme\n"
    )
    found = issues(text)
    assert [(i.line, i.column, i.field, i.message) for i in found] == [
        (6, 3, "platform.tenants", "'tenants' is reserved"),
        (7, 3, "platform.acme", "the platform folder 'acme' has the name of tenant 'acme' (tenants[0])"),
    ]


def test_duplicate_company_ids_and_environment_names() -> None:
    text = (
        "version: 1\n"
        "defaults:\n"
        "  storage: both\n"
        "  environments: [dev, prod, dev]\n"  # 4
        "tenants:\n"
        "  - subdomain: a1\n"
        "    company_id: 5b0c2f7e-6a4b-4c1e-9a53-1f0e8d2c7a10\n"
        "  - subdomain: b1\n"
        "    company_id: 5B0C2F7E-6A4B-4C1E-9A53-1F0E8D2C7A10\n"  # 9
    )
    found = issues(text)
    assert [(i.line, i.column, i.field) for i in found] == [
        (4, 29, "defaults.environments[2]"),
        (9, 17, "tenants[1].company_id"),
    ]


def test_an_invalid_company_id() -> None:
    issue = only(HEAD + "tenants:\n  - subdomain: a1\n    company_id: not-a-uuid\n")
    assert (issue.line, issue.column, issue.field, issue.message) == (7, 17, "tenants[0].company_id", "not a UUID")


def test_merge_keys_and_non_text_keys_are_refused() -> None:
    text = HEAD + "tenants:\n  - &base\n    subdomain: a1\n  - <<: *base\n    subdomain: b1\n    1: x\n"
    found = issues(text)
    assert [(i.line, i.column, i.message) for i in found] == [
        (8, 5, "YAML merge keys (<<) are not supported"),
        (10, 5, "a key must be text"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("- a\n", "the file is a list, not a mapping"),
        ("just text\n", "the file is text, not a mapping"),
    ],
)
def test_a_file_that_is_not_a_mapping(text: str, message: str) -> None:
    issue = only(text)
    assert (issue.line, issue.column, issue.field, issue.message) == (1, 1, "(file)", message)


def test_an_unreadable_file(tmp_path: object) -> None:
    with pytest.raises(TenantsFileError) as caught:
        load_tenants_file(f"{tmp_path}/missing.yaml")
    assert caught.value.issues[0].message == "cannot read it: No such file or directory"


def test_yaml_1_2_keeps_no_and_on_as_text() -> None:
    tenants = parse_tenants(HEAD + "tenants:\n  - subdomain: 'no'\n    name: on\n  - subdomain: yes\n").document.tenants
    assert [(t.subdomain, t.name) for t in tenants] == [("no", "on"), ("yes", None)]


def test_aliases_are_expanded_but_not_into_themselves_nor_without_limit() -> None:
    shared = HEAD + (
        "tenants:\n"
        "  - subdomain: a1\n"
        "    secrets: &shared\n"
        "      X: {value: y}\n"
        "  - subdomain: b1\n"
        "    secrets: *shared\n"
    )
    assert [dict(t.secrets) for t in parse_tenants(shared).document.tenants][1].keys() == {"X"}
    recursive = issues(HEAD + "tenants: &t\n  - subdomain: a1\n  - *t\n")[0]
    assert (recursive.line, recursive.column, recursive.field) == (5, 10, "tenants[1]")  # the anchor's place
    assert recursive.message == "an alias refers to the collection that contains it"
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
    )
    issue = only(laughs)
    assert issue.message == "the aliases in this file expand to too many values"
