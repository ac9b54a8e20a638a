"""The row binding (tenant_secrets.secret.binding): a ciphertext is accepted only in the row it was written for."""

from __future__ import annotations

import os

import pytest

from tenant_secrets.secret.binding import BoundRow, Problem, bind, check_row, check_rows
from tenant_secrets.secret.envelope import Keyring

ACME = "00000000-0000-4000-a000-00000000000a"
GLOBEX = "00000000-0000-4000-a000-00000000000b"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring({1: os.urandom(32), 2: os.urandom(32)}, active=2)


def written(keyring: Keyring, company: str, key: str, value: str, *, version: int = 1) -> BoundRow:
    ciphertext = keyring.encrypt(value)
    row = BoundRow(company, key, keyring.active, version, ciphertext)
    return BoundRow(company, key, keyring.active, version, ciphertext, bind(keyring, row))


def moved(row: BoundRow, to: BoundRow, *, with_binding: bool) -> BoundRow:
    """``to``'s identity holding ``row``'s ciphertext (and its binding, or ``to``'s own)."""
    binding = row.binding if with_binding else to.binding
    return BoundRow(to.company_id, to.secret_key, to.key_version, to.version, row.ciphertext, binding)


def test_a_row_written_for_itself_checks_and_an_unbound_row_is_missing(keyring: Keyring) -> None:
    row = written(keyring, ACME, "STRIPE_SECRET_KEY", "fake-acme-stripe")
    assert check_row(keyring, row) is None
    unbound = BoundRow(ACME, "STRIPE_SECRET_KEY", row.key_version, row.version, row.ciphertext)
    assert check_row(keyring, unbound) is Problem.MISSING


@pytest.mark.parametrize("with_binding", [True, False])
def test_a_swap_of_two_tenants_ciphertexts_is_named_in_both_rows(keyring: Keyring, with_binding: bool) -> None:
    acme = written(keyring, ACME, "STRIPE_SECRET_KEY", "fake-acme-stripe")
    globex = written(keyring, GLOBEX, "STRIPE_SECRET_KEY", "fake-globex-stripe")
    problems = check_rows(
        keyring, [moved(globex, acme, with_binding=with_binding), moved(acme, globex, with_binding=with_binding)]
    )
    assert [(p.row.company_id, p.problem, p.other and p.other.company_id) for p in problems] == [
        (ACME, Problem.SWAPPED, GLOBEX),
        (GLOBEX, Problem.SWAPPED, ACME),
    ]
    assert str(problems[0]) == (
        f"company_secrets row 'STRIPE_SECRET_KEY' of company {ACME} (version 1, key version 2) holds the ciphertext "
        "of another row, which holds this row's (swapped): it was written for company_secrets row "
        f"'STRIPE_SECRET_KEY' of company {GLOBEX} (version 1)"
    )


def test_a_copy_from_another_row_is_named_with_its_origin(keyring: Keyring) -> None:
    acme = written(keyring, ACME, "STRIPE_SECRET_KEY", "fake-acme-stripe")
    globex = written(keyring, GLOBEX, "STRIPE_SECRET_KEY", "fake-globex-stripe")
    problems = check_rows(keyring, [acme, moved(acme, globex, with_binding=True)])
    assert [(p.row.company_id, p.problem, p.other and p.other.company_id) for p in problems] == [
        (GLOBEX, Problem.COPIED, ACME)
    ]
    # the origin row itself was overwritten meanwhile: still a copy, named
    acme_now = written(keyring, ACME, "STRIPE_SECRET_KEY", "fake-acme-stripe-2")
    problems = check_rows(keyring, [acme_now, moved(acme, globex, with_binding=False)])
    assert [(p.row.company_id, p.problem) for p in problems] == [(GLOBEX, Problem.ALTERED)]


def test_a_truncated_ciphertext_and_a_rolled_back_version_are_named(keyring: Keyring) -> None:
    row = written(keyring, ACME, "STRIPE_SECRET_KEY", "fake-acme-stripe")
    truncated = BoundRow(ACME, row.secret_key, row.key_version, row.version, row.ciphertext[:-2], row.binding)
    shortened = row.ciphertext.split(":")
    shortened[1] = shortened[1][:-2]
    cut = BoundRow(ACME, row.secret_key, row.key_version, row.version, ":".join(shortened), row.binding)
    later = BoundRow(ACME, row.secret_key, row.key_version, 2, row.ciphertext, row.binding)  # version 1's, put back
    assert check_row(keyring, truncated) is Problem.MALFORMED
    assert check_row(keyring, cut) is Problem.ALTERED
    assert check_row(keyring, later) is Problem.ALTERED
    assert all(row.ciphertext not in str(p) for p in check_rows(keyring, [truncated, cut, later]))


def test_the_binding_is_keyed_by_the_rows_own_master_key_version(keyring: Keyring) -> None:
    row = written(keyring, ACME, "STRIPE_SECRET_KEY", "fake-acme-stripe")
    relabelled = BoundRow(ACME, row.secret_key, 1, row.version, row.ciphertext, row.binding)
    assert check_row(keyring, relabelled) is Problem.ALTERED
    other_keys = Keyring({2: os.urandom(32)}, active=2)  # the stack's derivation key plays no part; the master key does
    assert check_row(other_keys, row) is Problem.ALTERED
