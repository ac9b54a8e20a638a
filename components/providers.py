"""Dynamic providers: the Pulumi engine calls these in a separate provider process.

Python dynamic providers are pickled into the state (`__provider`), so these classes hold no
fields when pickled: connection settings come from the environment of the process that runs
`pulumi up` (DATABASE_URL, INFISICAL_*), read at call time; what is the same for the whole stack (the
master keys, the fingerprint key, the store's settings) from the stack's config, which the engine hands
every dynamic provider's `configure` in the provider process, after unpickling. No value to write is
an input: the providers resolve each from the source descriptor their inputs record, from the same
sources the program read, and write only values whose fingerprints are the plan's
(tenant_secrets/engine/resolve_at_write.py, docs/decisions/0034-write-only-values.md). Clients (one Infisical
client and one database connection per provider thread) are made there, on first use, because the
methods run in another process than the program that declared the resources.

Errors: the engine prints whatever the provider host reports for an exception, and the host reports
`traceback.format_exc()`: twenty frames before our message. Every provider method is wrapped
(`_one_line_errors`) so that an error of ours (Infisical, the store, the keyring, the stack's settings)
becomes one `ProviderError` line naming the owner and store, and the host reports that line alone;
`TENANT_SECRETS_DEBUG=1` shows the full traceback. Anything else keeps its traceback: it is a bug
(docs/decisions/0025-first-week.md).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import traceback
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from tenant_secrets import store
from tenant_secrets.engine import contract as c
from tenant_secrets.engine import reconcile
from tenant_secrets.engine.resolve_at_write import StaleValueError, TenantsFileLiterals, WriteTimeValues, config_lookup
from tenant_secrets.secret import keyfolder
from tenant_secrets.secret.envelope import EnvelopeError, Keyring, KeyringError, MasterKeyError
from tenant_secrets.secret.values import Resolver, UnresolvedValueError, fingerprint
from tenant_secrets.stack.config import StackConfig, StackConfigUnavailableError, read_stack_config
from tenant_secrets.stack.settings import NAMESPACE, StackConfigError, StackSettings
from tenant_secrets.tenants_file.names import TENANTS_FOLDER
from tenant_secrets.tenants_file.source_policy import ENV_ALLOW, SHARED_FOLDERS, own_folder
from tenant_secrets.tenants_file.sources import DescriptorError

if TYPE_CHECKING:
    from tenant_secrets.infisical import InfisicalClient

DEBUG_VAR = "TENANT_SECRETS_DEBUG"
_local = threading.local()
_keyrings: dict[tuple[str, str], Keyring] = {}
_keyrings_lock = threading.Lock()
_stack_configs: dict[str, StackConfig] = {}
_stack_configs_lock = threading.Lock()
_secrets_lookup = functools.lru_cache(maxsize=2)(config_lookup)
"""The stack's `secrets` config, parsed once per provider process rather than once per resource."""
_literals = functools.lru_cache(maxsize=2)(TenantsFileLiterals)
"""tenants.yaml's literals, one reader per file, environment and region in the provider process."""


class ProviderError(Exception):
    """A provider call failed for a reason the user can act on. Its message is the whole report: one line,
    naming the owner and store, what failed and what to do; never a value."""


def debug() -> bool:
    return os.environ.get(DEBUG_VAR, "") not in ("", "0", "false")


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Our own errors: each message already says what failed and what to do, without a value."""
    errors: tuple[type[BaseException], ...] = (
        store.StoreError,
        KeyringError,
        EnvelopeError,
        MasterKeyError,
        keyfolder.KeyFolderError,
        StackConfigError,
        StackConfigUnavailableError,
        UnresolvedValueError,
        StaleValueError,
        DescriptorError,
    )
    infisical = sys.modules.get("tenant_secrets.infisical")  # loaded when a call to Infisical failed
    return (*errors, infisical.InfisicalError) if infisical is not None else errors


_P = TypeVar("_P", bound=type[ResourceProvider])
_METHODS = ("check", "diff", "create", "update", "read", "delete")


def _one_line_errors(store_name: str) -> Callable[[_P], _P]:
    """Class decorator: the provider's methods report our errors as one ProviderError line,
    ``<owner>, <store>: <message>``, chained to the original (shown with TENANT_SECRETS_DEBUG=1)."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(self: ResourceProvider, *args: Any) -> Any:
            try:
                return method(self, *args)
            except ProviderError:
                raise
            except _expected_errors() as err:
                props = args[-1] if args and isinstance(args[-1], Mapping) else {}
                owner = str(props.get(c.OWNER) or "")
                text = " ".join(line.strip(" -") for line in str(err).splitlines() if line.strip())
                text = text.removeprefix(f"{owner}: ") if owner else text
                where = f"{owner}, {store_name}" if owner else store_name
                raise ProviderError(f"{where}: {text}") from err

        return wrapper

    def decorate(cls: _P) -> _P:
        for name in _METHODS:
            if name in vars(cls):
                setattr(cls, name, wrap(vars(cls)[name]))
        return cls

    return decorate


