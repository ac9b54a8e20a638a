"""The provider of a bucket resource (`InfisicalBucket`, `DatabaseBucket`): several tenants of one store in one
resource (tenant_secrets/engine/buckets.py, docs/decisions/0053-tenants-per-resource.md).

It decides nothing itself: each tenant's entry is unpacked into exactly the properties its own resource
would have (`InfisicalFolder`, `DatabaseTenant`), and today's provider of that type checks, diffs, writes,
reads and deletes it. What the bucket adds:

- Only the tenants whose own diff says so are written, or that are new; a tenant gone from the bucket is
  deleted only if the delete guard lets it (tenant_secrets/engine/deletes.py), judged per tenant, and only
  forgotten (dropped from the outputs, nothing deleted) when another resource of the run holds it now: the
  stack moved between layouts (docs/decisions/0053-tenants-per-resource.md).
- In a run that moves the stack between layouts (``moving``), a new tenant is adopted
  (``InfisicalFolderProvider.adopt``): its store entry is expected to exist already, held until now by the
  resource of the old layout.
- The tenants of one bucket are written concurrently in the store's pool, so that Infisical folder writes
  in flight still share batch upserts (decision 0037), and a bucket costs no more requests than its
  tenants' own resources did. A store whose provider can write several tenants together
  (:class:`WritesTogether`, the database's: one transaction) gets them all in one call.
- A failure of some tenants does not lose the others: :class:`PartialFailure` carries the bucket's outputs,
  the failed tenants at their old outputs (or absent, if new), and one line per failed tenant; the plugin
  reports it as the engine's partial failure, which records those outputs, so the next `up` writes the
  failed tenants only (their recorded fingerprints still differ from the declared ones).
- On a stack that retains (`retainOnDelete`), a tenant gone from a bucket is forgotten, never deleted nor
  judged by the guard, as the engine retains a tenant's own resource without calling its provider.
- A change of a bucket-wide property (the environment, the table prefix) replaces the bucket, as it
  replaced each tenant's resource. A change that would replace one tenant's resource alone cannot happen
  inside a bucket (its folder path and owner follow from the subdomain, which is the entry's key): if one
  ever shows, the diff refuses it with one line rather than guess.
"""

from __future__ import annotations

import asyncio
import functools
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from pulumi.dynamic import ResourceProvider

from components import providers
from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c
from tenant_secrets.engine.deletes import Verdict
from tenant_secrets.engine.property_diff import PropertyChange, path

_T = TypeVar("_T")
Judge = Callable[[str, Mapping[str, Any]], Verdict]
"""The delete guard's verdict on one tenant's store entry, given its subdomain and its outputs."""


Write = tuple[Mapping[str, Any] | None, Mapping[str, Any]]
"""One tenant's write: its old outputs (None: a create) and its new properties."""


@runtime_checkable
class WritesTogether(Protocol):
    """A per-tenant provider that writes several tenants in one call (components/providers.py
    DatabaseTenantProvider.write_many): each tenant's new outputs, or the error that is its own failure."""

    def write_many(self, writes: Mapping[str, Write]) -> dict[str, dict[str, Any] | Exception]: ...


class PartialFailure(Exception):
    """Some tenants of a bucket could not be written. ``outputs`` are the bucket's outputs to record: the
    written tenants' new ones, the failed tenants' old ones (absent when the tenant is new)."""

    def __init__(self, resource_id: str, outputs: dict[str, Any], reasons: list[str]) -> None:
        super().__init__("\n".join(reasons))
        self.resource_id = resource_id
        self.outputs = outputs
        self.reasons = reasons


@dataclass(frozen=True)
class BucketDiff:
    """What a bucket's diff tells the engine: whether it changes, what replaces it, and each changed path:
    ``tenants.<subdomain>`` per tenant added, removed or changed (its entry is one value, which
    `pulumi preview --diff` decodes to show the properties and keys that changed in it)."""

    changes: bool
    replaces: list[str]
    detailed: dict[str, PropertyChange]


def bucket_id(urn: str) -> str:
    """A bucket's id: its resource name (``bucket-0007-infisical``); a tenant's own ids are in its outputs."""
    return urn.rsplit("::", 1)[-1]


