"""The stack's settings read the same way from the program's config and from a provider's `configure`."""

from __future__ import annotations

import hashlib
import json

import pytest

from tenant_secrets.stack.settings import StackConfigError, StackSettings


def fake_key(label: str) -> str:
    """A fixed, random-looking key (a weak one is refused): sha256 of an obviously fake label."""
    return hashlib.sha256(f"fake-{label}".encode()).hexdigest()


KEY_1, KEY_2, DERIVATION = fake_key("master-1"), fake_key("master-2"), fake_key("derivation")


def load(**raw: str) -> StackSettings:
    config = {"masterKeys": json.dumps({"v1": KEY_1}), "derivationKey": DERIVATION, **raw}
    return StackSettings.load(config.get, stack="dev")


def test_defaults_and_the_newest_key_is_active() -> None:
    settings = load(masterKeys=json.dumps({"v1": KEY_1, "v2": KEY_2}))
    assert (settings.environment, settings.key_version, settings.keyring) == ("dev", 2, {"1": KEY_1, "2": KEY_2})
    assert (settings.create_companies, settings.retain_on_delete, settings.history_retention) == (False, True, 10)
    assert settings.master_keys.active == 2
    assert (
        settings.fingerprint_key
        == load().fingerprint_key
        != load(derivationKey=fake_key("derivation-2")).fingerprint_key
    )


def test_buckets_are_off_unless_set() -> None:
    assert (load().buckets, load(buckets="63").buckets) == (None, 63)


def test_values_arrive_as_strings_from_either_side() -> None:
    settings = load(activeKeyVersion="1", createCompanies="True", retainOnDelete="false", historyRetention="3")
    assert (settings.key_version, settings.create_companies, settings.retain_on_delete) == (1, True, False)
    assert settings.store.history_retention == 3


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"masterKeys": json.dumps({"one": KEY_1})}, "tenant-secrets:masterKeys.one: master keys are named by version"),
        ({"masterKeys": json.dumps({"v1": "abc"})}, "tenant-secrets:masterKeys.v1: expected 64 hex characters"),
        ({"activeKeyVersion": "2"}, "tenant-secrets:activeKeyVersion is 2, but masterKeys has no v2"),
        ({"activeKeyVersion": "two"}, "tenant-secrets:activeKeyVersion: expected a whole number"),
        ({"derivationKey": "abcd"}, "tenant-secrets:derivationKey must be a secret of 64 hex chars"),
        ({"createCompanies": "yes"}, "tenant-secrets:createCompanies: expected true or false"),
        ({"tablePrefix": "1bad"}, "tenant-secrets:tablePrefix: use letters"),
        ({"rotationBatchSize": "0"}, "tenant-secrets:rotationBatchSize: a whole number >= 1"),
        ({"buckets": "0"}, "tenant-secrets:buckets: a whole number >= 1 of buckets per store"),
        ({"buckets": "many"}, "tenant-secrets:buckets: expected a whole number"),
        ({"provisionerRole": "p"}, "tenant-secrets:provisionerRole is set but tenant-secrets:appRole is not"),
        ({"appWriterRole": "w"}, "tenant-secrets:appWriterRole is set but tenant-secrets:appRole is not"),
        (
            {"appRole": "app", "appWriterRole": "app"},
            "tenant-secrets:appWriterRole is appRole's role 'app': the application's writer must be a role of its own",
        ),
        (
            {"appRole": "app", "provisionerRole": "prov", "appWriterRole": "prov"},
            "tenant-secrets:appWriterRole is provisionerRole's role 'prov'",
        ),
    ],
)
def test_each_bad_setting_is_named_with_its_fix_and_never_its_value(raw: dict[str, str], message: str) -> None:
    with pytest.raises(StackConfigError) as err:
        load(**raw)
    assert message in str(err.value)
    assert KEY_1 not in str(err.value) and DERIVATION not in str(err.value)


def test_master_keys_are_required_only_where_a_database_store_asks_for_them() -> None:
    settings = load(masterKeys="")
    assert settings.keyring == {} and settings.key_version is None
    with pytest.raises(StackConfigError, match="tenant-secrets:masterKeys is not set"):
        settings.master_keys  # noqa: B018


