"""The tenant-secrets provider plugin: the one provider of every resource of a stack.

The engine starts it as `pulumi-resource-tenant-secrets` (`provider/`, named in Pulumi.yaml under
`plugins: providers:`) and calls it over gRPC, served by the SDK's `pulumi.provider.experimental`
(docs/decisions/0039-provider-plugin.md). It adapts the providers of `components/providers.py`, one per
resource type, which keep the interface they were written for (the dynamic-provider host, which still
serves a resource of a state from before if it is deleted before the program declares it again):

- Properties: the engine's property values become plain values and back (no value is a secret:
  docs/decisions/0034-write-only-values.md).
- `diff`: the type's provider decides whether the resource changes and what replaces it;
  `tenant_secrets/engine/property_diff.py` names what changed, key by key, drift included.
- Concurrency: the framework runs each call as a coroutine on one event loop; a call that writes or reads
  a store runs in a thread. Infisical's calls get a pool as wide as the engine's `--parallel` may ask for,
  so that the folder writes in flight share batch upserts (decision 0037); the database's a pool of
  four threads, each with its connection, as under the dynamic-provider host. `check` and `diff` need
  no store and run on the loop.
- Deletes: a tenant's folder or rows are deleted only when the provider was told to
  (`tenant_secrets/engine/deletes.py`): `check` records what the program declares, `delete` refuses the rest,
  and forgets (deletes nothing) an entry another resource of the run holds now, or that `tenantctl reshard`
  moved to another stack (one `info` line each under its bucket in the run's output).
- Moves between layouts (docs/decisions/0053-tenants-per-resource.md): the stack's provider carries the bucket
  count as an input, so `check_config` sees the last run's (the old inputs, from the state) and this run's.
  When they differ, the creates of tenants' store entries adopt them (`InfisicalFolderProvider.adopt`); so do
  they in the first `up` after `tenantctl reshard` moved tenants into a stack with buckets (its provider's
  recorded inputs name them: `tenant_secrets/stack/reshard_marker.py` ARRIVALS).
- A stack whose state holds the unfinished-reshard marker is refused in `check_config` and `configure`
  (`tenant_secrets/stack/reshard_marker.py`), before any resource is checked.
- Errors: an error of ours (`providers.ProviderError`) is reported as its one line; anything else is a
  bug and keeps its traceback. `TENANT_SECRETS_DEBUG=1` shows every traceback.
- Lifetime: the plugin ends as soon as the engine that started it is gone (`components/lifetime.py`), so
  a SIGKILLed `pulumi` leaves no writer behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import functools
import os
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
import grpc.aio
from pulumi.dynamic import ResourceProvider
from pulumi.provider.experimental import provider as p
from pulumi.provider.experimental.property_value import Computed, PropertyValue
from pulumi.provider.experimental.server import ProviderServicer
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, provider_pb2, provider_pb2_grpc, status_pb2

from components import lifetime, providers
from components.buckets import BucketProvider, Judge, PartialFailure
from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c
from tenant_secrets.engine import deletes, verbose_logs
from tenant_secrets.engine.property_diff import PropertyChange, detailed_diff
from tenant_secrets.stack import reshard_marker

VERSION = "0.1.0"
THREADS_VAR = "TENANT_SECRETS_PROVIDER_THREADS"
"""Infisical calls at once (default 64): at least the `--parallel` the deploy runs `pulumi up` with."""
DATABASE_THREADS = 4
"""Database calls at once: one connection each, per stack (16 shards applied at once hold 64)."""
QUIET = 10.0
"""Seconds without a `Check` after which a bucket waiting for another bucket's `Check` stops waiting."""

