"""Issue 13, item 2: `{from: infisical}` obeys the rule `{from: config}` does: a tenant reads its own
folder, a platform folder its own, anything several owners read is in a folder the stack's sharedFolders
lists; and a stack reads its own environment."""

from __future__ import annotations

import json
import os

import pulumi
import pytest

from components.program import check_key_sources
from tenant_secrets.stack.settings import StackSettings
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import TenantsFileError, plan_environment
from tenant_secrets.tenants_file.source_policy import SourcePolicy
from tenant_secrets.tenants_file.validation import check_sources

HEAD = "version: 1\ndefaults: {storage: infisical, environments: [dev, prod]}\n"


def refused(secrets: str, *, owner: str = "tenants:\n  - subdomain: acme\n    secrets:\n") -> list[str]:
    text = HEAD + "platform:\n  hono-api:\n    secrets:\n      SENTRY_DSN: {value: fake-dsn}\n"
    text += owner + secrets + "  - subdomain: globex\n    secrets:\n      X: {value: fake-x}\n"
    try:
        parse_tenants(text)
    except TenantsFileError as err:
        return [f"{i.field}: {i.message}" for i in err.issues]
    return []


@pytest.mark.parametrize(
    ("path", "whose"),
    [
        ("/tenants/globex", "tenant 'globex'"),
        ("/tenants/GLOBEX/", "tenant 'globex'"),
        ("/Tenants/globex", "tenant 'globex'"),
        ("/tenants", "every tenant"),
        ("/hono-api", "platform folder or tenant 'hono-api'"),
        ("/HONO-API", "platform folder or tenant 'hono-api'"),
    ],
)
def test_another_owners_folder_is_refused(path: str, whose: str) -> None:
    secrets = f"      STRIPE_SECRET_KEY: {{from: infisical, path: {path}, key: STRIPE_SECRET_KEY}}\n"
    assert refused(secrets) == [
        f"tenants[0].secrets.STRIPE_SECRET_KEY.path: reads Infisical {path}, which belongs to {whose}"
    ]


def test_its_own_folder_and_an_unclaimed_one_pass_the_file_alone() -> None:
    """Whether /shared/stripe and /legacy/acme may be read depends on the stack's sharedFolders
    (tests/tenants_file/test_source_policy.py); the file alone refuses only what no setting opens."""
    secrets = (
        "      A: {from: infisical, path: /tenants/acme, key: A}\n"
        "      B: {from: infisical, path: /shared/stripe, key: B}\n"
        "      C: {from: infisical, path: /legacy/acme, key: C}\n"
    )
    assert refused(secrets) == []
    # a platform folder reads its own folder too, and no tenant's
    platform = "platform:\n  ops:\n    secrets:\n      K: {from: infisical, path: /ops, key: K}\n"
    platform += "      L: {from: infisical, path: /tenants/acme, key: L}\n"
    with pytest.raises(TenantsFileError) as err:
        parse_tenants(HEAD + platform)
    assert [i.message for i in err.value.issues] == ["reads Infisical /tenants/acme, which belongs to tenant 'acme'"]


def test_defaults_read_no_tenants_folder() -> None:
    text = HEAD.replace("}\n", ", secrets: {K: {from: infisical, path: /tenants/acme, key: K}}}\n", 1)
    with pytest.raises(TenantsFileError) as err:
        parse_tenants(text + "tenants:\n  - subdomain: acme\n")
    assert [i.message for i in err.value.issues] == ["reads Infisical /tenants/acme, which belongs to tenant 'acme'"]


def test_another_environment_is_read_only_from_a_shared_folder() -> None:
    text = HEAD + (
        "tenants:\n  - subdomain: acme\n    secrets:\n"
        "      A: {from: infisical, path: /tenants/acme, key: A, environment: prod}\n"
        "      B: {from: infisical, path: /shared/stripe, key: B, environment: prod}\n"
        "      C: {from: infisical, path: /tenants/acme, key: C, environment: dev}\n"
    )
    policy = SourcePolicy(shared_folders=frozenset({"/shared/stripe"}))
    plan = plan_environment(parse_tenants(text), "dev")
    issues = check_sources(plan, "tenants.yaml", config_has=bool, environ={}, policy=policy)
    assert [(i.line, i.message) for i in issues] == [
        (6, "tenant acme, A: reads Infisical prod:/tenants/acme, another environment than the stack's (dev)")
    ]


def test_the_program_refuses_to_copy_a_master_key_out_of_the_key_folder() -> None:
    config = {"masterKeys": json.dumps({"v1": os.urandom(32).hex()}), "derivationKey": os.urandom(32).hex()}
    settings = StackSettings.load(config.get, stack="dev")
    text = HEAD + "tenants:\n  - subdomain: acme\n    secrets:\n"
    text += "      KEY: {from: infisical, path: /hono-api/, key: MASTER_ENCRYPTION_KEY_V1}\n"
    with pytest.raises(pulumi.RunError) as err:
        check_key_sources(settings, plan_environment(parse_tenants(text), "dev"), "tenants.yaml")
    assert str(err.value) == (
        "tenants.yaml: acme.KEY reads MASTER_ENCRYPTION_KEY_V1 from /hono-api, which holds the master keys; "
        "a master key is never copied into another folder"
    )
