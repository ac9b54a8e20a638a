"""`tenantctl verify`'s core: what is declared against what the stores hold, by fingerprint, never a value.

    compare(expected, held)        -> findings, one per owner, store and key      (pure)
    Report, render(report, fmt)    text, markdown, JSON                          (pure)

Both sides arrive as fingerprints (``tenant_secrets/secret/values.py``: an HMAC over owner, key and value under
the stack's fingerprint key), so nothing here ever holds a value. What a finding can say:

| kind | meaning |
| --- | --- |
| missing | declared, but the store does not hold it (or the Infisical secret a source reads is gone) |
| undeclared | the store holds a key of a managed folder or a tenant's row that tenants.yaml does not declare |
| different | the store holds another value than the declared one |
| undecryptable | the row does not decrypt with the key of its version (altered, or written with another key) |
| unbound | the row holds a ciphertext not written for it (swapped, copied from another row, truncated) |
| key-version | the row is on a master key version the keyring lacks |
| stores-disagree | the tenant is in both stores and they hold different values |
| application-owned | a tenant's row that tenants.yaml does not declare: the application's own key (listed, not drift) |
| role-rights | a role the stack names (`appRole`, `appWriterRole`) can do more than its job: the owner is the role |
| out-of-region | a tenant's folder or rows in a region its `regions` exclude (docs/decisions/0054-regions.md) |

An application-owned row is the application's, not drift (docs/decisions/0049-keyless-writes.md): no `up`,
refresh, rotation or destroy changes or deletes it, so verify lists it and still reports no drift.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from tenant_secrets.tenants_file.names import few

STORES = ("infisical", "database")
KINDS = (
    "missing",
    "undeclared",
    "different",
    "undecryptable",
    "unbound",
    "key-version",
    "stores-disagree",
    "role-rights",
    "out-of-region",
    "application-owned",
)
APPLICATION_OWNED = "application-owned"
"""The one kind that is not drift: listed, never counted against the stores."""
ROLE_RIGHTS = "role-rights"
OUT_OF_REGION = "out-of-region"
"""A tenant held in a region its `regions` exclude: residency broken, whatever the values."""
"""A finding about a database role, not a tenant: its owner is the role's name."""
WHOLE_OWNER = "*"
NAMED = 5  # owners named in a summary; the rest are counted
NOTES = {
    "missing": "declared, not in the store",
    "undeclared": "in a managed folder or a tenant's rows, not declared in tenants.yaml",
    "different": "the store holds another value than the declared one",
    "undecryptable": "the row does not decrypt with the key of its version (altered, or written with another key)",
    "unbound": (
        "the row holds a ciphertext not written for it (swapped, copied, truncated: tenant_secrets/secret/binding.py)"
    ),
    "key-version": "the row is on a master key version the keyring lacks",
    "stores-disagree": "Infisical and the database hold different values",
    ROLE_RIGHTS: (
        "the application's role can do more than its job (granted by hand, or through PUBLIC or a role it is a "
        "member of): revoke it; the next `up` fails while it holds it"
    ),
    OUT_OF_REGION: "a tenant's folder or rows in a region its `regions` exclude: residency broken; delete them there",
    APPLICATION_OWNED: "a tenant's row tenants.yaml does not declare: the application's own key, not drift",
}


@dataclass(frozen=True)
class Expected:
    """One owner (tenant or platform folder) as tenants.yaml and the stack's config declare it."""

    owner: str
    stores: frozenset[str]
    """Where it must be held; empty for a decommissioned tenant, which must be held nowhere."""
    fingerprints: Mapping[str, str]
    """Key -> fingerprint of the declared value."""
    unresolved: Mapping[str, str] = field(default_factory=dict)
    """Key -> the Infisical secret its `{from: infisical}` source reads, when that secret does not exist."""
    retired: frozenset[str] = frozenset()
    """Keys marked `{decommission: true}`: the next `up` deletes them."""
    platform: bool = False