_STORES: dict[str, str | None] = {
    c.INFISICAL_FOLDER: "infisical",
    c.MASTER_KEY_PUBLICATION: "infisical",
    c.DATABASE_SCHEMA: "database",
    c.DATABASE_TENANT: "database",
    c.REGISTRY: None,
    c.INFISICAL_BUCKET: "infisical",
    c.DATABASE_BUCKET: "database",
}
"""Type name -> the pool its writes and reads run in (None: on the loop; the registry touches no store)."""
_PROVIDERS: dict[str, Callable[[], ResourceProvider]] = {
    c.INFISICAL_FOLDER: providers.InfisicalFolderProvider,
    c.MASTER_KEY_PUBLICATION: providers.MasterKeyProvider,
    c.DATABASE_SCHEMA: providers.DatabaseSchemaProvider,
    c.DATABASE_TENANT: providers.DatabaseTenantProvider,
    c.REGISTRY: providers.RegistryProvider,
}
_KINDS = {
    ("add", False): p.PropertyDiffKind.ADD,
    ("add", True): p.PropertyDiffKind.ADD_REPLACE,
    ("update", False): p.PropertyDiffKind.UPDATE,
    ("update", True): p.PropertyDiffKind.UPDATE_REPLACE,
    ("delete", False): p.PropertyDiffKind.DELETE,
    ("delete", True): p.PropertyDiffKind.DELETE_REPLACE,
}
_OLD_INPUTS: contextvars.ContextVar[dict[str, PropertyValue]] = contextvars.ContextVar("old_inputs")
"""The old inputs of the resource a `Diff` call is about: the framework's request leaves them out."""
_T = TypeVar("_T")
_E = TypeVar("_E", bound=BaseException)


def plain(value: PropertyValue) -> Any:
    """The Python value of a property value (an unknown, which no input of ours is, as None)."""
    inner = value.value
    if isinstance(inner, Mapping):
        return {key: plain(item) for key, item in inner.items()}
    if isinstance(inner, Sequence) and not isinstance(inner, str):
        return [plain(item) for item in inner]
    return None if isinstance(inner, Computed) else inner


def plain_map(props: Mapping[str, PropertyValue]) -> dict[str, Any]:
    return {key: plain(value) for key, value in props.items()}