class _HostTraceback:
    """Stands in for the `traceback` module in the dynamic-provider host (`pulumi.dynamic.__main__`), whose
    methods report `traceback.format_exc()` to the engine: for a ProviderError that is its one line (the
    traceback with TENANT_SECRETS_DEBUG=1); for anything else, the traceback, as before."""

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    @staticmethod
    def format_exc(limit: int | None = None, chain: bool = True) -> str:
        err = sys.exc_info()[1]
        if isinstance(err, ProviderError) and not debug():
            return str(err)
        return traceback.format_exc(limit, chain)


def _install_host_traceback() -> None:
    """In the provider process only: the host runs as `python -m pulumi.dynamic`, so it is `__main__`."""
    for name in ("__main__", "pulumi.dynamic.__main__"):
        host = sys.modules.get(name)
        if hasattr(host, "DynamicResourceProviderServicer") and getattr(host, "traceback", None) is traceback:
            setattr(host, "traceback", _HostTraceback())  # noqa: B010 - a module attribute mypy cannot see


_install_host_traceback()


def _infisical() -> InfisicalClient:
    client: InfisicalClient | None = getattr(_local, "infisical", None)
    if client is None:
        # imported here: the Infisical SDK pulls in boto3 (~0.15 s), and most runs send no request
        from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials  # noqa: PLC0415

        client = InfisicalClient(InfisicalCredentials.from_env())
        _local.infisical = client
    return client


def _stack_config(stack: str) -> StackConfig:
    """The stack's config, decrypted by the CLI: read once per provider process, kept in its memory only."""
    with _stack_configs_lock:
        if stack not in _stack_configs:
            _stack_configs[stack] = read_stack_config(stack)
        return _stack_configs[stack]


def _infisical_source(environment: str, path: str, key: str) -> str | None:
    """A `{from: infisical}` source's value, from the environment's one listing per provider process
    (tenant_secrets/infisical/listing.py); the plan's fingerprint check catches a value changed since."""
    return _infisical().shared_value(environment, path, key)


def _database() -> psycopg.Connection[Any]:
    """One connection per provider thread, reused across calls (the engine calls us concurrently)."""
    conn: psycopg.Connection[Any] | None = getattr(_local, "db", None)
    if conn is None or conn.closed:
        dsn = os.environ.get("DATABASE_URL")
        if not dsn:
            raise ProviderError(
                "DATABASE_URL is not set in the environment of `pulumi up`: export "
                "DATABASE_URL=postgresql://<role>:<password>@<host>:<port>/<database>"
            )
        conn = store.connect(dsn)
        _local.db = conn
    return conn


