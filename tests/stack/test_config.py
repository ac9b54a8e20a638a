"""The stack's config as `pulumi config --json --show-secrets` prints it, read as the program reads it."""

from __future__ import annotations

from tenant_secrets.stack.config import StackConfig

PRINTED = {
    "tenant-secrets:environment": {"value": "dev", "secret": False},
    "tenant-secrets:derivationKey": {"value": "fake-derivation-key-0001", "secret": True},
    "tenant-secrets:masterKeys": {
        "value": '{"v1":"fake-master-key-0001"}',
        "objectValue": {"v1": "fake-master-key-0001"},
        "secret": True,
    },
    "tenant-secrets:secrets": {
        "value": '{"codewiser":{"STRIPE_SECRET_KEY":"fake-stripe-0001"},"shared":{"n":{"deep":"fake-deep"}}}',
        "secret": True,
    },
    "tenant-secrets:appRolePassword": {"secret": True},  # printed without --show-secrets: no value
    "aws:region": {"value": "eu-west-1", "secret": False},
}


def test_settings_as_raw_strings_and_the_secrets_object_by_path() -> None:
    config = StackConfig.from_cli_json(PRINTED)
    assert config.get("environment") == "dev"
    assert config.get("masterKeys") == '{"v1":"fake-master-key-0001"}'  # objects as JSON, as StackSettings reads them
    assert config.get("appRolePassword") is None
    assert config.get("region") is None  # another namespace
    assert config.secret(("codewiser", "STRIPE_SECRET_KEY")) == "fake-stripe-0001"
    assert config.secret(("codewiser", "MISSING")) is None
    assert config.secret(("shared", "n")) is None  # an object is not a value
    assert "fake" not in repr(config)
