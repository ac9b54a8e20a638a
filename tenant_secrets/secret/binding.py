"""Binding a stored ciphertext to its row, so that a ciphertext moved to another row is detected.

The envelope (:mod:`tenant_secrets.secret.envelope`) has no associated data, because the seed's
``decryptSecret`` passes none: whoever can write ``company_secrets`` could otherwise swap two tenants'
ciphertexts, and the application would serve one tenant's secret to the other. Each row therefore
carries, in its own ``binding`` column (which ``decryptSecret`` never reads), an HMAC-SHA256 over
the row's identity and ciphertext::

    key     = HKDF-SHA256(master key of the row's key_version, salt = none, info = "tenant-secrets row-binding v1")
    message = "tenant-secrets row v1" NUL company id NUL secret key NUL key_version NUL version NUL ciphertext
    binding = hex(HMAC-SHA256(key, message))

The key comes from the row's master key, not from the stack's derivation key, so that any holder of
the keyring (the application's reader, ``tenantctl verify``) can check a row. ``version`` is bound too,
so an older ciphertext of the same secret (from the history table) cannot be put back unnoticed.
Decision: docs/decisions/0027-row-binding.md.

Pure: no database, no Pulumi. Nothing here returns or raises a key, a value or a ciphertext.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tenant_secrets.secret.envelope import Keyring, well_formed

_INFO = b"tenant-secrets row-binding v1"
_DOMAIN = "tenant-secrets row v1"


@functools.lru_cache(maxsize=32)
def binding_key(master_key: bytes) -> bytes:
    """The MAC key of rows encrypted with ``master_key``."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(master_key)


@dataclass(frozen=True)
class BoundRow:
    """A stored row as far as its binding is concerned; the ciphertext is never shown."""

    company_id: str
    secret_key: str
    key_version: int
    version: int
    ciphertext: str = field(repr=False)
    binding: str | None = field(default=None, repr=False)
    table: str = "company_secrets"
    """How messages name the table the row is in (a history entry is bound like the row it was)."""

    @property
    def where(self) -> str:
        return f"{self.secret_key!r} of company {self.company_id}"


def row_binding(
    master_key: bytes, *, company_id: str, secret_key: str, key_version: int, version: int, ciphertext: str
) -> str:
    """The binding of a row: hex HMAC-SHA256 over its identity and ciphertext (module docstring)."""
    message = "\x00".join((_DOMAIN, company_id.lower(), secret_key, str(key_version), str(version), ciphertext))
    return hmac.new(binding_key(master_key), message.encode("utf-8"), hashlib.sha256).hexdigest()


def bind(keyring: Keyring, row: BoundRow) -> str:
    """The binding ``row`` should carry, under its own key version's master key."""
    return row_binding(
        keyring.key(row.key_version),
        company_id=row.company_id,
        secret_key=row.secret_key,
        key_version=row.key_version,
        version=row.version,
        ciphertext=row.ciphertext,
    )


class Problem(enum.Enum):
    """Why a row's binding does not hold."""

    MISSING = "has no binding yet"
    MALFORMED = "holds a ciphertext that is not a whole envelope (truncated or altered)"
    SWAPPED = "holds the ciphertext of another row, which holds this row's (swapped)"
    COPIED = "holds a copy of another row's ciphertext"
    ALTERED = "holds a ciphertext that was not written for it (altered, truncated, or put back from elsewhere)"


@dataclass(frozen=True)
class BindingProblem:
    """One row whose ciphertext is not bound to it; ``other`` names the row it came from, when known."""

    row: BoundRow
    problem: Problem
    other: BoundRow | None = None

    def __str__(self) -> str:
        row = self.row
        text = (
            f"{row.table} row {row.where} (version {row.version}, key version {row.key_version}) {self.problem.value}"
        )
        if self.other is not None:
            text += f": it was written for {self.other.table} row {self.other.where} (version {self.other.version})"
        return text


