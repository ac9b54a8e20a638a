"""The receiving side of the rotation webhook: check a notification's signature and age before trusting it.

What `tenantctl rotation notify` sends (`tenant_secrets/rotation/notify.py`):

- ``X-Tenant-Secrets-Timestamp``: when it was signed, in Unix seconds, as decimal digits (``1765000000``);
- ``X-Tenant-Secrets-Signature``: ``sha256=`` and the lowercase hex HMAC-SHA256, keyed with the signing
  key's text as UTF-8, of the timestamp's digits, a ``.``, and the raw body bytes as received;
- the body: JSON (``text``, ``events``); parse it only after :meth:`Verifier.verify` accepted it.

A receiver checks the signature over the exact bytes it received (never a re-serialized body), compares
in constant time (`hmac.compare_digest`), refuses a timestamp outside the window (five minutes either
way by default: a retry of ``notify`` is re-signed, so a genuine delivery is never older), and refuses a
signature it already accepted within the window, so a captured request cannot be replayed. It needs
only the standard library: copy this file into the receiving service as it is. In a web handler::

    verifier = Verifier(os.environ["TENANT_SECRETS_WEBHOOK_SIGNING_KEY"])

    def handle(headers, body: bytes):
        try:
            verifier.verify(headers, body)
        except WebhookVerificationError:
            return 401  # say nothing more to the sender
        events = json.loads(body)["events"]

The memory of accepted signatures is per process; a receiver with several processes that must refuse
every replay keeps them in a shared store instead (the timestamp bounds how long each is kept).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Mapping

SIGNATURE_HEADER = "X-Tenant-Secrets-Signature"
TIMESTAMP_HEADER = "X-Tenant-Secrets-Timestamp"
PREFIX = "sha256="
WINDOW = 300  # seconds either side of the receiver's clock


class WebhookVerificationError(ValueError):
    """The notification is not one to trust: unsigned, badly signed, too old, from the future, or a replay."""


def expected_signature(key: str, timestamp: str, body: bytes) -> str:
    """The ``X-Tenant-Secrets-Signature`` header a sender with ``key`` puts on ``body`` at ``timestamp``."""
    digest = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return PREFIX + digest


class Verifier:
    """Checks notifications signed with one key; safe to share between threads."""

    def __init__(self, key: str, *, window: int = WINDOW, clock: Callable[[], float] = time.time) -> None:
        if not key:
            raise ValueError("the webhook signing key is empty")
        self._key = key
        self._window = window
        self._clock = clock
        self._seen: dict[str, int] = {}  # accepted signature -> its timestamp, kept while in the window
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Verifier(window={self._window})"  # never the key

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Accept the notification or raise WebhookVerificationError (with a reason for the receiver's log)."""
        found = {name.lower(): value for name, value in headers.items()}
        timestamp = found.get(TIMESTAMP_HEADER.lower(), "")
        signature = found.get(SIGNATURE_HEADER.lower(), "")
        if not timestamp.isascii() or not timestamp.isdigit():
            raise WebhookVerificationError(f"no {TIMESTAMP_HEADER} in Unix seconds")
        if not signature.startswith(PREFIX):
            raise WebhookVerificationError(f"no {SIGNATURE_HEADER} of the form {PREFIX}<hex>")
        if not hmac.compare_digest(signature.encode(), expected_signature(self._key, timestamp, body).encode()):
            raise WebhookVerificationError("the signature does not match the body and timestamp")
        now, sent = int(self._clock()), int(timestamp)
        if abs(now - sent) > self._window:
            raise WebhookVerificationError(
                f"the timestamp is {now - sent} s off this clock, outside the window of {self._window} s either way"
            )
        with self._lock:
            self._seen = {s: t for s, t in self._seen.items() if abs(now - t) <= self._window}
            if signature in self._seen:
                raise WebhookVerificationError("a replay: this signature was accepted already")
            self._seen[signature] = sent