def wrap(value: Any) -> PropertyValue:
    """A plain value (a provider's output) as a property value; numbers are floats on the wire."""
    if isinstance(value, Mapping):
        return PropertyValue({str(key): wrap(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return PropertyValue([wrap(item) for item in value])
    if isinstance(value, int) and not isinstance(value, bool):
        return PropertyValue(float(value))
    return PropertyValue(value)


def wrap_map(props: Mapping[str, Any]) -> dict[str, PropertyValue]:
    return {key: wrap(value) for key, value in props.items()}


def _property_diff(change: PropertyChange) -> p.PropertyDiff:
    return p.PropertyDiff(_KINDS[change.kind, change.replace], input_diff=change.input_diff)


class TenantSecretsProvider(p.Provider):
    """Every resource type of `tenant_secrets/engine/contract.py`, served by its provider of
    `components/providers.py`."""

    def __init__(self, engine: str | None = None) -> None:
        self._engine = engine
        """The engine's address, to show a line under a resource in the run's output (None: not shown)."""
        self._providers = {name: make() for name, make in _PROVIDERS.items()}
        self._pools = {
            "infisical": ThreadPoolExecutor(int(os.environ.get(THREADS_VAR) or 64), "infisical"),
            "database": ThreadPoolExecutor(DATABASE_THREADS, "database"),
        }
        self._buckets = {
            name: BucketProvider(kind, self._providers[kind.member_type], self._pools[kind.store])
            for name, kind in b.KINDS.items()
        }
        self._run_declarations = deletes.RunDeclarations()
        self._moving = False
        """Whether this run moves tenants' store entries into the stack's resources (its bucket count changed, or a
        reshard moved tenants in): their creates adopt."""
        self._count: int | None = None
        """The stack's bucket count in this run (the provider's input), None without buckets."""
        self._last_check = 0.0
        """When the last `Check` of this run arrived (the event loop's clock)."""

    def _bucket(self, urn: str) -> BucketProvider | None:
        """The bucket provider of a bucket's URN (tenant_secrets/engine/buckets.py); None for another type."""
        return self._buckets.get(c.urn_type_name(urn))

    def _judge(self, urn: str, name: str, *, each: bool, told: list[str]) -> Judge:
        """The delete guard of one tenant of a bucket, judged as its own resource's delete would be. ``each``:
        a tenant gone from a bucket that stays (its own pseudo-URN, never declared), not the bucket's delete
        (whose URN is the bucket's: declared when the plan replaces the bucket). The line of each entry forgotten
        because `tenantctl reshard` moved it to another stack is added to ``told``, to show in the run's output."""
        member = b.KINDS[name].member_type

        def judge(owner: str, props: Mapping[str, Any]) -> deletes.Verdict:
            where = f"{urn}/{owner}" if each else urn
            destroying = _engine_destroys()
            verdict = deletes.judge(where, member, props, self._run_declarations, destroying=destroying)
            if verdict.action == "forget" and props.get(c.MOVED_TO):
                told.append(verdict.reason)
            return verdict

        return judge

    async def _tell(self, urn: str, lines: Sequence[str]) -> None:
        """Each line as an `info` under the resource in the run's output (the engine's `Log`)."""
        if not self._engine or not lines:
            return
        async with grpc.aio.insecure_channel(self._engine) as channel:
            engine = engine_pb2_grpc.EngineStub(channel)
            for line in lines:
                await engine.Log(engine_pb2.LogRequest(severity=engine_pb2.INFO, message=line, urn=urn))

    def _provider(self, urn: str) -> tuple[str, ResourceProvider]:
        name = c.urn_type_name(urn)
        if name not in self._providers:
            raise providers.ProviderError(f"{urn}: not a resource type of tenant-secrets")
        return name, self._providers[name]

    async def _run(self, name: str, call: Callable[..., _T], *args: Any) -> _T:
        store = _STORES[name]
        if store is None:
            return call(*args)
        return await asyncio.get_running_loop().run_in_executor(self._pools[store], call, *args)

    async def check_config(self, request: p.CheckRequest) -> p.CheckResponse:
        """An `up` or a `preview`: refused while the state's provider (the old inputs) holds the unfinished-reshard
        marker, which the program never declares."""
        _refuse_unfinished_reshard(request.new_inputs, request.old_inputs)
        self._moving = moves_layout(plain_map(request.old_inputs), plain_map(request.new_inputs))
        return p.CheckResponse(inputs=request.new_inputs)

    async def configure(self, request: p.ConfigureRequest) -> p.ConfigureResponse:
        """The provider's one input is the stack's name; the settings are read from its config on first use.
        A provider configured from the state (a `refresh`, a `destroy`) is refused while it holds the
        unfinished-reshard marker."""
        stack = request.args.get(c.PROVIDER_STACK)
        if stack is None or not isinstance(stack.value, str):
            raise providers.ProviderError(
                "the tenant-secrets provider was not given its stack: every resource must use the stack's "
                "explicit provider (components/resources.py stack_provider), never a default one"
            )
        _refuse_unfinished_reshard(request.args, request.args)
        count = request.args.get(c.PROVIDER_BUCKETS)
        self._count = int(str(count.value)) if count is not None and count.value else None
        for provider in self._providers.values():
            if isinstance(provider, providers.StackConfigured):
                provider.use_stack(stack.value)
        return p.ConfigureResponse(accept_secrets=True, supports_preview=False)

    async def diff_config(self, request: p.DiffRequest) -> p.DiffResponse:
        """The stack's name never replaces a resource; nor does a move from the dynamic provider (0039)."""
        return p.DiffResponse(changes=False)

    async def check(self, request: p.CheckRequest) -> p.CheckResponse:
        self._last_check = asyncio.get_running_loop().time()
        news = plain_map(request.new_inputs)
        bucket = self._bucket(request.urn)
        if bucket is not None:
            self._run_declarations.saw(request.urn, c.urn_type_name(request.urn), news)
            found = bucket.check(plain_map(request.old_inputs), news)
            return p.CheckResponse(inputs=request.new_inputs, failures=[p.CheckFailure(*f) for f in found])
        name, provider = self._provider(request.urn)
        self._run_declarations.saw(request.urn, name, news)
        result = provider.check(plain_map(request.old_inputs), news)
        failures = [p.CheckFailure(f.property, f.reason) for f in result.failures or []]
        # the providers' checks refuse, never rewrite, an input: the engine's own values go back as they came
        return p.CheckResponse(inputs=request.new_inputs, failures=failures)

    async def diff(self, request: p.DiffRequest) -> p.DiffResponse:
        olds, news = plain_map(request.old_state), plain_map(request.new_inputs)
        bucket = self._bucket(request.urn)
        if bucket is not None:
            found = bucket.diff(olds, plain_map(_OLD_INPUTS.get({})), news)
            if not found.changes:
                return p.DiffResponse(changes=False)
            return p.DiffResponse(
                changes=True,
                replaces=found.replaces,
                delete_before_replace=bool(found.replaces),
                diffs=sorted({path.split(".", 1)[0].split("[", 1)[0] for path in found.detailed}),
                detailed_diff={path: _property_diff(change) for path, change in found.detailed.items()},
            )
        _, provider = self._provider(request.urn)
        verdict = provider.diff(request.resource_id, olds, news)
        if verdict.changes is False:
            return p.DiffResponse(changes=False)
        replaces = list(verdict.replaces or [])
        recorded = {c.RECORDED_FINGERPRINTS: olds[c.RECORDED_FINGERPRINTS]} if c.RECORDED_FINGERPRINTS in olds else {}
        changes = detailed_diff(plain_map(_OLD_INPUTS.get({})), news, recorded=recorded, replaces=replaces)
        return p.DiffResponse(
            changes=True,
            replaces=replaces,
            delete_before_replace=bool(verdict.delete_before_replace),
            diffs=sorted({path.split(".", 1)[0].split("[", 1)[0] for path in changes}),
            detailed_diff={path: _property_diff(change) for path, change in changes.items()},
        )

    async def create(self, request: p.CreateRequest) -> p.CreateResponse:
        bucket = self._bucket(request.urn)
        if bucket is not None:
            props = plain_map(request.properties)
            resource_id, outs = await bucket.create(request.urn, props, moving=self._moving)
            return p.CreateResponse(resource_id=resource_id, properties=wrap_map(outs))
        name, provider = self._provider(request.urn)
        adopt = getattr(provider, "adopt", None) if self._moving else None
        result = await self._run(name, adopt or provider.create, plain_map(request.properties))
        return p.CreateResponse(resource_id=str(result.id), properties=wrap_map(result.outs or {}))

    async def update(self, request: p.UpdateRequest) -> p.UpdateResponse:
        olds, news = plain_map(request.olds), plain_map(request.news)
        bucket = self._bucket(request.urn)
        if bucket is not None:
            name, told = c.urn_type_name(request.urn), list[str]()
            judge = self._judge(request.urn, name, each=True, told=told)
            member = self._providers[b.KINDS[name].member_type]
            retains = member.retains_on_delete if isinstance(member, providers.StackConfigured) else lambda: False
            await self._await_new_buckets(request.urn, olds, news)
            try:
                outs = await bucket.update(request.urn, olds, news, judge, moving=self._moving, retains=retains)
            finally:
                await self._tell(request.urn, told)
            return p.UpdateResponse(properties=wrap_map(outs))
        name, provider = self._provider(request.urn)
        result = await self._run(name, provider.update, request.resource_id, olds, news)
        return p.UpdateResponse(properties=wrap_map(result.outs or {}))

    async def _await_new_buckets(self, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> None:
        """Before a bucket judges the tenants that left it: wait until the program's `Check` of each one's bucket
        under this run's count has arrived, when that is another bucket (a bucket count change), so that the
        delete guard sees it holding the tenant and forgets it instead of deleting it. The engine may update
        this bucket before it has checked a bucket the program declares later; it checks every resource before
        it deletes any, but a tenant leaving a bucket is judged in the bucket's update. The wait ends at that
        `Check`, or once no `Check` has arrived for :data:`QUIET` seconds (the program declared everything:
        then no resource of this run holds the tenant in this store, and it is judged as ever)."""
        if not self._count:
            return
        kind = b.KINDS[c.urn_type_name(urn)]
        prefix, name = urn.rsplit("::", 1)
        waiting = {
            f"{prefix}::{home}"
            for owner in set(b.entries(olds)) - set(b.entries(news))
            if (home := b.resource_name(b.bucket_of(owner, self._count), kind.store)) != name
        }
        loop = asyncio.get_running_loop()
        while waiting - self._run_declarations.checked and loop.time() - self._last_check < QUIET:
            await asyncio.sleep(0.05)

    async def read(self, request: p.ReadRequest) -> p.ReadResponse:
        """`pulumi refresh`: what the store holds now, recorded as outputs; the inputs stay the program's."""
        bucket = self._bucket(request.urn)
        if bucket is not None:
            outs = await bucket.read(plain_map(request.properties))
            return p.ReadResponse(resource_id=request.resource_id, properties=wrap_map(outs), inputs=request.inputs)
        name, provider = self._provider(request.urn)
        result = await self._run(name, provider.read, request.resource_id, plain_map(request.properties))
        return p.ReadResponse(resource_id=result.id, properties=wrap_map(result.outs or {}), inputs=request.inputs)

    async def delete(self, request: p.DeleteRequest) -> None:
        """Only a delete the provider was told to make (`tenant_secrets/engine/deletes.py`); else one line. An
        entry another resource of this run holds now is forgotten: the engine drops the resource, nothing is
        deleted. A bucket's delete is judged tenant by tenant."""
        bucket = self._bucket(request.urn)
        if bucket is not None:
            name, told = c.urn_type_name(request.urn), list[str]()
            try:
                judge = self._judge(request.urn, name, each=False, told=told)
                await bucket.delete(plain_map(request.properties), judge)
            finally:
                await self._tell(request.urn, told)
            return
        name, provider = self._provider(request.urn)
        props = plain_map(request.properties)
        verdict = deletes.judge(request.urn, name, props, self._run_declarations, destroying=_engine_destroys())
        if verdict.action == "refuse":
            raise providers.ProviderError(verdict.reason)
        if verdict.action == "delete":
            await self._run(name, provider.delete, request.resource_id, props)


def moves_layout(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a run moves tenants' store entries into the stack's resources: its provider's old inputs (from the
    state; none for a new stack) name another bucket count (absent: one resource per tenant) than this run's, or
    hold the tenants a reshard moved into this stack (`tenant_secrets/stack/reshard_marker.py` ARRIVALS)."""
    if not old.get(c.PROVIDER_STACK):
        return False
    if reshard_marker.arrivals(old):
        return True
    return str(old.get(c.PROVIDER_BUCKETS) or "") != str(new.get(c.PROVIDER_BUCKETS) or "")


@functools.cache
def _engine_destroys() -> bool:
    """Whether the engine that started this process is `pulumi destroy`: read once (about 1.4 ms of /proc)."""
    return deletes.is_destroy(verbose_logs.ancestor_command_lines())


def _refuse_unfinished_reshard(inputs: Mapping[str, PropertyValue], held: Mapping[str, PropertyValue]) -> None:
    """Raise the marker's one line when ``held`` (the provider's inputs as the state has them) holds it."""
    stack = inputs.get(c.PROVIDER_STACK)
    refused = reshard_marker.refusal(str(plain(stack)) if stack is not None else "", plain_map(held))
    if refused:
        raise providers.ProviderError(refused)


def _behind(err: BaseException, kind: type[_E]) -> _E | None:
    """Our error of ``kind`` behind the framework's (it re-raises every error with its traceback in the
    message), or None."""
    seen: BaseException | None = err
    while seen is not None and not isinstance(seen, kind):
        seen = seen.__cause__ or seen.__context__
    return seen


def partial_failure_status(failure: PartialFailure) -> grpc.Status:
    """The engine's partial failure (`pulumirpc.ErrorResourceInitFailed` in the status details): it records
    ``failure.outputs`` as the resource's outputs, and the reasons, one line per failed tenant, as its errors.
    The SDK's provider framework has no way to say it; the protocol does."""
    code = grpc.StatusCode.UNKNOWN
    message = "\n".join(failure.reasons)
    detail = provider_pb2.ErrorResourceInitFailed(
        id=failure.resource_id, properties=PropertyValue.marshal_map(wrap_map(failure.outputs)), reasons=failure.reasons
    )
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(detail)
    aborted = grpc.Status()  # an interface: its fields are set, as the SDK's own server does
    aborted.code, aborted.details = code, message
    aborted.trailing_metadata = (("grpc-status-details-bin", status.SerializeToString()),)
    return aborted


async def _reported(call: Awaitable[_T], context: grpc.aio.ServicerContext[Any, Any]) -> _T:
    try:
        return await call
    except Exception as err:
        partial = _behind(err, PartialFailure)
        if partial is not None:
            await context.abort_with_status(partial_failure_status(partial))
            raise  # abort raises; this line is never reached
        if providers.debug():  # the whole traceback of the error behind the framework's
            original = err.__context__ or err
            await context.abort(grpc.StatusCode.UNKNOWN, "".join(traceback.format_exception(original)))
        problem = _behind(err, providers.ProviderError)
        if problem is None:
            raise
        await context.abort(grpc.StatusCode.UNKNOWN, str(problem))
        raise  # abort raises; this line is never reached


class _Servicer(ProviderServicer):
    """The SDK's servicer, giving `diff` the old inputs and reporting our errors as their one line."""

    async def CheckConfig(self, request: Any, context: Any) -> Any:
        return await _reported(super().CheckConfig(request, context), context)

    async def Configure(self, request: Any, context: Any) -> Any:
        return await _reported(super().Configure(request, context), context)

    async def Check(self, request: Any, context: Any) -> Any:
        return await _reported(super().Check(request, context), context)

    async def Diff(self, request: Any, context: Any) -> Any:
        _OLD_INPUTS.set(PropertyValue.unmarshal_map(request.old_inputs))
        return await _reported(super().Diff(request, context), context)

    async def Create(self, request: Any, context: Any) -> Any:
        return await _reported(super().Create(request, context), context)

    async def Update(self, request: Any, context: Any) -> Any:
        return await _reported(super().Update(request, context), context)

    async def Read(self, request: Any, context: Any) -> Any:
        return await _reported(super().Read(request, context), context)

    async def Delete(self, request: Any, context: Any) -> Any:
        return await _reported(super().Delete(request, context), context)


def main() -> None:
    """Serve on a free local port and tell the engine which (the first line of stdout), as plugins do."""
    parser = argparse.ArgumentParser(description="the tenant-secrets provider plugin (started by the engine)")
    parser.add_argument("engine", help="the engine's address")
    args, _ = parser.parse_known_args()
    lifetime.exit_with_parent()

    async def serve() -> None:
        server = grpc.aio.server()
        servicer = _Servicer([], VERSION, TenantSecretsProvider(args.engine), engine_address=args.engine)
        provider_pb2_grpc.add_ResourceProviderServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(port, flush=True)
        await server.wait_for_termination()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