@dataclass(frozen=True)
class Held:
    """What one store holds for one owner."""

    fingerprints: Mapping[str, str] = field(default_factory=dict)
    """Key -> fingerprint of the stored value."""
    unreadable: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Key -> (kind, detail) for a row that cannot be read: undecryptable, unbound or key-version."""
    absent: str | None = None
    """Why nothing can be held at all (no company for the tenant), instead of one line per key."""

    @property
    def keys(self) -> set[str]:
        return set(self.fingerprints) | set(self.unreadable)


@dataclass(frozen=True, order=True)
class Finding:
    """One difference: an owner, a store, a key and what is wrong. Never a value."""

    owner: str
    store: str
    key: str
    kind: str
    detail: str

    def line(self) -> str:
        return f"{self.owner}  {self.store}  {self.key}  {self.kind}: {self.detail}"


def compare(expected: Iterable[Expected], held: Mapping[tuple[str, str], Held]) -> list[Finding]:
    """Every difference between what is declared and what is held, keyed by (store, owner) in ``held``."""
    findings: list[Finding] = []
    for owner in expected:
        for store in STORES:
            findings += _store_findings(owner, store, held.get((store, owner.owner)))
        for key, where in sorted(owner.unresolved.items()):
            findings.append(Finding(owner.owner, "infisical", key, "missing", f"its source {where} does not exist"))
        if set(STORES) <= owner.stores:
            infisical, database = (held.get((store, owner.owner)) for store in STORES)
            findings += _disagreements(owner.owner, infisical, database)
    return sorted(findings)


def _store_findings(owner: Expected, store: str, held: Held | None) -> list[Finding]:
    name = owner.owner
    if store not in owner.stores:
        if owner.stores or held is None:  # another store's business, or nothing left of a decommissioned tenant
            return []
        return [Finding(name, store, key, "undeclared", "the tenant is decommissioned") for key in sorted(held.keys)]
    if held is not None and held.absent:
        return [Finding(name, store, WHOLE_OWNER, "missing", held.absent)] if owner.fingerprints else []
    held = held or Held()
    findings: list[Finding] = []
    for key, wanted in sorted(owner.fingerprints.items()):
        if key in held.unreadable:
            kind, detail = held.unreadable[key]
            findings.append(Finding(name, store, key, kind, detail))
        elif key not in held.fingerprints:
            findings.append(Finding(name, store, key, "missing", "declared, not in the store"))
        elif held.fingerprints[key] != wanted:
            findings.append(Finding(name, store, key, "different", "the value differs from the declared one"))
    declared = set(owner.fingerprints) | set(owner.unresolved)
    for key in sorted(held.keys - declared):
        if store == "database" and key not in owner.retired:
            findings.append(Finding(name, store, key, APPLICATION_OWNED, _application_owned(key, held)))
        else:
            findings.append(Finding(name, store, key, "undeclared", _undeclared(key, owner)))
    return findings


def _application_owned(key: str, held: Held) -> str:
    text = "not declared in tenants.yaml: the application's key, which no `up` changes or deletes"
    if key in held.unreadable:
        kind, detail = held.unreadable[key]
        text += f" ({kind}: {detail})"
    return text


def _undeclared(key: str, owner: Expected) -> str:
    return "marked {decommission: true}, still in the store" if key in owner.retired else "not declared in tenants.yaml"


def _disagreements(owner: str, infisical: Held | None, database: Held | None) -> list[Finding]:
    if infisical is None or database is None:
        return []
    both = set(infisical.fingerprints) & set(database.fingerprints)
    return [
        Finding(owner, "both", key, "stores-disagree", "Infisical and the database hold different values")
        for key in sorted(both)
        if infisical.fingerprints[key] != database.fingerprints[key]
    ]


# --- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """The outcome of one check of one stack: findings, or why it could not check."""

    stack: str
    environment: str
    findings: tuple[Finding, ...] = ()
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Owner -> store -> keys held (rows, for the database), for every owner checked."""
    error: str | None = None
    show_counts: bool = False
    """Whether text and markdown list the counts per owner (when the check was asked for named tenants)."""

    @property
    def status(self) -> int:
        """The exit status: 0 no drift, 1 drift, 2 could not check."""
        if self.error is not None:
            return 2
        return 1 if self.drift else 0

    @property
    def drift(self) -> tuple[Finding, ...]:
        """The findings that are drift: every one but the application's own keys."""
        return tuple(f for f in self.findings if f.kind != APPLICATION_OWNED)

    def summary(self) -> str:
        where = f"stack {self.stack} (environment {self.environment})" if self.environment else f"stack {self.stack}"
        if self.error is not None:
            return f"could not check {where}: {self.error}"
        held = {store: sum(c.get(store, 0) for c in self.counts.values()) for store in STORES}
        scope = (
            f"{len(self.counts)} tenant(s) or folder(s), {held['infisical']} secret(s) in Infisical, "
            f"{held['database']} row(s) in the database"
        )
        owned = sum(f.kind == APPLICATION_OWNED for f in self.findings)
        apps = f"; {owned} application-owned row(s), not drift" if owned else ""
        if not self.drift:
            return f"no drift on {where}: {scope}, every value as declared{apps}"
        owners = sorted({f.owner for f in self.drift if f.kind != ROLE_RIGHTS})
        roles = sorted({f.owner for f in self.drift if f.kind == ROLE_RIGHTS})
        kinds = Counter(f.kind for f in self.drift)
        counted = ", ".join(f"{kinds[k]} {k}" for k in KINDS if kinds[k])
        scopes = (
            [f"{len(owners)} of {len(self.counts)} tenant(s) or folder(s) ({few(owners, NAMED)})"] if owners else []
        )
        scopes += [f"role(s) {few(roles, NAMED)}"] if roles else []
        return f"drift on {where} in {' and '.join(scopes)}: {counted}{apps}"


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "markdown":
        return render_markdown(report)
    return render_text(report)


