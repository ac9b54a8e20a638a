"""Issue 26, item 9: a rotation webhook reaches public addresses only (checked after resolution, connected
to the checked address), unless the stack allows a host by name; and the reference receiver-side
verifier accepts what `notify` sends and refuses forgeries, stale and replayed notifications."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import requests
from urllib3 import HTTPSConnectionPool

from tenant_secrets.rotation import notify
from tenant_secrets.rotation.webhook_target import WebhookTargetError, allowed_hosts, resolve
from tenant_secrets.rotation.webhook_verify import Verifier, WebhookVerificationError, expected_signature

KEY = "fake-webhook-signing-key-0001"
BODY = notify.payload("prod", "prod", [notify.Event("codewiser", "API_TOKEN", "changed", ("database",), 3)])
SENT = json.loads(json.dumps(BODY))  # as the receiver reads it


class Receiver(BaseHTTPRequestHandler):
    """A receiving service: the reference verifier, then the body."""

    verifier: ClassVar[Verifier]
    received: ClassVar[list[tuple[str, Any]]]

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            self.verifier.verify(dict(self.headers.items()), raw)
        except WebhookVerificationError as err:
            self.received.append(("refused", str(err)))
            self.send_response(401)
        else:
            self.received.append((str(self.headers["Host"]), json.loads(raw)))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[int, type[Receiver]]]:
    handler = type("Handler", (Receiver,), {"verifier": Verifier(KEY), "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("url", "host", "address", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "169.254.169.254", "a link-local address"),
        ("http://localhost:{port}/hook", "localhost", "127.0.0.1", "a loopback address"),
        ("http://[::1]:{port}/", "::1", "::1", "a loopback address"),
        ("http://0x7f000001:{port}/", "0x7f000001", "127.0.0.1", "a loopback address"),
        ("http://127.1:{port}/", "127.1", "127.0.0.1", "a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "::ffff:127.0.0.1", "::ffff:7f00:1", "a loopback address"),
        ("http://0.0.0.0:{port}/", "0.0.0.0", "0.0.0.0", "an unspecified address"),  # noqa: S104 (a URL, not a bind)
        ("https://10.1.2.3/", "10.1.2.3", "10.1.2.3", "a private address"),
        ("http://192.168.1.10:8080/", "192.168.1.10", "192.168.1.10", "a private address"),
        ("http://[fd00::1]/", "fd00::1", "fd00::1", "a private address"),
        ("http://224.0.0.1/", "224.0.0.1", "224.0.0.1", "a multicast address"),
        ("http://100.64.0.1/", "100.64.0.1", "100.64.0.1", "not a public address"),
    ],
)
def test_a_webhook_to_an_address_that_is_not_public_is_not_sent(
    receiver: tuple[int, type[Receiver]], url: str, host: str, address: str, kind: str
) -> None:
    port, handler = receiver
    delivery = notify.deliver(notify.Webhook(url.format(port=port), KEY), BODY, attempts=1, backoff=0)
    assert (delivery.delivered, delivery.attempts, handler.received) == (False, 0, [])
    assert delivery.detail == (
        f"not sent: the webhook's host {host} resolves to {address}, {kind}: webhooks are sent to public "
        "addresses only; to send to this host, name it in tenant-secrets:webhookAllowHosts"
    )
    assert "/hook" not in delivery.detail and "meta-data" not in delivery.detail  # never the URL's path


def fake_dns(answers: dict[str, list[str]]) -> Any:
    def getaddrinfo(host: str, port: int, **_: object) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    return getaddrinfo


def test_every_address_a_name_resolves_to_is_checked() -> None:
    dns = fake_dns({"hooks.example.test": ["93.184.215.14", "10.0.0.7"], "public.example.test": ["93.184.215.14"]})
    with pytest.raises(WebhookTargetError, match=r"resolves to 10\.0\.0\.7, a private address"):
        resolve("https://hooks.example.test/T/B/x", resolver=dns)
    assert resolve("https://public.example.test/T/B/x", resolver=dns).address == "93.184.215.14"
    with pytest.raises(WebhookTargetError, match=r"^the webhook's host nowhere\.example\.test does not resolve$"):
        resolve("https://nowhere.example.test/x", resolver=dns)


def test_a_host_the_stack_allows_by_name_is_sent_to_and_the_receiver_s_verifier_accepts_it(
    receiver: tuple[int, type[Receiver]],
) -> None:
    port, handler = receiver
    stack = {"webhookUrl": f"http://127.0.0.1:{port}/hook", "webhookSigningKey": KEY}
    stack["webhookAllowHosts"] = "hooks.internal.example, 127.0.0.1"
    webhook = notify.webhook_from({}, stack.get)
    assert webhook is not None and webhook.allow == {"hooks.internal.example", "127.0.0.1"}
    delivery = notify.deliver(webhook, BODY, backoff=0)
    assert delivery.delivered, delivery.detail
    assert handler.received == [(f"127.0.0.1:{port}", SENT)]
    assert allowed_hosts(" LocalHost ,,[::1]") == {"localhost", "::1"}


def test_the_connection_goes_to_the_checked_address_whatever_a_second_answer_says(
    receiver: tuple[int, type[Receiver]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers 127.0.0.1 when checked (allowed by name here), then an address where
    nothing listens; the notification still arrives, with the URL's host in its Host header."""
    port, handler = receiver
    real = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.rebind.test":
            asked.append(host)
            return real("127.0.0.1" if len(asked) == 1 else "127.0.0.2", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    webhook = notify.Webhook(f"http://hooks.rebind.test:{port}/hook", KEY, frozenset({"hooks.rebind.test"}))
    delivery = notify.deliver(webhook, BODY, attempts=1, backoff=0)
    assert delivery.delivered, delivery.detail
    assert asked == ["hooks.rebind.test"]  # resolved once, by the check
    assert handler.received == [(f"hooks.rebind.test:{port}", SENT)]


def test_the_verifier_refuses_forgeries_stale_and_replayed_notifications() -> None:
    now = 1_765_000_000.0
    verifier = Verifier(KEY, clock=lambda: now)
    raw = json.dumps(BODY, sort_keys=True).encode()

    def signed(timestamp: int, body: bytes = raw, key: str = KEY) -> dict[str, str]:
        return {
            "x-tenant-secrets-timestamp": str(timestamp),  # header names are case-insensitive
            "X-Tenant-Secrets-Signature": expected_signature(key, str(timestamp), body),
        }

    verifier.verify(signed(int(now) - 10), raw)
    refusals = {
        "a replay: this signature was accepted already": (signed(int(now) - 10), raw),
        "the signature does not match the body and timestamp": (signed(int(now)), raw.replace(b"API", b"APX")),
        "the signature does not match": (signed(int(now), key="fake-another-key"), raw),
        "the timestamp is 301 s off this clock, outside the window of 300 s either way": (signed(int(now) - 301), raw),
        "the timestamp is -301 s off this clock": (signed(int(now) + 301), raw),
        "no X-Tenant-Secrets-Timestamp in Unix seconds": ({"X-Tenant-Secrets-Signature": "sha256=00"}, raw),
        "no X-Tenant-Secrets-Signature of the form sha256=<hex>": ({"X-Tenant-Secrets-Timestamp": "1"}, raw),
    }
    for reason, (headers, body) in refusals.items():
        with pytest.raises(WebhookVerificationError, match=reason.replace("+", r"\+")):
            verifier.verify(headers, body)
    retimed = signed(int(now) - 10)
    retimed["x-tenant-secrets-timestamp"] = str(int(now))  # a captured signature under a fresh timestamp
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verifier.verify(retimed, raw)
    assert KEY not in repr(verifier)


def test_over_https_the_pinned_connection_still_verifies_the_url_s_host_name() -> None:
    """TLS checks the certificate against the name in the URL, not the address connected to."""
    target = resolve("https://hooks.example.test/T/B/x", resolver=fake_dns({"hooks.example.test": ["93.184.215.14"]}))
    adapter = notify._PinnedAdapter(target)
    request = requests.Request("POST", "https://hooks.example.test/T/B/x").prepare()
    pool = adapter.get_connection_with_tls_context(request, True)
    assert isinstance(pool, HTTPSConnectionPool)
    assert (pool.host, pool.port, pool.conn_kw["server_hostname"]) == ("93.184.215.14", 443, "hooks.example.test")
    assert pool.assert_hostname == "hooks.example.test"