class StackConfigured(ResourceProvider):
    """A provider that reads the stack's settings from the stack's config.

    The stack's explicit provider (components/resources.py `stack_provider`) hands `configure` the
    stack's name only; the config itself is read on first use, with `pulumi config --json --show-secrets`
    in the provider process (the CLI decrypts it with the stack's own secrets provider), once per
    process, and only by a call that needs a setting: a write, a refresh, a delete; never a diff. A
    resource still on the engine's default provider (a state from before) is configured with the whole
    config, as the engine hands it. Either way the settings are parsed on first use, so a command that
    needs none of them (a `pulumi destroy` of a folder, say) does not fail on a setting it does not use.
    """

    _config: dict[str, str | None] | None = None
    _stack_name: str | None = None
    _settings: StackSettings | None = None
    _environ: dict[str, str] | None = None
    NEEDS: tuple[str, ...] = ()
    """The settings this provider keeps from the config; the rest (tenants' values, keys it has no use
    for) is dropped as it arrives (issue 13, item 10)."""

    def configure(self, req: ConfigureRequest) -> None:
        """As a dynamic provider (a state from before the plugin, still deleting a resource it holds)."""
        # the engine sends every value as the program sees it: a string, objects as JSON
        stack = req.config.get(c.DYNAMIC_PROVIDER_STACK)
        if stack is None:  # the engine's default provider: the whole config
            self._config = {key: req.config.get(f"{NAMESPACE}:{key}") for key in self.NEEDS}
            self._stack_name, self._settings, self._environ = None, None, None
        else:
            self.use_stack(stack)

    def use_stack(self, stack: str) -> None:
        """Read the settings from this stack's config, on first use (the provider plugin's `configure`)."""
        self._stack_name, self._config, self._settings, self._environ = stack, None, None, None

    @property
    def _settings_config(self) -> dict[str, str | None]:
        if self._config is None:
            if self._stack_name is None:
                raise RuntimeError("the provider was not configured")
            config = _stack_config(self._stack_name)
            self._config = {key: config.get(key) for key in self.NEEDS}
        return self._config

    @property
    def _stack(self) -> StackSettings:
        if self._settings is None:
            self._settings = StackSettings.load(self._settings_config.get, stack="")
        return self._settings

    def _fingerprint_key(self) -> bytes:
        return self._stack.fingerprint_key

    def retains_on_delete(self) -> bool:
        """Whether the stack keeps what leaves it (`tenant-secrets:retainOnDelete`, true unless it says false):
        a bucket forgets a tenant gone from it rather than delete its store entry, as the engine retains a
        tenant's own resource (the provider's NEEDS must hold the setting, or it reads as the default)."""
        return self._stack.retain_on_delete

    def _allowed_environ(self) -> dict[str, str]:
        """The environment variables the stack's allow-list opens, taken once per process: the environment does
        not change during a run, and a run of N tenants, each with its own variables, would scan N of them N
        times (10,000 tenants: 10^8 checks)."""
        if self._environ is None:
            self._environ = self._stack.sources.environ(os.environ)
        return self._environ

    def _values(self, props: Mapping[str, Any]) -> dict[str, str]:
        """The owner's values, resolved from their sources now and checked against the plan's fingerprints."""
        stack, config = self._stack, self._settings_config
        literals = _literals(stack.tenants_file, stack.environment, stack.region)
        resolver = Resolver(
            environment=stack.environment,
            derivation_key=stack.derivation_key,
            config=_secrets_lookup(config.get("secrets")),
            environ=self._allowed_environ(),  # the allow-listed variables, nothing else
            infisical=_infisical_source,
        )
        writer = WriteTimeValues(resolver, literals, stack.fingerprint_key, stack.sources)
        owner = props[c.OWNER]
        # an Infisical resource writes its owner's folder; a database resource is a tenant's
        home = props.get(c.PATH) or own_folder(owner, platform=False)
        return writer.resolve(owner, props.get(c.SOURCES) or {}, props.get(c.DECLARED_FINGERPRINTS) or {}, home=home)

    def _keyring(self) -> Keyring:
        """The master keys: the stack's config, or (masterKeySource infisical) the key folder, read once per
        provider process, so a run of many tenants reads it once."""
        stack = self._stack
        if stack.master_key_source == "stack":
            return stack.master_keys
        where = (stack.environment, stack.key_folder)
        with _keyrings_lock:
            if where not in _keyrings:
                _keyrings[where] = stack.load_keyring(lambda env, path: _infisical().list_secrets(env, path))
            return _keyrings[where]

    def _store(self, props: Mapping[str, Any]) -> store.StoreSettings:
        """The store's settings; the table prefix is the resource's own (changing it replaces the resource)."""
        stack = self._stack
        return store.StoreSettings(
            table_prefix=props[c.TABLE_PREFIX],
            create_companies_table=stack.create_companies,
            history_retention=stack.history_retention,
        )


_FINGERPRINTS = ("environment", "masterKeySource", "keyFolder", "derivationKey", "fingerprintKey")
_VALUES = (*_FINGERPRINTS, "secrets", "tenantsFile", "region", ENV_ALLOW, SHARED_FOLDERS)
"""What resolving a value at write time reads: the `secrets` config object, tenants.yaml for a literal (planned
for the stack's region), and what the sources may read (the stack's envAllow and sharedFolders)."""
_MASTER_KEYS = (*_FINGERPRINTS, "masterKeys", "activeKeyVersion")
_STORE = (
    *_MASTER_KEYS,
    "tablePrefix",
    "createCompanies",
    "historyRetention",
    "appRole",
    "provisionerRole",
    "appWriterRole",
    "rotationBatchSize",
)
_ROLE_PASSWORDS = {
    c.APP_ROLE_PASSWORD: "appRolePassword",
    c.PROVISIONER_PASSWORD: "provisionerRolePassword",
    c.WRITER_PASSWORD: "appWriterRolePassword",
}
"""The schema's password fingerprints, and the stack settings holding the passwords."""


def _remove_managed(client: InfisicalClient, props: Mapping[str, Any], keys: list[str], created_folder: bool) -> None:
    """Delete ``keys`` from the folder, or the folder itself when this stack created it and nothing else is
    in it (no other secret, no subfolder): keys and folders added by hand stay (issue 13, item 5)."""
    environment, path = props[c.ENVIRONMENT], props[c.PATH]
    if created_folder:
        held = client.list_secret_keys(environment, path)
        if held is None:  # gone already
            return
        if set(held) <= set(keys) and not client.list_folders(environment, path):
            client.delete_folder(environment, path)
            return
    if keys:
        client.apply_secrets(environment, path, upsert={}, delete=keys)


def _check_failures(failures: list[reconcile.RemovalFailure]) -> list[CheckFailure]:
    return [CheckFailure(f.property, f.reason) for f in failures]


