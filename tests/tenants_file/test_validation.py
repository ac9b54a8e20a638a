"""Cross-field checks run on whatever parsed: all of a file's mistakes come out in one run.

When a part of the file is invalid (a typo in a tenant, in defaults, in a platform folder), the
checks across the file still run on that part's outline, the fields that are valid on their own, so
a reviewer fixing one mistake is not sent back for the next.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import Issue, TenantsFileError


def issues(text: str) -> list[Issue]:
    with pytest.raises(TenantsFileError) as caught:
        parse_tenants(text)
    return list(caught.value.issues)


def summary(text: str) -> list[tuple[int, int, str, str]]:
    return [(i.line, i.column, i.field, i.message) for i in issues(text)]


def test_an_override_for_an_absent_environment_next_to_a_typo_in_the_same_tenant() -> None:
    text = (
        "version: 1\n"
        "defaults: {storage: both, environments: [dev, prod]}\n"
        "tenants:\n"
        "  - subdomain: a1\n"  # 4
        "    environments: [dev]\n"
        "    storge: both\n"  # 6
        "    overrides:\n"
        "      prod: {secrets: {X: {value: a}}}\n"  # 8
    )
    assert summary(text) == [
        (6, 5, "tenants[0].storge", "unknown field 'storge'"),
        (8, 7, "tenants[0].overrides.prod", "an override for 'prod', where a1 does not exist"),
    ]


def test_a_group_clash_and_a_config_path_of_another_tenant_next_to_a_typo() -> None:
    text = (
        "version: 1\n"
        "defaults: {storage: both, environments: [dev]}\n"
        "tenants:\n"
        "  - subdomain: a1\n"  # 4
        "    nmae: A One\n"
        "    secrets:\n"
        "      SMTP_HOST: {value: a}\n"  # 7
        "      SMTP: {host: {value: b}}\n"  # 8
        "      STRIPE: {from: config, key: b2.STRIPE}\n"  # 9
        "  - subdomain: b2\n"
    )
    assert summary(text) == [
        (5, 5, "tenants[0].nmae", "unknown field 'nmae'"),
        (
            8,
            14,
            "tenants[0].secrets.SMTP.host",
            "gives the key SMTP_HOST, which tenants[0].secrets.SMTP_HOST also declares",
        ),
        (9, 35, "tenants[0].secrets.STRIPE.key", "reads secrets.b2.STRIPE, which belongs to 'b2'"),
    ]


def test_invalid_defaults_still_declare_the_environments() -> None:
    text = (
        "version: 1\n"
        "defaults:\n"
        "  storage: vault\n"  # 3
        "  environments: [dev, staging]\n"
        "tenants:\n"
        "  - subdomain: a1\n"
        "    environments: [dev, prod]\n"  # 7
        "  - subdomain: b2\n"
        "    overrides:\n"
        "      stagin: {}\n"  # 10
    )
    found = issues(text)
    assert [(i.line, i.column, i.field, i.message) for i in found] == [
        (3, 12, "defaults.storage", "unknown storage 'vault'"),
        (7, 25, "tenants[0].environments[1]", "'prod' is not one of the environments in defaults.environments"),
        (10, 7, "tenants[1].overrides.stagin", "an override for 'stagin', where b2 does not exist"),
    ]
    assert found[2].hint.startswith("did you mean 'staging'?")


def test_defaults_with_invalid_environments_check_nothing_against_them() -> None:
    text = "version: 1\ndefaults: {storage: both, environments: [Dev]}\n"
    text += "tenants:\n  - subdomain: a1\n    environments: [x]\n"
    assert [i.field for i in issues(text)] == ["defaults.environments[0]"]


def test_an_invalid_platform_folder_keeps_its_valid_overrides_checked() -> None:
    text = (
        "version: 1\n"
        "defaults: {storage: both, environments: [dev]}\n"
        "platform:\n"
        "  hono-api:\n"
        "    secretz: {}\n"  # 5
        "    overrides:\n"
        "      prod: {}\n"  # 7
    )
    assert summary(text) == [
        (5, 5, "platform.hono-api.secretz", "unknown field 'secretz'"),
        (
            7,
            7,
            "platform.hono-api.overrides.prod",
            "an override for 'prod', where platform folder hono-api does not exist",
        ),
    ]


def test_a_tenant_with_an_invalid_subdomain_is_left_out_of_the_checks_across_tenants() -> None:
    text = (
        "version: 1\ndefaults: {storage: both, environments: [dev]}\ntenants:\n  - subdomain: A1\n  - subdomain: a1\n"
    )
    assert [i.field for i in issues(text)] == ["tenants[0].subdomain"]


# --- all mistakes in one run, as a property -------------------------------------------------------------

HEAD = "version: 1\ndefaults: {storage: both, environments: [dev, prod]}\ntenants:\n"


def tenant(index: int, mistake: str | None) -> str:
    """One tenant, 5 lines, with at most one mistake of a kind that needs no other tenant."""
    lines = {
        "subdomain": f"  - subdomain: t{index}\n",
        "environments": "    environments: [dev]\n",
        "storage": "    storage: both\n",
        "secrets": "    secrets: {X: {from: config}}\n",
        "overrides": "    overrides: {dev: {}}\n",
    }
    if mistake == "typo":
        lines["storage"] = "    storge: both\n"
    elif mistake == "type":
        lines["secrets"] = "    secrets: {X: {value: 587}}\n"
    elif mistake == "override":
        lines["overrides"] = "    overrides: {prod: {}}\n"
    elif mistake == "key":
        lines["secrets"] = "    secrets: {x_key: {from: config}}\n"
    elif mistake == "source":
        lines["secrets"] = "    secrets: {X: {from: config, value: y}}\n"
    return "".join(lines.values())


MISTAKES = ["typo", "type", "override", "key", "source"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([None, None, *MISTAKES]), min_size=2, max_size=6))
def test_each_mistake_is_reported_whatever_else_is_wrong(mistakes: list[str | None]) -> None:
    """The issues of a file with several mistakes are exactly those of each mistake alone."""
    combined = HEAD + "".join(tenant(i, m) for i, m in enumerate(mistakes))
    expected: set[tuple[int, int, str, str]] = set()
    for index, mistake in enumerate(mistakes):
        if mistake is None:
            continue
        alone = HEAD + "".join(tenant(i, m if i == index else None) for i, m in enumerate(mistakes))
        found = summary(alone)
        assert found, f"{mistake} was not reported"
        expected |= set(found)
    if expected:
        assert set(summary(combined)) == expected
    else:
        parse_tenants(combined)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([None, *MISTAKES]), min_size=2, max_size=5), st.data())
def test_a_duplicate_subdomain_is_reported_whatever_else_is_wrong(
    mistakes: list[str | None], data: st.DataObject
) -> None:
    first = data.draw(st.integers(0, len(mistakes) - 2))
    second = data.draw(st.integers(first + 1, len(mistakes) - 1))
    text = HEAD + "".join(tenant(i, m) for i, m in enumerate(mistakes))
    text = text.replace(f"subdomain: t{second}\n", f"subdomain: t{first}\n")
    duplicates = [i for i in issues(text) if i.message.startswith("duplicate subdomain")]
    assert [i.field for i in duplicates] == [f"tenants[{second}].subdomain"]