class BucketProvider:
    """One store's buckets, each tenant delegated to ``member`` (today's provider of the per-tenant type),
    its writes, reads and deletes run in ``pool``."""

    def __init__(self, kind: b.BucketKind, member: ResourceProvider, pool: Executor) -> None:
        self._kind = kind
        self._member = member
        self._pool = pool

    def _creator(self, moving: bool) -> Callable[[dict[str, Any]], Any]:
        """The member's create, or its adoption in a run that moves the stack between layouts."""
        adopt = getattr(self._member, "adopt", None)
        return adopt if moving and adopt is not None else self._member.create

    def _reason(self, owner: str, err: BaseException) -> str:
        """One line naming the tenant and store (ours are already); a bug keeps its traceback."""
        if isinstance(err, providers.ProviderError):
            return str(err)
        if isinstance(err, b.BucketError):
            return f"{self._kind.store}: {err}"
        return f"{owner}, {self._kind.store}: {''.join(traceback.format_exception(err)).strip()}"

    async def _each(self, calls: Mapping[str, Callable[[], _T]]) -> tuple[dict[str, _T], dict[str, Exception]]:
        """Every call at once in the store's pool: the results and the failures, by subdomain."""
        loop = asyncio.get_running_loop()
        owners = list(calls)
        results = await asyncio.gather(
            *(loop.run_in_executor(self._pool, calls[owner]) for owner in owners), return_exceptions=True
        )
        done: dict[str, _T] = {}
        failed: dict[str, Exception] = {}
        for owner, result in zip(owners, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):  # cancelled, interrupted: not a tenant's failure
                    raise result
                failed[owner] = result
            else:
                done[owner] = result
        return done, failed

    async def _write(
        self, writes: Mapping[str, Write], *, moving: bool = False
    ) -> tuple[dict[str, dict[str, Any]], dict[str, Exception]]:
        """Each tenant's create (or adoption, ``moving``) or update: the new outputs and the failures, by
        subdomain. Together in one call of the store's pool when the member writes several tenants at once (its
        creates adopt equal rows), else each in its own."""
        if not writes:
            return {}, {}
        member = self._member
        if isinstance(member, WritesTogether):
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._pool, member.write_many, writes)
            done = {owner: outs for owner, outs in results.items() if not isinstance(outs, Exception)}
            return done, {owner: err for owner, err in results.items() if isinstance(err, Exception)}

        create = self._creator(moving)

        def one(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
            result = create(dict(new)) if old is None else member.update("", dict(old), dict(new))
            return dict(result.outs or {})

        calls = {owner: functools.partial(one, old, new) for owner, (old, new) in writes.items()}
        return await self._each(calls)

    def _split(self, props: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        try:
            return b.split(self._kind, props)
        except b.BucketError as err:
            raise providers.ProviderError(f"{self._kind.store}: {err}") from err

    def check(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Each tenant's own check, its failures' properties under ``tenants.<subdomain>`` (a removal guard's,
        which names no property so that the engine does not print a whole value, stays without one)."""
        old_tenants, failures = self._split(olds), []
        for owner, props in self._split(news).items():
            result = self._member.check(old_tenants.get(owner, {}), props)
            for failure in result.failures or []:
                where = f"{path(c.TENANTS, owner)}.{failure.property}" if failure.property else ""
                failures.append((where, failure.reason))
        return failures

    def diff(self, state: Mapping[str, Any], old_inputs: Mapping[str, Any], news: Mapping[str, Any]) -> BucketDiff:
        """Changed iff some tenant's own diff says so, or a tenant was added or removed, or a bucket-wide
        property changed (which replaces the bucket). ``state`` are the old outputs, ``old_inputs`` the old
        inputs. Whether a tenant changes is its own provider's diff (its fingerprints against what the store held
        at the last write or refresh); its path ``tenants.<subdomain>`` has the engine show its old inputs against
        the new ones when those changed, else its recorded outputs (so drift shows under the key it hit)."""
        kind = self._kind
        replaces = [name for name in kind.shared if state.get(name) != news.get(name)]
        detailed = {name: PropertyChange("update", True, True) for name in replaces}
        old_outputs, old_entries, new_entries = b.entries(state), b.entries(old_inputs), b.entries(news)
        olds, new_tenants = self._split(state), self._split(news)
        for owner in sorted({*old_outputs, *new_entries}):
            where = path(c.TENANTS, owner)
            if owner not in old_outputs or owner not in new_entries:
                detailed[where] = PropertyChange("add" if owner in new_entries else "delete", bool(replaces), True)
                continue
            verdict = self._member.diff("", olds[owner], new_tenants[owner])
            own = [name for name in verdict.replaces or [] if name not in kind.shared]
            if own:
                raise providers.ProviderError(
                    f"{owner}, {kind.store}: {', '.join(own)} changed, which replaces the tenant's store entry, and a "
                    "tenant inside a bucket is never replaced alone; restore the old value"
                )
            if verdict.changes is False:
                continue
            # declared inputs changed: the engine shows the old entry against the new one, the changed keys in it;
            # else the store differs from them (drift found by a refresh, a failed write, unbound rows): the engine
            # shows what was recorded against what is declared, the drifted keys in it
            declared = old_entries.get(owner) != new_entries[owner]
            detailed[where] = PropertyChange("update", bool(replaces), declared)
        return BucketDiff(bool(detailed), replaces, detailed)

    async def create(self, urn: str, props: Mapping[str, Any], *, moving: bool = False) -> tuple[str, dict[str, Any]]:
        """Every tenant's create (or adoption, ``moving``), at once; a failed tenant is left out of the outputs
        (:class:`PartialFailure`)."""
        shared, resource_id = b.shared_of(self._kind, props), bucket_id(urn)
        done, failed = await self._write(
            {owner: (None, tenant) for owner, tenant in self._split(props).items()}, moving=moving
        )
        outputs = b.join(self._kind, done, shared)
        if failed:
            raise PartialFailure(resource_id, outputs, [self._reason(o, e) for o, e in sorted(failed.items())])
        return resource_id, outputs

    async def update(
        self,
        urn: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        judge: Judge,
        *,
        moving: bool = False,
        retains: Callable[[], bool] = lambda: False,
    ) -> dict[str, Any]:
        """The tenants whose own diff says so, or that are new (adopted, ``moving``), written at once; a tenant
        gone from the bucket deleted if ``judge`` lets it, or forgotten if it moved or the stack ``retains``
        (`retainOnDelete`: the engine never deletes a retained tenant's own resource either; a decommission
        has emptied it already); the others' outputs kept as recorded. A failed tenant keeps its old outputs
        (:class:`PartialFailure`)."""
        kind = self._kind
        old_tenants, new_tenants = self._split(olds), self._split(news)
        outputs = dict(old_tenants)
        writes: dict[str, Write] = {}
        for owner, tenant in new_tenants.items():
            old = old_tenants.get(owner)
            if old is None or self._member.diff("", old, tenant).changes is not False:
                writes[owner] = (old, tenant)
        reasons: dict[str, str] = {}
        deletes: dict[str, Callable[[], Any]] = {}
        gone = [owner for owner in old_tenants if owner not in new_tenants]
        if gone and retains():
            for owner in gone:
                outputs.pop(owner)
            gone = []
        for owner in gone:
            old = old_tenants[owner]
            verdict = judge(owner, old)
            if verdict.action == "refuse":
                reasons[owner] = verdict.reason
            elif verdict.action == "forget":
                outputs.pop(owner)
            else:
                deletes[owner] = functools.partial(self._member.delete, "", old)
        (written, write_failed), (deleted, delete_failed) = await asyncio.gather(
            self._write(writes, moving=moving), self._each(deletes)
        )
        outputs |= written
        for owner in deleted:
            outputs.pop(owner, None)
        failed = write_failed | delete_failed
        reasons |= {owner: self._reason(owner, err) for owner, err in failed.items()}
        recorded = b.join(kind, outputs, b.shared_of(kind, news))
        if reasons:
            raise PartialFailure(bucket_id(urn), recorded, [reasons[owner] for owner in sorted(reasons)])
        return recorded

    async def read(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """`pulumi refresh`: each tenant's own read, at once."""
        shared = b.shared_of(self._kind, props)
        calls = {
            owner: functools.partial(self._member.read, "", tenant) for owner, tenant in self._split(props).items()
        }
        done, failed = await self._each(calls)
        if failed:
            raise providers.ProviderError("\n".join(self._reason(o, e) for o, e in sorted(failed.items())))
        return b.join(self._kind, {owner: dict(result.outs or {}) for owner, result in done.items()}, shared)

    async def delete(self, props: Mapping[str, Any], judge: Judge) -> None:
        """Every tenant's own delete, at once, once the guard lets each of them (nothing is deleted otherwise); a
        tenant another resource of the run holds now is forgotten, nothing of it deleted."""
        tenants = self._split(props)
        verdicts = {owner: judge(owner, tenant) for owner, tenant in sorted(tenants.items())}
        refused = [verdict.reason for verdict in verdicts.values() if verdict.action == "refuse"]
        if refused:
            raise providers.ProviderError("\n".join(refused))
        calls = {
            owner: functools.partial(self._member.delete, "", tenant)
            for owner, tenant in tenants.items()
            if verdicts[owner].action == "delete"
        }
        _, failed = await self._each(calls)
        if failed:
            raise providers.ProviderError("\n".join(self._reason(o, e) for o, e in sorted(failed.items())))
