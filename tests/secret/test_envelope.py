"""The encryption envelope: format, round trips, errors that never leak, the keyring."""

from __future__ import annotations

import copy
import os
import pickle
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tenant_secrets.secret.envelope import (
    EnvelopeError,
    Keyring,
    KeyringError,
    MasterKeyError,
    decrypt,
    encrypt,
    parse_master_key,
)

keys = st.binary(min_size=32, max_size=32)
ENVELOPE = re.compile(r"(?P<iv>[0-9a-f]*):(?P<ct>[0-9a-f]*):(?P<tag>[0-9a-f]*)")


@given(value=st.text(), key=keys)
def test_round_trip(value: str, key: bytes) -> None:
    assert decrypt(encrypt(value, key), key) == value


@given(value=st.text(), key=keys)
def test_format_is_iv_ciphertext_tag_in_lowercase_hex(value: str, key: bytes) -> None:
    match = ENVELOPE.fullmatch(encrypt(value, key))
    assert match is not None
    assert len(match["iv"]) == 24
    assert len(match["ct"]) == 2 * len(value.encode("utf-8"))  # GCM: as long as the plaintext, even
    assert len(match["tag"]) == 32


@given(value=st.text(max_size=50), key=keys)
def test_fresh_iv_every_time(value: str, key: bytes) -> None:
    first, second = encrypt(value, key), encrypt(value, key)
    assert first.split(":")[0] != second.split(":")[0]
    assert first != second


def test_known_answer_from_the_gcm_specification() -> None:
    """McGrew & Viega's AES-GCM test cases 13 and 14 (256-bit zero key, zero IV), as envelopes."""
    zero_key = bytes(32)
    assert decrypt("0" * 24 + "::530f8afbc74536b9a963b4f1c4cb738b", zero_key) == ""
    case_14 = "0" * 24 + ":cea7403d4d606b6e074ec5d3baf39d18:d0d1c8a799996bf0265b98b5d48ab919"
    assert decrypt(case_14, zero_key) == "\x00" * 16


@given(suffix=st.text(), key=keys, other=keys)
def test_wrong_key_is_refused_without_leaking(suffix: str, key: bytes, other: bytes) -> None:
    assume(key != other)
    value = f"fake-plaintext-{suffix}"
    envelope = encrypt(value, key)
    with pytest.raises(EnvelopeError, match="another key or has been altered") as info:
        decrypt(envelope, other)
    message = str(info.value)
    assert "fake-plaintext-" not in message
    assert all(part not in message for part in envelope.split(":") if part)
    assert key.hex() not in message and other.hex() not in message


