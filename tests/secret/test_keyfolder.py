"""The key folder as the application reads it: what is published, and the keyring read back from it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenant_secrets.secret.envelope import encrypt
from tenant_secrets.secret.keyfolder import (
    KeyFolderError,
    is_keyring_secret,
    keyring_from_folder,
    published_values,
    published_versions,
)

KEY_1, KEY_2, KEY_3 = "1a" * 32, "2b" * 32, "3c" * 32


def test_the_seeds_layout_is_a_keyring_of_one_key() -> None:
    keyring = keyring_from_folder({"MASTER_ENCRYPTION_KEY": KEY_1, "EMAIL_FROM": "x"}, folder="/hono-api")
    assert (keyring.versions, keyring.active) == ((1,), 1)
    assert keyring.decrypt(encrypt("fake-value", bytes.fromhex(KEY_1)), 1) == "fake-value"


def test_a_rotation_in_progress_reads_every_published_version_with_the_current_one_active() -> None:
    folder = published_values({1: KEY_1, 2: KEY_2}, versions=[1, 2], current=1)
    assert folder == {
        "MASTER_ENCRYPTION_KEY_V1": KEY_1,
        "MASTER_ENCRYPTION_KEY_V2": KEY_2,
        "MASTER_ENCRYPTION_KEY": KEY_1,
        "MASTER_ENCRYPTION_KEY_VERSION": "1",
    }
    keyring = keyring_from_folder(folder, folder="/hono-api")
    assert (keyring.versions, keyring.active) == ((1, 2), 1)


def test_without_a_version_the_current_key_is_the_versioned_key_it_equals() -> None:
    folder = {"MASTER_ENCRYPTION_KEY": KEY_2, "MASTER_ENCRYPTION_KEY_V1": KEY_1, "MASTER_ENCRYPTION_KEY_V2": KEY_2}
    assert keyring_from_folder(folder, folder="/hono-api").active == 2


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ({}, "/hono-api/MASTER_ENCRYPTION_KEY is missing"),
        ({"MASTER_ENCRYPTION_KEY": "abc"}, "/hono-api/MASTER_ENCRYPTION_KEY: expected 64 hex characters"),
        (
            {"MASTER_ENCRYPTION_KEY": KEY_1, "MASTER_ENCRYPTION_KEY_V2": "zz" * 32},
            "/hono-api/MASTER_ENCRYPTION_KEY_V2: contains characters other than",
        ),
        (
            {"MASTER_ENCRYPTION_KEY": KEY_1, "MASTER_ENCRYPTION_KEY_VERSION": "two"},
            "/hono-api/MASTER_ENCRYPTION_KEY_VERSION: expected a whole number",
        ),
        (
            {"MASTER_ENCRYPTION_KEY": KEY_1, "MASTER_ENCRYPTION_KEY_V1": KEY_2, "MASTER_ENCRYPTION_KEY_VERSION": "1"},
            "differs from /hono-api/MASTER_ENCRYPTION_KEY_V1",
        ),
        (
            {"MASTER_ENCRYPTION_KEY": KEY_3, "MASTER_ENCRYPTION_KEY_V1": KEY_1},
            "matches none of the versioned keys",
        ),
    ],
)
def test_a_missing_or_malformed_key_is_named_with_the_format_and_never_shown(
    folder: dict[str, str], message: str
) -> None:
    with pytest.raises(KeyFolderError) as err:
        keyring_from_folder(folder, folder="/hono-api/")
    assert message in str(err.value)
    for key in (KEY_1, KEY_2, KEY_3, "zz" * 32):
        assert key not in str(err.value)


def test_publishing_a_version_the_keys_lack_is_refused() -> None:
    with pytest.raises(KeyFolderError, match="lacks version"):
        published_values({1: KEY_1}, versions=[1, 2])


def test_keyring_secret_names() -> None:
    assert all(
        map(is_keyring_secret, ["MASTER_ENCRYPTION_KEY", "MASTER_ENCRYPTION_KEY_VERSION", "MASTER_ENCRYPTION_KEY_V12"])
    )
    assert not any(map(is_keyring_secret, ["MASTER_ENCRYPTION_KEY_V0", "MASTER_ENCRYPTION_KEYS", "EMAIL_FROM"]))
    assert published_versions(["MASTER_ENCRYPTION_KEY_V3", "MASTER_ENCRYPTION_KEY", "OTHER"]) == {3}


@given(
    keys=st.dictionaries(st.integers(1, 50), st.binary(min_size=32, max_size=32).map(bytes.hex), min_size=1),
    data=st.data(),
)
def test_what_is_published_reads_back_as_the_same_keyring(keys: dict[int, str], data: st.DataObject) -> None:
    versions = data.draw(st.sets(st.sampled_from(sorted(keys)), min_size=1))
    current = data.draw(st.sampled_from(sorted(versions)))
    keyring = keyring_from_folder(published_values(keys, versions=versions, current=current), folder="/hono-api")
    assert keyring.active == current
    assert {v: k.hex() for v, k in keyring.keys.items()} == {v: keys[v] for v in versions}