def render_text(report: Report) -> str:
    lines = [f.line() for f in report.findings]
    if report.show_counts and report.error is None:
        lines += [_counts_line(owner, counts) for owner, counts in sorted(report.counts.items())]
    return "\n".join([*lines, report.summary()]) + "\n"


def _counts_line(owner: str, counts: Mapping[str, int]) -> str:
    held = ", ".join(f"{counts[store]} in {store}" for store in STORES if store in counts)
    return f"{owner}: {held or 'in no store (decommissioned)'}"


def render_markdown(report: Report) -> str:
    title = f"### tenant-secrets verify: stack `{report.stack}`"
    if report.environment:
        title += f", environment `{report.environment}`"
    if report.error is not None:
        return f"{title}: could not check\n\n```text\n{report.error}\n```\n\n{report.summary()}\n"
    out = [title, ""]
    if report.findings:
        out += ["| tenant / folder | store | key | drift | detail |", "| --- | --- | --- | --- | --- |"]
        out += [f"| {f.owner} | {f.store} | `{f.key}` | **{f.kind}** | {f.detail} |" for f in report.findings]
        out.append("")
    if report.show_counts:
        out += ["| tenant / folder | Infisical | database |", "| --- | --- | --- |"]
        for owner, counts in sorted(report.counts.items()):
            cells = [str(counts[s]) if s in counts else "-" for s in STORES]
            out.append(f"| {owner} | {' | '.join(cells)} |")
        out.append("")
    if report.findings:
        kinds = [k for k in KINDS if any(f.kind == k for f in report.findings)]
        out += ["Values are never shown. " + " ".join(f"*{k}*: {NOTES[k]}." for k in kinds), ""]
    out.append(report.summary())
    return "\n".join(out) + "\n"


def render_json(report: Report) -> str:
    document = {
        "stack": report.stack,
        "environment": report.environment,
        "status": ("clean", "drift", "error")[report.status],
        "findings": [asdict(f) for f in report.findings],
        "counts": {owner: dict(counts) for owner, counts in sorted(report.counts.items())},
        "error": report.error,
        "summary": report.summary(),
    }
    return json.dumps(document, indent=2) + "\n"
