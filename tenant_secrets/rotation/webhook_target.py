"""Where a rotation webhook may post: a public address, unless the stack allows the host by name.

The deploy job that sends notifications runs next to the things an attacker would like it to reach:
the cloud's metadata service (`http://169.254.169.254/`), the database on loopback, a private network.
A webhook URL is checked after resolution, not by its text: `http://0x7f000001/`, `http://[::1]:22/`,
`http://localhost:5432/` and a name whose DNS answer is private are all refused (issue 26, item 9).
Every address the name resolves to is checked, and the connection goes to the checked address (the
caller pins it: `notify.deliver`), so a second DNS answer cannot move it elsewhere (DNS rebinding).

A host the stack names in ``tenant-secrets:webhookAllowHosts`` (comma-separated host names, as they
appear in the URL) is exempt, for a receiver on the runner itself, as the local tests use.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ALLOW_SETTING = "webhookAllowHosts"
DEFAULT_PORTS = {"http": 80, "https": 443}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]  # socket.getaddrinfo's shape


class WebhookTargetError(ValueError):
    """A webhook host that does not resolve, or resolves to an address webhooks may not reach; the
    message names the host (never the URL's path, which is a Slack webhook's secret)."""


@dataclass(frozen=True)
class Target:
    """The address a webhook's connection goes to, checked, and the host name its URL says."""

    hostname: str
    address: str


def allowed_hosts(setting: str | None) -> frozenset[str]:
    """The host names of ``tenant-secrets:webhookAllowHosts``: comma-separated, case-insensitive."""
    return frozenset(h.strip().lower().strip("[]") for h in (setting or "").split(",") if h.strip())


def resolve(url: str, allow: frozenset[str] = frozenset(), resolver: Resolver | None = None) -> Target:
    """The checked address to post ``url`` to; WebhookTargetError when it may not be reached.
    ``resolver`` is socket.getaddrinfo unless a test gives its own."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 80)
    try:
        answers = (resolver or socket.getaddrinfo)(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise WebhookTargetError(f"the webhook's host {host} does not resolve") from None
    addresses = list(dict.fromkeys(_address(answer[4][0]) for answer in answers))
    if not addresses:
        raise WebhookTargetError(f"the webhook's host {host} does not resolve")
    if host not in allow:
        for address in addresses:
            if (kind := refused_kind(address)) is not None:
                raise WebhookTargetError(
                    f"the webhook's host {host} resolves to {address}, {kind}: webhooks are sent to public "
                    f"addresses only; to send to this host, name it in tenant-secrets:{ALLOW_SETTING}"
                )
    return Target(host, str(addresses[0]))


def refused_kind(address: Address) -> str | None:
    """What kind of address a webhook may not reach, in words; None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    kinds = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((kind for refused, kind in kinds if refused), None)


def _address(text: str) -> Address:
    return ipaddress.ip_address(text.partition("%")[0])  # an IPv6 answer may carry a scope: fe80::1%eth0
