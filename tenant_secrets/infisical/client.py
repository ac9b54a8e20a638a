"""The client: folders and secrets of one Infisical project, converging. Reads and writes here; what
to send is planned in ``plan.py``, and sent, with retries and the token cache, by ``transport.py``.

:meth:`InfisicalClient.apply_secrets` writes only differences, at most one batch request per kind of
change, so a second run with nothing changed sends no write at all. :meth:`InfisicalClient.apply_folder`
does the same for the many folder writes of a provider process, their creates and updates sharing batch
upserts with the other writes in flight (``batcher.py``). :meth:`InfisicalClient.shared_folder` and
:meth:`InfisicalClient.shared_value` read from one recursive listing per environment and process
(``listing.py``), for reads that report or resolve values, never for deciding a write.

An ``InfisicalClient`` is meant for one thread: the providers keep one per provider thread (they are
cheap, and every client of the process shares the token cache).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from tenant_secrets.infisical.batcher import BatchCalls, Coalescer, coalescer
from tenant_secrets.infisical.errors import RERUN, InfisicalError, hidden_values
from tenant_secrets.infisical.folder_changes import (
    ApplyResult,
    _by_folder,
    _check_input,
    _Conflict,
    _folder_path,
    _Plan,
    _Progress,
    _split,
)
from tenant_secrets.infisical.listing import LISTINGS, Key
from tenant_secrets.infisical.transport import Transport, log


class InfisicalClient(Transport):
    """Folders and secrets of one Infisical project, for one machine identity."""

    # --- reads -----------------------------------------------------------------------------------

    def shared_folder(self, environment: str, path: str) -> dict[str, str]:
        """Key -> value of the folder's own secrets ({} when it has none or does not exist), from the
        environment's one recursive listing in this process (read on first use, shared by all threads).

        For reads that report or resolve values (refresh, ``{from: infisical}``); a write never plans from it.
        """
        return LISTINGS.folder(self._listing_key(environment), path, lambda: self._environment_listing(environment))

    def shared_value(self, environment: str, path: str, key: str) -> str | None:
        """One secret's value from the shared listing (:meth:`shared_folder`), or None when it does not exist."""
        return self.shared_folder(environment, path).get(key)

    def _environment_listing(self, environment: str) -> list[Any]:
        return self._listing(environment, "/", with_values=True, recursive=True) or []

    def _listing_key(self, environment: str) -> Key:
        creds = self._creds
        return (creds.site_url.rstrip("/"), creds.client_id, creds.project_id, environment)

    def list_secrets(self, environment: str, path: str) -> dict[str, str]:
        """Key -> value of the folder's own secrets; {} when the folder does not exist."""
        return self._read_folder(environment, _folder_path(path)) or {}

    def get_secret(self, environment: str, path: str, key: str) -> str | None:
        """One secret's value, or None when the key (or its folder) does not exist."""
        path = _folder_path(path)
        reply = self._call(
            f"reading {key} in {environment}:{path}",
            "GET /api/v3/secrets/raw/{secretName}",
            lambda: self._sdk.secrets.get_secret_by_name(
                secret_name=quote(key, safe=""),
                environment_slug=environment,
                secret_path=path,
                project_id=self._creds.project_id,
                expand_secret_references=False,
                include_imports=False,
                view_secret_value=True,
            ),
            expected={404},
            context={"environment": environment, "path": path, "keys": [key]},
        )
        if reply.status == 404:
            return None
        if getattr(reply.body, "secretValueHidden", False):  # Infisical's placeholder, not the value
            raise InfisicalError(
                f"the identity may not read the value of {key} in {environment}:{path}; "
                "grant it read access to that path",
                environment=environment,
                path=path,
                keys=[key],
            )
        return str(reply.body.secretValue)

    def list_folders(self, environment: str, path: str) -> list[str]:
        """Names of the folder's direct subfolders, sorted ([] also when the folder does not exist)."""
        return self._folder_names(environment, _folder_path(path)) or []

    def list_secret_keys(self, environment: str, path: str) -> list[str] | None:
        """The keys of the folder's own shared secrets, sorted, asking the server not to send values;
        None when the folder does not exist."""
        secrets = self._shared_secrets(environment, _folder_path(path), with_values=False)
        return None if secrets is None else sorted(str(s.secretKey) for s in secrets)

    def list_tree(self, environment: str, path: str = "/") -> dict[str, dict[str, str]]:
        """Every shared secret under ``path``, its subfolders' included, in one request: folder path -> key -> value.

        Infisical answers a recursive listing with each secret's ``secretPath``, so a whole environment costs
        one request whatever the number of folders. Folders without secrets do not appear; {} when ``path``
        does not exist.
        """
        secrets = self._listing(environment, _folder_path(path), with_values=True, recursive=True)
        return _by_folder(secrets or [], environment, with_values=True)

    def list_tree_keys(self, environment: str, path: str = "/") -> dict[str, list[str]]:
        """Like :meth:`list_tree`, keys only: the server is asked not to send values (``viewSecretValue=false``)."""
        secrets = self._listing(environment, _folder_path(path), with_values=False, recursive=True)
        tree = _by_folder(secrets or [], environment, with_values=False)
        return {folder: sorted(held) for folder, held in tree.items()}

    def list_tree_written(self, environment: str, path: str = "/") -> dict[str, dict[str, tuple[str, int]]]:
        """Like :meth:`list_tree_keys`, with when each secret's current value was written and its version:
        folder path -> key -> (``updatedAt`` as Infisical records it, ``version``). No value is sent."""
        secrets = self._listing(environment, _folder_path(path), with_values=False, recursive=True)
        tree: dict[str, dict[str, tuple[str, int]]] = {}
        for secret in secrets or []:
            folder = _folder_path(str(secret.secretPath or "/"))
            tree.setdefault(folder, {})[str(secret.secretKey)] = (str(secret.updatedAt), int(secret.version))
        return tree

    def _folder_names(self, environment: str, path: str) -> list[str] | None:
        reply = self._call(
            f"listing folders of {environment}:{path}",
            "GET /api/v2/folders",
            lambda: self._sdk.folders.list_folders(
                project_id=self._creds.project_id, environment_slug=environment, path=path, recursive=False
            ),
            expected={404},
            context={"environment": environment, "path": path},
        )
        if reply.status == 404:
            return None
        return sorted(str(folder.name) for folder in reply.body.folders)

    def folder_exists(self, environment: str, path: str) -> bool:
        """Whether the folder exists: one listing of its parent's subfolders."""
        path = _folder_path(path)
        if path == "/":
            parent, name = "/", None
        else:
            parent, name = _split(path)
        names = self._folder_names(environment, parent)
        if names is None:
            return False
        return name is None or name in names

    # --- writes ----------------------------------------------------------------------------------

    def ensure_folder(self, environment: str, path: str) -> bool:
        """Create the folder (and missing parents); True if it was created, False if it existed."""
        path = _folder_path(path)
        if path == "/" or self.folder_exists(environment, path):
            return False
        return self._create_folder(environment, path)

    def _create_folder(self, environment: str, path: str) -> bool:
        """Create a folder known (or believed) to be missing; True if this call created it."""
        parent, name = _split(path)
        reply = self._call(
            f"creating folder {environment}:{path}",
            "POST /api/v2/folders",
            lambda: self._sdk.folders.create_folder(
                name=name, environment_slug=environment, project_id=self._creds.project_id, path=parent
            ),
            expected={400},
            context={"environment": environment, "path": path},
        )
        if reply.status == 400:
            if "already exist" in reply.message:
                return reply.ambiguous  # created by an earlier attempt of this call, or by someone else
            raise self._rejected(
                f"creating folder {environment}:{path}", reply, {"environment": environment, "path": path}
            )
        return True

    def delete_folder(self, environment: str, path: str) -> bool:
        """Delete the folder with everything in it; True if it existed."""
        path = _folder_path(path)
        if path == "/":
            raise InfisicalError(f"refusing to delete the root folder of {environment}", environment=environment)
        parent, name = _split(path)
        reply = self._call(
            f"deleting folder {environment}:{path}",
            "DELETE /api/v2/folders/{folderIdOrName}",
            lambda: self._sdk.folders.delete_folder(
                folder_id_or_name=name,
                environment_slug=environment,
                project_id=self._creds.project_id,
                path=parent,
                force_delete=True,
            ),
            expected={404},
            context={"environment": environment, "path": path},
        )
        LISTINGS.note_folder_deleted(self._listing_key(environment), path)
        return reply.status != 404 or reply.ambiguous

    def apply_folder(
        self,
        environment: str,
        path: str,
        *,
        upsert: Mapping[str, str],
        delete: Collection[str] = (),
        folder_is_new: bool = False,
    ) -> ApplyResult:
        """:meth:`apply_secrets` for one of many folders written concurrently in this process: the keys to
        create and to update go in one batch upsert shared with the other folder writes in flight (a
        ``secretPath`` per item), and this call waits for its own answer; deletes stay one batch per folder.

        The folder is read (unless this call creates it) and only differences are sent, as for
        :meth:`apply_secrets`.
        """
        with self._coalescer.writing():
            return self._apply(
                environment, path, upsert, delete, existing=None, folder_is_new=folder_is_new, coalesce=True
            )

    def apply_secrets(
        self,
        environment: str,
        path: str,
        *,
        upsert: Mapping[str, str],
        delete: Collection[str] = (),
        existing: Mapping[str, str] | None = None,
        folder_is_new: bool = False,
    ) -> ApplyResult:
        """Make the folder hold ``upsert`` and not ``delete``, writing only differences.

        Missing keys go in one batch create, changed values in one batch update, ``delete`` keys that
        exist in one batch delete; no write is sent when nothing differs (the folder is still read, unless
        ``existing``, what the folder holds if the caller knows, says). The folder is created when there is
        something to write to it; when the caller also expects it to be new (``folder_is_new``), it is
        created first, and a folder this call created is known to be empty, which saves the read too (a
        folder that existed is read, and adopted). If a write meets another state than planned (stale
        ``existing``, a retried write that had been applied), the folder is read again and the rest
        re-planned, once.
        """
        return self._apply(
            environment, path, upsert, delete, existing=existing, folder_is_new=folder_is_new, coalesce=False
        )

    def _apply(
        self,
        environment: str,
        path: str,
        upsert: Mapping[str, str],
        delete: Collection[str],
        *,
        existing: Mapping[str, str] | None,
        folder_is_new: bool,
        coalesce: bool,
    ) -> ApplyResult:
        path = _folder_path(path)
        _check_input(environment, path, upsert, delete)
        current = existing
        made = False
        if current is None and folder_is_new and upsert and self._create_folder(environment, path):
            current, made = {}, True
        if current is None:
            current = self._read_folder(environment, path)
            if current is None:
                if upsert:  # the read just said the folder is missing: no need to ask again
                    made = self._create_folder(environment, path)
                current = {}
        progress = _Progress()
        try:
            self._execute(
                environment, path, _Plan.of(upsert, delete, current), upsert.values(), progress, coalesce=coalesce
            )
        except _Conflict as conflict:
            log.info("Infisical %s:%s is not in the state planned against; reading it again", environment, path)
            if conflict.folder_missing:
                made = self.ensure_folder(environment, path) or made
            fresh = self._read_folder(environment, path) or {}
            if conflict.uncertain is not None:
                # A lost answer to an applied write: credit the keys that now hold what we sent.
                verb, keys = conflict.uncertain
                settled = [k for k in keys if (k not in fresh if verb == "delete" else fresh.get(k) == upsert[k])]
                progress.keys(verb).update(settled)
            try:
                self._execute(
                    environment, path, _Plan.of(upsert, delete, fresh), upsert.values(), progress, coalesce=coalesce
                )
            except _Conflict:
                raise InfisicalError(
                    f"{environment}:{path} keeps changing while secrets are written to it; {RERUN}",
                    environment=environment,
                    path=path,
                ) from None
        LISTINGS.note_write(self._listing_key(environment), path, upsert, delete)
        return replace(progress.result(), folder_created=made)

    @property
    def _coalescer(self) -> Coalescer:
        creds = self._creds
        return coalescer(creds.site_url.rstrip("/"), creds.client_id, creds.project_id)

    @property
    def batch_calls(self) -> BatchCalls:
        """This client's calls that a shared batch is sent and checked with."""
        return BatchCalls(body=self.upsert_body, send=self._upsert_many, read=self._read_folder)

    # --- internals -------------------------------------------------------------------------------

    def _read_folder(self, environment: str, path: str) -> dict[str, str] | None:
        """The folder's shared secrets, or None when the folder does not exist."""
        secrets = self._shared_secrets(environment, path, with_values=True)
        if secrets is None:
            return None
        if refused := hidden_values(environment, path, [str(s.secretKey) for s in secrets if s.secretValueHidden]):
            raise refused
        return {str(s.secretKey): str(s.secretValue) for s in secrets}

    def _shared_secrets(self, environment: str, path: str, *, with_values: bool) -> list[Any] | None:
        """One listing of the folder's own shared secrets (values only if asked), or None when it does not exist."""
        return self._listing(environment, path, with_values=with_values, recursive=False)

    def _listing(self, environment: str, path: str, *, with_values: bool, recursive: bool) -> list[Any] | None:
        """One listing of shared secrets (the subfolders' too if ``recursive``); None when ``path`` does not exist."""
        what = f"{'secrets' if with_values else 'secret keys'} of {environment}:{path}"
        what += " and its subfolders" if recursive else ""
        reply = self._call(
            f"listing {what}",
            "GET /api/v3/secrets/raw",
            lambda: self._sdk.secrets.list_secrets(
                environment_slug=environment,
                secret_path=path,
                project_id=self._creds.project_id,
                expand_secret_references=False,
                view_secret_value=with_values,
                recursive=recursive,
                include_imports=False,
            ),
            expected={404},
            context={"environment": environment, "path": path},
        )
        if reply.status == 404:
            return None
        return [s for s in reply.body.secrets if s.type == "shared"]

    def _execute(
        self, environment: str, path: str, plan: _Plan, sensitive: Iterable[str], progress: _Progress, *, coalesce: bool
    ) -> None:
        """Send the plan's batches (create, update, delete; or, coalesced, one shared upsert and the
        delete), recording each in ``progress``.

        A 404, or a 400 "already exists", means the folder is not as planned: raise _Conflict.
        """
        values = list(sensitive)
        batches: list[tuple[str, dict[str, Any]]] = []
        if coalesce and (plan.create or plan.update):
            self._coalesced_upsert(environment, path, plan, values, progress)
        elif plan.create:
            items = [{"secretKey": k, "secretValue": v} for k, v in plan.create.items()]
            batches.append(("create", {"secrets": items}))
        if plan.update and not coalesce:
            items = [{"secretKey": k, "secretValue": v} for k, v in plan.update.items()]
            batches.append(("update", {"mode": "upsert", "secrets": items}))
        if plan.delete:
            items = [{"secretKey": k, "type": "shared"} for k in plan.delete]
            batches.append(("delete", {"secrets": items}))
        for verb, body in batches:
            keys = [item["secretKey"] for item in body["secrets"]]
            applied = self._update_applied(environment, path, body) if verb == "update" else None
            reply = self._batch(verb, environment, path, body, keys=keys, sensitive=values, applied=applied)
            if reply.status == 404 or (reply.status == 400 and "already exist" in reply.message):
                folder_missing = reply.status == 404 and "Folder with path" in reply.message
                raise _Conflict(folder_missing, (verb, keys) if reply.ambiguous else None)
            if reply.status >= 400:
                what = f"batch {verb} of {', '.join(keys)} in {environment}:{path}"
                context = {"environment": environment, "path": path, "keys": keys}
                raise self._rejected(what, reply, context, values)
            progress.keys(verb).update(keys)

    def _coalesced_upsert(
        self, environment: str, path: str, plan: _Plan, values: list[str], progress: _Progress
    ) -> None:
        """The plan's creates and updates in one upsert shared with the other writes in flight. A batch
        whose answer was lost is checked before it is resent (``batcher.py``), so none is uncertain here."""
        reply = self._coalescer.upsert(self.batch_calls, environment, path, {**plan.create, **plan.update})
        if reply.status == 404:
            raise _Conflict("Folder with path" in reply.message, None)
        if reply.status >= 400:
            keys = [*plan.create, *plan.update]
            what = f"batch upsert of {', '.join(keys)} in {environment}:{path}"
            raise self._rejected(what, reply, {"environment": environment, "path": path, "keys": keys}, values)
        progress.created.update(plan.create)
        progress.updated.update(plan.update)

    def _update_applied(self, environment: str, path: str, body: Mapping[str, Any]) -> Callable[[], bool]:
        def applied() -> bool:
            """Whether an update whose answer was lost is in place: then it is not sent again (a second
            PATCH would add a version holding the same value). Creates and deletes need no look: the
            server refuses their repetition (400 already exists, 404), which _execute handles."""
            try:
                held = self._read_folder(environment, path) or {}
            except InfisicalError:  # cannot tell: send it again, as for any other retry
                return False
            return all(held.get(item["secretKey"]) == item["secretValue"] for item in body["secrets"])

        return applied
