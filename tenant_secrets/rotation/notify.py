"""Rotation notifications: what changed in the stores over a `pulumi up`, and what is due, to a webhook.

    changes(before, after)            the secrets written or deleted between two records (pure)
    due_events(report)                the policies due soon or overdue (pure)
    payload(...)                      the body, Slack-compatible and generic at once (signed with
                                      webhook_verify.expected_signature, the receiver's own check)
    deliver(...)                      one POST to a checked public address (webhook_target), bounded
                                      retries (urllib3 Retry), never raises

The body is one JSON object: `text` (what a Slack incoming webhook shows; other fields are ignored by
Slack) and `events` (stack, environment, tenant, key, what happened, the new version), so one URL serves
a Slack channel or a service that checks the signature: `X-Tenant-Secrets-Signature: sha256=<hex>`, the
HMAC-SHA256 of `<X-Tenant-Secrets-Timestamp>.<body>` with the signing key, the timestamp in Unix
seconds; a receiver checks both with `tenant_secrets.rotation.webhook_verify`. No value, no fingerprint,
and never the URL (a Slack URL is itself a secret) appears in a body, a log line or an error.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast
from urllib.parse import urlsplit

import requests
from requests import PreparedRequest
from requests.adapters import HTTPAdapter
from urllib3 import BaseHTTPResponse
from urllib3.connectionpool import ConnectionPool
from urllib3.util.retry import Retry

from tenant_secrets.rotation.last_written import Records
from tenant_secrets.rotation.status import MASTER_KEY_NAME, MASTER_KEY_OWNER, StatusReport
from tenant_secrets.rotation.webhook_target import ALLOW_SETTING, Target, WebhookTargetError, allowed_hosts, resolve
from tenant_secrets.rotation.webhook_verify import SIGNATURE_HEADER, TIMESTAMP_HEADER, expected_signature

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

URL_VARIABLE = "TENANT_SECRETS_WEBHOOK_URL"
KEY_VARIABLE = "TENANT_SECRETS_WEBHOOK_SIGNING_KEY"
URL_SETTING = "webhookUrl"
KEY_SETTING = "webhookSigningKey"
ATTEMPTS = 4  # the first try and three retries
BACKOFF = 0.5  # seconds, doubled after each retry (0.5, 1, 2): a few seconds in all
TIMEOUT = 5.0  # seconds, per attempt
TEXT_LINES = 20  # the Slack text names the first few events; `events` holds them all

_log = logging.getLogger("tenant_secrets.rotation.notify")


@dataclass(frozen=True)
class Event:
    owner: str  # a tenant's subdomain, a platform folder, or "(stack)" for the master key
    key: str
    action: str  # created | changed | deleted | master-key-rotated | due-soon | overdue
    stores: tuple[str, ...] = ()
    version: int | None = None  # the new version (the database's, else Infisical's; the master key's)
    due: str | None = None


def changes(before: Records, after: Records) -> list[Event]:
    """Each secret whose version changed, appeared or went, stores merged; and a new master key version."""
    touched: dict[tuple[str, str], dict[str, tuple[str, int | None]]] = {}
    for where in sorted(before.secrets.keys() | after.secrets.keys()):
        store, owner, key = where
        old, new = before.secrets.get(where), after.secrets.get(where)
        if new is None:
            touched.setdefault((owner, key), {})[store] = ("deleted", None)
        elif old is None:
            touched.setdefault((owner, key), {})[store] = ("created", new.version)
        elif (old.version, old.at) != (new.version, new.at):
            touched.setdefault((owner, key), {})[store] = ("changed", new.version)
    events = []
    for (owner, key), stores in touched.items():
        actions = {action for action, _ in stores.values()}
        action = "changed" if len(actions) > 1 else actions.pop()
        version = stores.get("database", stores.get("infisical", ("", None)))[1]
        events.append(Event(owner, key, action, tuple(sorted(stores)), version))
    old_key, new_key = before.master_key, after.master_key
    if new_key is not None and old_key is not None and new_key.key_version != old_key.key_version:
        events.append(Event(MASTER_KEY_OWNER, MASTER_KEY_NAME, "master-key-rotated", version=new_key.key_version))
    return events


def due_events(report: StatusReport) -> list[Event]:
    return [Event(r.owner, r.key, r.state, due=r.due) for r in report.rows if r.state in ("due-soon", "overdue")]


def _line(event: Event) -> str:
    what = event.action + (f" (version {event.version})" if event.version is not None else "")
    what += f", due {event.due}" if event.due else ""
    stores = f" [{', '.join(event.stores)}]" if event.stores else ""
    return f"• {event.owner} {event.key}: {what}{stores}"


def payload(stack: str, environment: str, events: Sequence[Event]) -> dict[str, Any]:
    lines = [_line(e) for e in events[:TEXT_LINES]]
    if len(events) > TEXT_LINES:
        lines.append(f"… and {len(events) - TEXT_LINES} more")
    head = f"tenant-secrets: stack {stack} ({environment}): {len(events)} rotation event(s)"
    return {
        "text": "\n".join([head, *lines]),
        "source": "tenant-secrets",
        "stack": stack,
        "environment": environment,
        "events": [{"stack": stack, "environment": environment, **asdict(e)} for e in events],
    }


@dataclass(frozen=True)
class Webhook:
    url: str
    signing_key: str
    allow: frozenset[str] = frozenset()  # hosts exempt from the public-address rule (webhookAllowHosts)

    def __repr__(self) -> str:
        return f"Webhook({self.where})"

    @property
    def where(self) -> str:
        """What messages name: the scheme and host only (a Slack URL's path is its secret)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}"


class WebhookConfigError(ValueError):
    """A webhook URL without a signing key, or an unusable URL; the message names the settings."""


def webhook_from(environ: Mapping[str, str], get: Callable[[str], str | None]) -> Webhook | None:
    """The environment's TENANT_SECRETS_WEBHOOK_* first, else the stack's secrets webhookUrl and
    webhookSigningKey, with the hosts the stack's webhookAllowHosts exempts; None when no URL is set."""
    url = environ.get(URL_VARIABLE) or get(URL_SETTING)
    if not url:
        return None
    key = environ.get(KEY_VARIABLE) or get(KEY_SETTING)
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise WebhookConfigError(f"{URL_VARIABLE} (or tenant-secrets:{URL_SETTING}) is not an http(s) URL")
    if not key:
        raise WebhookConfigError(
            f"the webhook has no signing key: set {KEY_VARIABLE}, or "
            f"`pulumi config set --secret tenant-secrets:{KEY_SETTING} $(openssl rand -hex 32)`"
        )
    return Webhook(url, key, allowed_hosts(get(ALLOW_SETTING)))


class _LoggedRetry(Retry):
    """urllib3's Retry, logging each retry in our words: urllib3's own warning prints the URL."""

    def increment(  # the signature of Retry.increment
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        reason = f"status {response.status}" if response is not None else type(error).__name__
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        _log.warning("webhook attempt %d failed (%s); retrying", len(retry.history), reason)
        return retry


class _PinnedAdapter(HTTPAdapter):
    """Connects to the checked address, whatever a later DNS answer says; TLS still verifies the host name."""

    def __init__(self, target: Target, **kwargs: Any) -> None:
        self._target = target
        super().__init__(**kwargs)

    def build_connection_pool_key_attributes(
        self, request: PreparedRequest, verify: bool | str, cert: str | tuple[str, str] | None = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params["host"] = self._target.address
        if host_params["scheme"] == "https":  # urllib3 keywords the stubs' TypedDict does not list
            tls = cast(dict[str, Any], pool_kwargs)
            tls["server_hostname"] = tls["assert_hostname"] = self._target.hostname
        return host_params, pool_kwargs


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    detail: str  # "status 200", or why it was not delivered (no URL, no value)


def deliver(webhook: Webhook, body: dict[str, Any], *, attempts: int = ATTEMPTS, backoff: float = BACKOFF) -> Delivery:
    """POST the body, signed, to the webhook host's checked address; retried on a connection error, a
    timeout, 429 and 5xx, at most ``attempts`` times in all. Never raises: a failed notification is
    reported by the caller, not fatal."""
    try:
        target = resolve(webhook.url, webhook.allow)
    except WebhookTargetError as err:
        return Delivery(False, 0, f"not sent: {err}")
    raw = json.dumps(body, sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "Host": urlsplit(webhook.url).netloc.rpartition("@")[2],  # the connection goes to the address
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: expected_signature(webhook.signing_key, timestamp, raw),
    }
    retry = _LoggedRetry(
        total=attempts - 1,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"POST"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    session.mount("http://", _PinnedAdapter(target, max_retries=retry))
    session.mount("https://", _PinnedAdapter(target, max_retries=retry))
    quiet = logging.getLogger("urllib3.connectionpool")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its retry warnings carry the URL
    try:
        response = session.post(webhook.url, data=raw, headers=headers, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as err:
        return Delivery(
            False, attempts, f"not delivered to {webhook.where} after {attempts} attempt(s): {type(err).__name__}"
        )
    finally:
        quiet.setLevel(level)
        session.close()
    tries = 1 + len(response.raw.retries.history) if response.raw.retries else 1
    if 200 <= response.status_code < 300:
        return Delivery(True, tries, f"delivered to {webhook.where} (status {response.status_code})")
    return Delivery(
        False, tries, f"not delivered to {webhook.where} after {tries} attempt(s): status {response.status_code}"
    )