def test_text_that_is_not_unicode_is_refused_without_echoing_it() -> None:
    with pytest.raises(EnvelopeError, match="lone surrogate at 5") as info:
        encrypt("fake-\ud800-value", os.urandom(32))
    assert "fake" not in str(info.value)
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_tampered_ciphertext_is_refused() -> None:
    key = os.urandom(32)
    iv, ct, tag = encrypt("fake-value-for-tests", key).split(":")
    flipped = f"{int(ct[0], 16) ^ 1:x}" + ct[1:]
    with pytest.raises(EnvelopeError, match="altered"):
        decrypt(f"{iv}:{flipped}:{tag}", key)


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        ("", "3 parts"),
        ("aa:bb", "3 parts"),
        ("a:b:c:d", "3 parts"),
        ("00" * 11 + ":00:" + "00" * 16, "iv part"),
        ("zz" * 12 + ":00:" + "00" * 16, "iv part"),
        ("00" * 12 + ":0:" + "00" * 16, "ciphertext part"),
        ("00" * 12 + ":0g:" + "00" * 16, "ciphertext part"),
        ("00" * 12 + ":00:" + "00" * 15, "authTag part"),
    ],
)
def test_malformed_envelopes_are_named(envelope: str, reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        decrypt(envelope, os.urandom(32))


def test_parse_master_key_accepts_64_hex_characters_either_case() -> None:
    key = os.urandom(32)
    assert parse_master_key(key.hex(), field="masterKeys.1") == key
    assert parse_master_key(key.hex().upper(), field="masterKeys.1") == key


@pytest.mark.parametrize(
    ("given_key", "reason"),
    [
        ("ab" * 16, "expected 64 hex characters, got 32"),
        ("ab" * 33, "got 66"),
        ("0x" + "ab" * 31, "other than 0-9 and a-f"),
        ("fake-master-key-".ljust(64, "q"), "other than 0-9 and a-f"),
        (" " + "ab" * 31 + "a", "other than 0-9 and a-f"),
    ],
)
def test_parse_master_key_names_the_field_and_the_fix_never_the_value(given_key: str, reason: str) -> None:
    with pytest.raises(MasterKeyError) as info:
        parse_master_key(given_key, field="masterKeys.2")
    message = str(info.value)
    assert message.startswith("masterKeys.2: ")
    assert reason in message
    assert "openssl rand -hex 32" in message
    assert given_key not in message and given_key.strip() not in message


@given(key=st.binary(max_size=64).filter(lambda k: len(k) != 32))
def test_encrypt_and_decrypt_refuse_keys_of_the_wrong_size(key: bytes) -> None:
    with pytest.raises(MasterKeyError):
        encrypt("fake", key)
    with pytest.raises(MasterKeyError):
        decrypt("00" * 12 + "::" + "00" * 16, key)


def test_keyring_from_hex_and_use() -> None:
    old, new = os.urandom(32), os.urandom(32)
    ring = Keyring.from_hex({"1": old.hex(), 2: new.hex()}, active=2)
    assert ring.versions == (1, 2)
    assert ring.key(1) == old
    envelope = ring.encrypt("fake-stripe-key")
    assert decrypt(envelope, new) == "fake-stripe-key"
    assert ring.decrypt(encrypt("fake-old", old), 1) == "fake-old"


def test_keyring_repr_and_str_never_show_key_bytes() -> None:
    key = os.urandom(32)
    ring = Keyring({3: key}, 3)
    for text in (repr(ring), str(ring), f"{ring}"):
        assert text == "Keyring(versions=[3], active=3)"
        assert key.hex() not in text


def test_keyring_refuses_to_be_pickled_or_copied() -> None:
    ring = Keyring({1: os.urandom(32)}, 1)
    with pytest.raises(TypeError, match="must not be pickled"):
        pickle.dumps(ring)
    with pytest.raises(TypeError):
        copy.deepcopy(ring)


def test_keyring_keys_are_frozen() -> None:
    source = {1: os.urandom(32)}
    ring = Keyring(source, 1)
    source[2] = os.urandom(32)
    assert ring.versions == (1,)
    with pytest.raises(TypeError):
        ring.keys[2] = os.urandom(32)  # type: ignore[index]


@pytest.mark.parametrize(
    ("keys", "active", "error", "message"),
    [
        ({1: 32}, 2, KeyringError, "active key version 2 is not in the keyring"),
        ({0: 32}, 0, KeyringError, "integers >= 1"),
        ({-1: 32}, -1, KeyringError, "integers >= 1"),
        ({1: 16}, 1, MasterKeyError, "key version 1: expected 32 bytes"),
    ],
)
def test_keyring_validation(keys: dict[int, int], active: int, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Keyring({v: os.urandom(n) for v, n in keys.items()}, active)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"one": "ab" * 32}, "masterKeys.one: a key version must be an integer"),
        ({"0": "ab" * 32}, "masterKeys.0: a key version must be an integer >= 1"),
        ({"1": "ab" * 32, 1: "cd" * 32}, "masterKeys.1: key version 1 is given twice"),
        ({"1": "ab" * 32, "2": "too-short"}, "masterKeys.2: expected 64 hex characters"),
    ],
)
def test_keyring_from_hex_names_the_field(keys: dict[str | int, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        Keyring.from_hex(keys, active=1)
    assert "too-short" not in str(info.value)