def test_the_key_folder_is_the_seeds_by_default_and_the_stack_owns_the_keys() -> None:
    settings = load()
    assert (settings.master_key_source, settings.key_folder) == ("stack", "/hono-api")
    assert settings.load_keyring(lambda env, path: pytest.fail("stack mode reads no folder")) == settings.master_keys
    assert load(keyFolder="/apps/hono-api/").key_folder == "/apps/hono-api"


def test_infisical_owned_keys_are_read_from_the_key_folder_of_the_stacks_environment() -> None:
    settings = load(masterKeys="", masterKeySource="infisical", environment="staging")
    reads: list[tuple[str, str]] = []

    def read(env: str, path: str) -> dict[str, str]:
        reads.append((env, path))
        return {"MASTER_ENCRYPTION_KEY": KEY_2, "MASTER_ENCRYPTION_KEY_VERSION": "2", "MASTER_ENCRYPTION_KEY_V1": KEY_1}

    keyring = settings.load_keyring(read)
    assert reads == [("staging", "/hono-api")]
    assert (keyring.versions, keyring.active) == ((1, 2), 2)
    with pytest.raises(StackConfigError) as err:
        settings.load_keyring(lambda env, path: {"MASTER_ENCRYPTION_KEY": "not-hex"})
    assert "/hono-api/MASTER_ENCRYPTION_KEY: expected 64 hex characters" in str(err.value)
    assert "not-hex" not in str(err.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"masterKeySource": "vault"}, "tenant-secrets:masterKeySource: expected `stack`"),
        ({"masterKeySource": "infisical", "environment": "dev"}, "masterKeys is set although masterKeySource"),
        ({"masterKeySource": "infisical", "masterKeys": ""}, "tenant-secrets:environment must be set"),
        ({"keyFolder": "/tenants/acme"}, "tenant-secrets:keyFolder: not a usable Infisical folder path"),
        ({"keyFolder": "/a b"}, "tenant-secrets:keyFolder: not a usable Infisical folder path"),
    ],
)
def test_bad_key_source_settings_are_named(raw: dict[str, str], message: str) -> None:
    with pytest.raises(StackConfigError, match=message.replace("`", ".").replace("(", ".")):
        load(**raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"masterKeys": json.dumps({"v1": "00" * 32})}, "masterKeys.v1 is not random (only 1 distinct byte values"),
        ({"masterKeys": json.dumps({"v1": "0123456789abcdef" * 4})}, "masterKeys.v1 is not random (only 8 distinct"),
        ({"masterKeys": json.dumps({"v1": KEY_1, "v2": KEY_1.upper()})}, "masterKeys.v2 is the same key as"),
        ({"derivationKey": "ab" * 32}, "tenant-secrets:derivationKey is not random (only 1 distinct byte values"),
        ({"derivationKey": KEY_1}, "tenant-secrets:derivationKey is the same key as tenant-secrets:masterKeys.v1"),
    ],
)
def test_weak_repeated_and_reused_keys_are_refused(raw: dict[str, str], message: str) -> None:
    """Issue 13, item 9: identical, all-zero or patterned master keys, and a derivation key that is one of them."""
    with pytest.raises(StackConfigError) as err:
        load(**raw)
    assert message in str(err.value)
    assert KEY_1 not in str(err.value) and KEY_1.upper() not in str(err.value)


def test_a_pinned_fingerprint_key_keeps_fingerprints_while_the_derivation_key_changes() -> None:
    """Issue 13, item 9: a new derivation key showed every key as changed; pinned, only generated values change."""
    before = load()
    after = load(derivationKey=fake_key("derivation-2"), fingerprintKey=DERIVATION)
    assert after.fingerprint_key == before.fingerprint_key
    assert after.derivation_key != before.derivation_key  # generated values are derived anew
    assert load(derivationKey=fake_key("derivation-2")).fingerprint_key != before.fingerprint_key
    with pytest.raises(StackConfigError, match="fingerprintKey must be a secret of 64 random hex chars"):
        load(fingerprintKey="ab" * 32)