def check_row(keyring: Keyring, row: BoundRow) -> Problem | None:
    """Whether ``row``'s ciphertext is bound to it: None when it is, else what is wrong.

    A row whose key version the keyring lacks raises :class:`~tenant_secrets.secret.envelope.KeyringError`.
    """
    if not well_formed(row.ciphertext):
        return Problem.MALFORMED
    if row.binding is None:
        return Problem.MISSING
    if hmac.compare_digest(row.binding.lower(), bind(keyring, row)):
        return None
    return Problem.ALTERED


def check_rows(keyring: Keyring, rows: Iterable[BoundRow]) -> list[BindingProblem]:
    """Every row of ``rows`` whose ciphertext is not bound to it, naming where a moved ciphertext came from.

    A ciphertext found in two rows is a copy (named in the row whose binding fails); two rows holding
    each other's ciphertext are a swap. What this cannot name (a ciphertext from a row not in ``rows``)
    is reported as altered. A row without a binding is pending (a writer without the keyring wrote it),
    unless another row or history entry of ``rows`` holds its ciphertext: then it was moved, not written.
    """
    rows = list(rows)
    by_ciphertext: dict[str, list[BoundRow]] = {}
    for row in rows:
        by_ciphertext.setdefault(row.ciphertext, []).append(row)
    problems: list[BindingProblem] = []
    for row in rows:
        problem = check_row(keyring, row)
        if problem is None:
            continue
        if problem is Problem.MISSING and (moved := _moved_unbound(row, rows, by_ciphertext)) is not None:
            problems.append(moved)
        elif problem is Problem.ALTERED:
            problem, other = _origin(keyring, row, rows, by_ciphertext)
            problems.append(BindingProblem(row, problem, other))
        else:
            problems.append(BindingProblem(row, problem))
    return problems


def _moved_unbound(
    row: BoundRow, rows: list[BoundRow], by_ciphertext: dict[str, list[BoundRow]]
) -> BindingProblem | None:
    """An unbound row whose ciphertext another row or history entry also holds: moved there, not written.

    A writer without the keyring (the application, decision 0049) leaves its rows unbound, but it encrypts
    with a fresh IV, so its ciphertext is found nowhere else; a plain UPDATE that moves a ciphertext keeps the
    row's previous one as history (migration 0008), so a swap is still told: each row holds what the other
    row (or its history) held.
    """
    twins = [r for r in by_ciphertext[row.ciphertext] if r is not row]
    if not twins:
        return None
    other = twins[0]
    here, there = _identity(row), _identity(other)
    swapped = here != there and any(
        _identity(r) == there
        and r.table == row.table
        and any(_identity(t) == here for t in by_ciphertext[r.ciphertext] if t is not r)
        for r in rows
    )
    return BindingProblem(row, Problem.SWAPPED if swapped else Problem.COPIED, other)


def _identity(row: BoundRow) -> tuple[str, str]:
    return row.company_id.lower(), row.secret_key


def _origin(
    keyring: Keyring, row: BoundRow, rows: list[BoundRow], by_ciphertext: dict[str, list[BoundRow]]
) -> tuple[Problem, BoundRow | None]:
    twins = [r for r in by_ciphertext[row.ciphertext] if r is not row]
    if twins:
        return Problem.COPIED, twins[0]
    # moved whole (with its binding) or alone (the other row still holds the binding written for it)
    for other in rows:
        if other is row or other.key_version != row.key_version:
            continue
        if _written_for(keyring, other, row.ciphertext, (row.binding, other.binding)):
            swapped = _written_for(keyring, row, other.ciphertext, (row.binding, other.binding))
            return (Problem.SWAPPED if swapped else Problem.COPIED), other
    return Problem.ALTERED, None


def _written_for(keyring: Keyring, row: BoundRow, ciphertext: str, bindings: tuple[str | None, ...]) -> bool:
    """Whether one of ``bindings`` binds ``ciphertext`` to ``row``'s identity."""
    expected = bind(keyring, BoundRow(row.company_id, row.secret_key, row.key_version, row.version, ciphertext))
    return any(b is not None and hmac.compare_digest(b.lower(), expected) for b in bindings)
