"""The Python side of the readers' shared test vectors (tests/fixtures/reader-vectors.json).

The Node.js reader (packages/tenant-secrets-reader/) checks itself against the same file, so a change of
the envelope, the row binding, the key folder's rules or what names a company (decision 0046) in either
language fails here or there. The file is the contract: it is read, never regenerated, by the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tenant_secrets.reader.database import tenant_ref
from tenant_secrets.secret.binding import BoundRow, binding_key, check_row, row_binding
from tenant_secrets.secret.envelope import EnvelopeError, Keyring, decrypt, well_formed
from tenant_secrets.secret.keyfolder import KeyFolderError, keyring_from_folder
from tenant_secrets.tenants_file.names import encoded_label_problem, subdomain_problem, uuid_label_problem

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "reader-vectors.json").read_text(encoding="utf-8")
)


def _keyring(spec: dict[str, Any]) -> Keyring:
    return Keyring.from_hex(spec["keys"], spec["active"])


@pytest.mark.parametrize("case", VECTORS["envelopes"], ids=lambda c: c["name"])
def test_each_envelope_decrypts_to_its_plaintext(case: dict[str, Any]) -> None:
    assert decrypt(case["envelope"], bytes.fromhex(case["keyHex"])) == case["plaintext"]
    assert case["envelope"].startswith(case["ivHex"] + ":")


@pytest.mark.parametrize("case", VECTORS["badEnvelopes"], ids=lambda c: c["name"])
def test_each_bad_envelope_is_refused(case: dict[str, Any]) -> None:
    assert well_formed(case["envelope"]) is case["wellFormed"]
    with pytest.raises(EnvelopeError):
        decrypt(case["envelope"], bytes.fromhex(case["keyHex"]))


@pytest.mark.parametrize("case", VECTORS["bindings"], ids=lambda c: c["name"])
def test_each_binding_is_the_hmac_of_its_row(case: dict[str, Any]) -> None:
    key = bytes.fromhex(case["masterKeyHex"])
    assert binding_key(key).hex() == case["bindingKeyHex"]
    assert (
        row_binding(
            key,
            company_id=case["companyId"],
            secret_key=case["secretKey"],
            key_version=case["keyVersion"],
            version=case["version"],
            ciphertext=case["ciphertext"],
        )
        == case["binding"]
    )


@pytest.mark.parametrize("case", VECTORS["checkRow"], ids=lambda c: c["name"])
def test_each_row_check_finds_the_vectors_problem(case: dict[str, Any]) -> None:
    row = case["row"]
    problem = check_row(
        _keyring(case["keyring"]),
        BoundRow(
            row["companyId"], row["secretKey"], row["keyVersion"], row["version"], row["ciphertext"], row["binding"]
        ),
    )
    assert (None if problem is None else problem.name.lower()) == case["problem"]


@pytest.mark.parametrize("case", VECTORS["keyFolders"], ids=lambda c: c["name"])
def test_each_key_folder_publishes_the_vectors_keyring(case: dict[str, Any]) -> None:
    if case["keyring"] is None:
        with pytest.raises(KeyFolderError):
            keyring_from_folder(case["secrets"], folder="/hono-api")
        return
    keyring = keyring_from_folder(case["secrets"], folder="/hono-api")
    assert keyring.active == case["keyring"]["active"]
    assert {str(v): keyring.key(v).hex() for v in keyring.versions} == case["keyring"]["keys"]


@pytest.mark.parametrize("case", VECTORS["tenantRefs"], ids=lambda c: repr(c["text"]))
def test_each_tenant_text_names_the_vectors_company_or_subdomain(case: dict[str, Any]) -> None:
    ref = tenant_ref(case["text"])
    assert (None if isinstance(ref, str) else str(ref)) == case["companyId"]
    assert (isinstance(ref, str) and subdomain_problem(ref) is None) is case["subdomain"]


@pytest.mark.parametrize("case", VECTORS["tenantRefs"], ids=lambda c: repr(c["text"]))
def test_validation_refuses_every_tenant_name_a_reader_takes_for_a_company_id(case: dict[str, Any]) -> None:
    refused = subdomain_problem(case["text"]) or encoded_label_problem(case["text"]) or uuid_label_problem(case["text"])
    assert (refused is None) is case["tenantName"]
    if case["companyId"] is not None:
        assert refused is not None, f"{case['text']!r} validates as a tenant, and the readers take it as a company id"