def _diff_result(diff: reconcile.Diff) -> DiffResult:
    return DiffResult(changes=diff.changes, replaces=diff.replaces, delete_before_replace=True)


@_one_line_errors("infisical")
class InfisicalFolderProvider(StackConfigured):
    """One Infisical folder (a tenant's /tenants/<subdomain>, or a platform folder) in one environment.

    Keeps no master key: it needs the fingerprint key, and what resolving a value reads.

    Inputs and outputs: `tenant_secrets/engine/contract.py` (``FOLDER``). The recorded fingerprints (what the
    folder held at the last write or refresh, per key) and the written ones (what the last write wrote)
    differ only after a refresh found drift. Every write first lists the folder and sends only what
    differs (creates and updates in a batch upsert shared with the folder writes in flight, decision 0037),
    so a hand-made folder is adopted and a value that already matches is never rewritten.
    """

    NEEDS = (*_VALUES, "retainOnDelete")  # a bucket forgets, not deletes, a tenant gone on a retaining stack

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Before any diff, in preview too: refuse to drop a key without its decommission marker, and any
        path other than the owner's own folder."""
        return CheckResult(news, _check_failures(reconcile.folder_check(_olds, news)))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Compare fingerprints recorded at the last write (or refresh) with the declared values
        (reconcile.folder_diff)."""
        return _diff_result(reconcile.folder_diff(olds, news))

    def create(self, props: dict[str, Any]) -> CreateResult:
        """First `up` for this folder: make it (mkdir -p) and write what differs; adopts what exists.

        Whether this stack made the folder is recorded (``created_folder``): a folder it did not create is
        never deleted by it."""
        outs = self._write(_infisical(), props, managed=[], created_folder=False, folder_is_new=True)
        return CreateResult(f"{props[c.ENVIRONMENT]}:{props[c.PATH]}", outs)

    def adopt(self, props: dict[str, Any]) -> CreateResult:
        """The create of a run that moves the stack between layouts (docs/decisions/0053-tenants-per-resource.md):
        the folder is expected to exist, held until now by the old layout's resource, which the engine then
        forgets. So the folder is read first (a folder that turns out missing is made) and no create is tried,
        and only what differs is written: nothing, when the values are unchanged.

        A tenant's folder (under /tenants/) adopted here counts as made by this stack: the old resource's
        ``created_folder`` is not known to this one (the engine hands it only to the old resource's delete, after
        this create), and a decommission deletes such a folder only when nothing else is in it (no other secret,
        no subfolder). A platform folder keeps what this write finds."""
        outs = self._write(_infisical(), props, managed=[], created_folder=False)
        if str(props[c.PATH]).startswith(f"/{TENANTS_FOLDER}/"):
            outs[c.CREATED_FOLDER] = True
        return CreateResult(f"{props[c.ENVIRONMENT]}:{props[c.PATH]}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """A declared value changed, a key was added or decommissioned, or a refresh found drift."""
        return UpdateResult(
            self._write(
                _infisical(),
                news,
                managed=sorted(reconcile.tracked_keys(olds)),
                created_folder=bool(olds.get(c.CREATED_FOLDER)),
            )
        )

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """`pulumi refresh`: fingerprint what Infisical holds now, so out-of-band changes show as drift."""
        live = _infisical().shared_folder(props[c.ENVIRONMENT], props[c.PATH])  # one listing per environment
        fp_key = self._fingerprint_key()
        tracked = reconcile.tracked_keys(props)
        fingerprints = {
            key: fingerprint(fp_key, props[c.OWNER], key, live[key]) for key in sorted(tracked) if key in live
        }
        return ReadResult(id_, {**props, c.RECORDED_FINGERPRINTS: fingerprints})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """`pulumi destroy`, or a store dropped from the tenant's storage, on a stack that does not retain:
        the keys this stack wrote go; the folder too if the stack created it and nothing else is left in it.
        The plugin lets through only the deletes it was told to make (tenant_secrets/engine/deletes.py)."""
        managed = sorted(reconcile.tracked_keys(props))
        _remove_managed(_infisical(), props, managed, created_folder=bool(props.get(c.CREATED_FOLDER)))

    def _write(
        self,
        client: InfisicalClient,
        props: Mapping[str, Any],
        *,
        managed: list[str],
        created_folder: bool,
        folder_is_new: bool = False,
    ) -> dict[str, Any]:
        outs = {p: props[p] for p in (c.OWNER, c.ENVIRONMENT, c.PATH, c.DECOMMISSION)}
        if props[c.DECOMMISSION]:
            _remove_managed(client, props, sorted({*managed, *props.get(c.DECOMMISSIONED, [])}), created_folder)
            return {**outs, c.CREATED_FOLDER: created_folder, c.RECORDED_FINGERPRINTS: {}, c.WRITTEN_FINGERPRINTS: {}}
        values = self._values(props)
        # one read of the folder (none when this call made it); creates and updates in a batch shared with
        # the other folder writes in flight in this process; deletes in one batch
        applied = client.apply_folder(
            props[c.ENVIRONMENT],
            props[c.PATH],
            upsert=values,
            delete=list(props.get(c.DECOMMISSIONED, [])),
            folder_is_new=folder_is_new,
        )
        made = applied.folder_created
        if not values:  # apply_secrets makes the folder only when it writes to it
            made = client.ensure_folder(props[c.ENVIRONMENT], props[c.PATH]) or made
        written = dict(props[c.DECLARED_FINGERPRINTS])  # what _values checked the values against
        # a folder made by this stack, now or before, may be deleted by it once nothing else is in it
        return {
            **outs,
            c.CREATED_FOLDER: created_folder or made,
            c.RECORDED_FINGERPRINTS: written,
            c.WRITTEN_FINGERPRINTS: written,
        }


@_one_line_errors("database schema company_secrets")
class DatabaseSchemaProvider(StackConfigured):
    """The company_secrets schema (versioned migrations), the roles, and the master-key version rows are on.

    Tenants' resources depend on this one, so the order of a run is: the keyring checked against what
    is stored (before any write), migrations, roles and grants, re-encryption onto the active key in
    committed batches; then the tenants' rows. A failure here stops the tenants' writes.
    """

    NEEDS = (*_STORE, *_ROLE_PASSWORDS.values())

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Any watched setting changed (contract.TABLES); nothing replaces the schema."""
        return DiffResult(changes=c.TABLES.changed(olds, news), replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        """First `up`: apply the migrations (and roles)."""
        return CreateResult("company_secrets", self._apply(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """New migrations, roles, a new active master key or values left on an old one: re-apply."""
        return UpdateResult(self._apply(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """`pulumi destroy`: the tenants' rows are deleted by their own resources; the schema stays.

        Dropping a table the application reads is never what a destroy of this stack should do.
        """

    def _apply(self, props: Mapping[str, Any]) -> dict[str, Any]:
        settings = self._store(props)
        keyring = self._keyring()
        conn = _database()
        with contextlib.suppress(psycopg.errors.UndefinedTable):  # not migrated yet: nothing is stored
            store.check_keyring(conn, settings, keyring)  # before any write, migrations included
        store.migrate(conn, settings)
        # for writers without the keyring (decision 0049): the version MASTER_ENCRYPTION_KEY holds. A stack that
        # publishes its keys records it where it moves the key (MasterKeyProvider); with keys kept by hand in
        # Infisical, the active version is the one MASTER_ENCRYPTION_KEY holds now.
        by_hand = self._stack.master_key_source == "infisical"
        store.record_key_state(conn, settings, app_key_version=keyring.active if by_hand else None)
        if props.get(c.APP_ROLE):
            passwords = self._role_passwords(props)
            store.ensure_roles(
                conn,
                settings,
                app_role=props[c.APP_ROLE],
                app_password=passwords[c.APP_ROLE_PASSWORD],
                provisioner_role=props.get(c.PROVISIONER_ROLE),
                provisioner_password=passwords[c.PROVISIONER_PASSWORD],
                writer_role=props.get(c.WRITER_ROLE),
                writer_password=passwords[c.WRITER_PASSWORD],
            )
        batch_size = int(props.get(c.ROTATION_BATCH_SIZE) or 500)
        rotated = store.rotate(conn, settings, keyring, batch_size=batch_size)
        bound = store.bind_rows(conn, settings, keyring, batch_size=batch_size)
        return {
            **{p: props.get(p) for p in c.TABLES.watched},
            c.ROTATION_PENDING: False,
            c.BINDINGS_PENDING: False,
            c.ROWS_ROTATED: rotated + bound,
        }

    def _role_passwords(self, props: Mapping[str, Any]) -> dict[str, str | None]:
        """The roles' passwords from the stack's config, each only if its fingerprint is the plan's."""
        config, fp_key = self._settings_config, self._fingerprint_key()
        passwords = {prop: config.get(setting) for prop, setting in _ROLE_PASSWORDS.items()}
        for prop, setting in _ROLE_PASSWORDS.items():
            password = passwords[prop]
            if reconcile.password_fingerprint(fp_key, setting, password) != props.get(prop):
                raise ProviderError(
                    f"{NAMESPACE}:{setting} is not the password the plan was made with (the stack's config changed "
                    "since the preview); run the preview again"
                )
        return passwords


@_one_line_errors("database")
class DatabaseTenantProvider(StackConfigured):
    """One tenant's rows in company_secrets, encrypted with the stack's active master key.

    The program resolves the tenant's company (from tenants.yaml or by subdomain, in one query for
    all tenants) before declaring anything; the lookup here is for the demo, whose first run creates
    the companies, and for a company that appeared between the program's look and the write. A master
    key rotation is not this resource's work: the schema resource re-encrypts every row.
    """

    NEEDS = (*_STORE, "secrets", "tenantsFile", "region", ENV_ALLOW, SHARED_FOLDERS, "retainOnDelete")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Before any diff, in preview too: refuse to drop a key without its decommission marker."""
        return CheckResult(news, _check_failures(reconcile.tenant_rows_check(_olds, news)))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """A key to write or delete, the tenant decommissioned, or its owner or table prefix changed
        (reconcile.tenant_rows_diff)."""
        return _diff_result(reconcile.tenant_rows_diff(olds, news))

    def create(self, props: dict[str, Any]) -> CreateResult:
        """First `up` for this tenant: write its rows (existing equal rows are adopted, not rewritten)."""
        outs = self._write(props, known_company="")
        return CreateResult(f"{outs[c.COMPANY_ID]}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """A value changed, a key was added or decommissioned, or the tenant's company changed."""
        return UpdateResult(self._write(news, known_company=str(olds.get(c.COMPANY_ID) or "")))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """`pulumi refresh`: decrypt what the table holds now for the keys this resource wrote and fingerprint
        them, to show drift; the application's own rows are never decrypted here (decision 0049)."""
        recorded = props.get(c.RECORDED_FINGERPRINTS, {})
        live = store.read_tenant(
            _database(), self._store(props), props[c.COMPANY_ID], self._keyring(), keys=list(recorded)
        )
        fp_key = self._fingerprint_key()
        fingerprints = {
            key: fingerprint(fp_key, props[c.OWNER], key, live[key].value) for key in recorded if key in live
        }
        return ReadResult(id_, {**props, c.RECORDED_FINGERPRINTS: fingerprints})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """`pulumi destroy` on a stack that does not retain: delete the tenant's rows (audit stays). The plugin
        lets through only the deletes it was told to make (tenant_secrets/engine/deletes.py)."""
        self._delete_all(props[c.COMPANY_ID], props, _owned_keys(props))

    def write_many(
        self, writes: Mapping[str, tuple[Mapping[str, Any] | None, Mapping[str, Any]]]
    ) -> dict[str, dict[str, Any] | Exception]:
        """Several tenants' creates (old outputs None) and updates, as `create` and `update` would make them, in
        one `store.apply_tenants` transaction, the companies not given looked up (or made) in one query: the
        statements are one bucket's, not one set per tenant (docs/decisions/0053-tenants-per-resource.md).
        That takes the tenants whose company is found and whose values resolve; a tenant that cannot join it
        (no company, its decommission, a value that does not resolve), and every tenant when the transaction
        fails (it wrote nothing), is written alone by `create` or `update`, so that a failure is that tenant's
        own line. Returns each tenant's new outputs, or the error of its write."""
        given = {
            owner: str(news.get(c.COMPANY_ID) or "") or str((olds or {}).get(c.COMPANY_ID) or "")
            for owner, (olds, news) in writes.items()
            if not news[c.DECOMMISSION]
        }
        try:
            found = self._find_companies(
                {owner: writes[owner][1] for owner, company_id in given.items() if not company_id}
            )
        except _expected_errors():
            found = {}  # each tenant alone says why
        together: dict[str, tuple[Mapping[str, Any], str, dict[str, str]]] = {}
        for owner, known in given.items():
            news, company_id = writes[owner][1], known or found.get(owner, "")
            if not company_id:
                continue
            try:
                together[owner] = (news, company_id, self._values(news))
            except _expected_errors():
                continue  # written alone, whose error says it in one line
        if together:
            settings = self._store(next(iter(together.values()))[0])
            changes = {
                company_id: store.TenantChange(values, list(news.get(c.DECOMMISSIONED, [])))
                for news, company_id, values in together.values()
            }
            try:
                store.apply_tenants(_database(), settings, changes, self._keyring())
            except (store.StoreError, store.KeyringError, psycopg.Error):
                together = {}  # rolled back: each tenant alone finds whose write fails (and says it in its line)
        results: dict[str, dict[str, Any] | Exception] = {
            owner: self._outputs(news, company_id, news[c.DECLARED_FINGERPRINTS])
            for owner, (news, company_id, _) in together.items()
        }
        for owner, (olds, news) in writes.items():
            if owner in results:
                continue
            try:
                result = self.create(dict(news)) if olds is None else self.update("", dict(olds), dict(news))
                results[owner] = dict(result.outs or {})
            except Exception as err:  # each tenant's failure is its own, reported by the bucket
                results[owner] = err
        return results

    def _delete_all(self, company_id: str, props: Mapping[str, Any], keys: Collection[str] | None) -> None:
        """The company's rows of ``keys``, or every row of it when None (the tenant is decommissioned);
        nothing to do when the company itself is gone. On destroy ``keys`` are those tenants.yaml owns: every
        other row of the company belongs to the application and stays (decision 0049)."""
        conn = _database()
        settings, keyring = self._store(props), self._keyring()
        with contextlib.suppress(store.CompanyNotFoundError):  # the company's deletion cascaded to its rows
            chosen = store.stored_keys(conn, settings, company_id) if keys is None else sorted(keys)
            store.apply_tenants(conn, settings, {company_id: store.TenantChange({}, chosen)}, keyring)

    def _company(self, props: Mapping[str, Any], known_company: str) -> str:
        """The tenant's company id: as given (tenants.yaml, or the program's lookup), else as recorded,
        else looked up by subdomain (or, in the demo, created)."""
        company_id = str(props.get(c.COMPANY_ID) or "") or known_company
        if company_id:
            return company_id
        owner = props[c.OWNER]
        ids = self._find_companies({owner: props})
        if owner not in ids:
            raise store.CompanyNotFoundError([owner])
        return ids[owner]

    def _find_companies(self, tenants: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """The company ids of tenants with none given, by subdomain, in one query: looked up, or (the demo)
        created. A tenant whose company does not exist is left out."""
        if not tenants:
            return {}
        conn, settings = _database(), self._store(next(iter(tenants.values())))
        if settings.create_companies_table:
            return store.ensure_companies(
                conn, settings, {owner: (None, props.get(c.COMPANY_NAME)) for owner, props in tenants.items()}
            )
        return store.lookup_companies(conn, settings, list(tenants))

    def _write(self, props: Mapping[str, Any], *, known_company: str) -> dict[str, Any]:
        owner = props[c.OWNER]
        try:
            company_id = self._company(props, known_company)
            if props[c.DECOMMISSION]:
                # the tenant itself goes, reviewed by its marker: every row of its company, the application's too
                self._delete_all(company_id, props, None)
                return self._outputs(props, company_id, {})
            values = self._values(props)
            change = store.TenantChange(values, list(props.get(c.DECOMMISSIONED, [])))
            store.apply_tenants(_database(), self._store(props), {company_id: change}, self._keyring())
        except (store.StoreError, store.KeyringError) as err:
            # the whole apply is one transaction: nothing of this tenant was written
            message = " ".join(line.strip(" -") for line in str(err).splitlines() if line.strip())
            raise ProviderError(f"{owner}, database: {message}; nothing of this tenant was written") from err
        except psycopg.Error as err:
            # the database refused the transaction (a lock timeout, a trigger, a lost connection): its primary
            # message only, which names no value (a DETAIL line may quote a row)
            message = err.diag.message_primary or type(err).__name__
            raise ProviderError(f"{owner}, database: {message}; nothing of this tenant was written") from err
        return self._outputs(props, company_id, props[c.DECLARED_FINGERPRINTS])

    def _outputs(self, props: Mapping[str, Any], company_id: str, written: Mapping[str, str]) -> dict[str, Any]:
        return {
            c.OWNER: props[c.OWNER],
            c.DECOMMISSION: props[c.DECOMMISSION],
            c.COMPANY_ID: company_id,
            c.COMPANY_NAME: props.get(c.COMPANY_NAME),
            c.TABLE_PREFIX: props[c.TABLE_PREFIX],
            c.RECORDED_FINGERPRINTS: dict(written),
        }


def _owned_keys(props: Mapping[str, Any]) -> set[str]:
    """The keys a tenant's rows resource wrote (its recorded fingerprints): the keys tenants.yaml owns."""
    return set(props.get(c.RECORDED_FINGERPRINTS) or {})


@_one_line_errors("infisical key folder")
class MasterKeyProvider(StackConfigured):
    """Master keys published to the application's key folder (masterKeySource stack).

    Inputs and outputs: `tenant_secrets/engine/contract.py` (``PUBLICATION``): the version ``MASTER_ENCRYPTION_KEY``
    holds (or None) and the declared fingerprints, one per published secret (tenant_secrets/secret/keyfolder.py
    names them). The keys themselves are never inputs or outputs: they are read from the stack's config
    here, and written only when their fingerprints match those the plan was made with. Outputs as for a
    folder: the recorded fingerprints and the written ones.
    """

    NEEDS = (*_MASTER_KEYS, "tablePrefix", "historyRetention")

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """A published secret added, changed or withdrawn, or drift found by a refresh
        (reconcile.publication_diff)."""
        return _diff_result(reconcile.publication_diff(olds, news))

    def create(self, props: dict[str, Any]) -> CreateResult:
        """First `up` of a stack with a database store: publish the keys."""
        outs = self._write(props, withdraw=[])
        role = "current" if props.get(c.CURRENT) else "versions"
        return CreateResult(f"{props[c.ENVIRONMENT]}:{props[c.PATH]}#{role}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """A version published or withdrawn, or MASTER_ENCRYPTION_KEY moved to the active version."""
        return UpdateResult(self._write(news, withdraw=reconcile.withdrawn(olds, news)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """`pulumi refresh`: fingerprint what the key folder holds now, so a key changed by hand shows."""
        live = _infisical().shared_folder(props[c.ENVIRONMENT], props[c.PATH])  # one listing per environment
        fp_key, owner = self._fingerprint_key(), props[c.OWNER]
        tracked = reconcile.tracked_keys(props)
        found = {key: fingerprint(fp_key, owner, key, live[key]) for key in sorted(tracked) if key in live}
        return ReadResult(id_, {**props, c.RECORDED_FINGERPRINTS: found})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """`pulumi destroy` on a stack that does not retain, or no database store left: withdraw only the
        secrets this resource published, except those rows left in the table still need; the folder and its
        other secrets stay."""
        published = reconcile.tracked_keys(props)
        kept = {} if props.get(c.CURRENT) else self._kept_for_application()
        withdrawn = sorted(set(published) - set(kept))
        _infisical().apply_secrets(props[c.ENVIRONMENT], props[c.PATH], upsert=kept, delete=withdrawn)

    def _kept_for_application(self) -> dict[str, str]:
        """What the key folder must still hold after a destroy, for the rows left in the table: the application's
        own keys (decision 0049), which a destroy never deletes. This resource is deleted after every tenant's
        rows (the schema, which they depend on, depends on it), so any row left is the application's: keep
        the versions they are on, and ``MASTER_ENCRYPTION_KEY`` at the version writers without the keyring
        use, which the publication of the current key withdrew before the tenants' rows went. Nothing
        when no row is left or no database is configured."""
        if not os.environ.get("DATABASE_URL"):
            return {}
        settings = store.StoreSettings(table_prefix=self._stack.table_prefix)
        conn = _database()
        try:
            in_use = store.key_versions_in_use(conn, settings)
        except psycopg.errors.UndefinedTable:
            return {}
        if not in_use:
            return {}
        keys = {version: key.hex() for version, key in self._stack.master_keys.keys.items()}
        current = store.recorded_key_version(conn, settings) or max(in_use)
        return keyfolder.published_values(
            keys, versions=sorted(v for v in in_use if v in keys), current=current if current in keys else None
        )

    def _write(self, props: Mapping[str, Any], *, withdraw: list[str]) -> dict[str, Any]:
        declared: dict[str, str] = dict(props[c.DECLARED_FINGERPRINTS])
        names = set(declared)
        keys = {version: key.hex() for version, key in self._stack.master_keys.keys.items()}
        current = props.get(c.CURRENT)
        values = keyfolder.published_values(
            keys, versions=keyfolder.published_versions(names), current=int(current) if current else None
        )
        fp_key, owner = self._fingerprint_key(), props[c.OWNER]
        written = {key: fingerprint(fp_key, owner, key, value) for key, value in values.items()}
        if written != declared:
            stale = sorted(k for k in names | set(written) if written.get(k) != declared.get(k))
            raise ProviderError(
                f"{props[c.PATH]}: {', '.join(stale)} would not be what the plan showed (the stack's masterKeys "
                "changed since the preview); run the preview again"
            )
        _infisical().apply_secrets(props[c.ENVIRONMENT], props[c.PATH], upsert=values, delete=withdraw)
        if current and os.environ.get("DATABASE_URL"):
            # MASTER_ENCRYPTION_KEY has just moved: from now on a writer without the keyring (the application's
            # setTenantSecret) encrypts with this version, so the database labels its rows with it (decision 0049)
            settings = store.StoreSettings(
                table_prefix=self._stack.table_prefix, history_retention=self._stack.history_retention
            )
            with contextlib.suppress(psycopg.errors.UndefinedTable):  # no schema yet: nothing to label
                store.record_key_state(_database(), settings, app_key_version=int(current))
        outs = {p: props.get(p) for p in (c.OWNER, c.ENVIRONMENT, c.PATH, c.CURRENT)}
        return {**outs, c.RECORDED_FINGERPRINTS: written, c.WRITTEN_FINGERPRINTS: written}


class RegistryProvider(ResourceProvider):
    """The list of owners this stack manages; refuses, in preview, an owner that vanished unmarked.

    A tenant whose entry disappears is simply not registered by the program, so no resource of its
    own could object; this resource remembers the previous list and can.
    """

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Before any diff, in preview too: refuse an owner gone from tenants.yaml without its marker."""
        return CheckResult(news, _check_failures(reconcile.registry_check(olds, news)))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=c.REGISTRY_SCHEMA.changed(olds, news))

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult("registry", dict(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(dict(news))
