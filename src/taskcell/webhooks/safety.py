"""Which URLs a webhook may call: http(s) to public addresses only, unless an allow-list
(``TASKCELL_WEBHOOK_ALLOW``, CIDRs) lets an address through.

A URL is resolved once per attempt and the connection made to the address that was checked
(never resolved again by the HTTP client), so a name that answers a public address to the
check and a private one to the connection (DNS rebinding) reaches nothing it should not.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_CHARS = 2000


class UnsafeURL(ValueError):
    """A URL a webhook may not call (the API answers 422 naming the field)."""


class Unresolved(OSError):
    """A host name that does not resolve now (a delivery retries later)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect (``address``) and what to ask for there."""

    url: str
    scheme: str
    host: str
    port: int
    target: str  # the path and query
    address: str

    @property
    def connect_url(self) -> str:
        """The URL with the checked address in place of the host name."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}{self.target}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_allow(text: str) -> tuple[IPNetwork, ...]:
    """``"127.0.0.1/32,10.0.0.0/8"`` as networks; ``ValueError`` naming a bad entry."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"webhook_allow: {entry!r} is not a CIDR ({exc})") from None
    return tuple(networks)


def _forbidden(address: IPAddress, allow: Sequence[IPNetwork]) -> str | None:
    """Why ``address`` may not be called, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allow):
        return None
    if address.is_global and not address.is_multicast:
        return None
    if address.is_loopback:
        kind = "a loopback"
    elif address.is_link_local:
        kind = "a link-local (cloud metadata)"
    elif address.is_private:
        kind = "a private"
    else:
        kind = "a reserved"
    return f"{address} is {kind} address (allow it with TASKCELL_WEBHOOK_ALLOW)"


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path and query) of an http(s) URL; :class:`UnsafeURL` else."""
    if len(url) > MAX_URL_CHARS:
        raise UnsafeURL(f"the URL is over {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL("only http and https URLs can receive webhooks")
    if not parts.hostname:
        raise UnsafeURL("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("the URL may not carry a user name or password")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise UnsafeURL("the URL may not contain spaces or control characters")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), target


async def resolve(url: str, allow: Sequence[IPNetwork]) -> Target:
    """Check ``url`` and resolve its host once: the first address it may call.

    :class:`UnsafeURL` for a URL that is not http(s) or whose host resolves to an address
    that is not public and not allowed (any such address refuses the name: a name that also
    answers a private address is not called); :class:`Unresolved` for a host that does not
    resolve.
    """
    scheme, host, port, target = split_url(url)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise Unresolved(f"{host} does not resolve: {exc}") from None
        addresses = list(
            dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
        )
        if not addresses:
            raise Unresolved(f"{host} does not resolve")
    for address in addresses:
        reason = _forbidden(address, allow)
        if reason is not None:
            raise UnsafeURL(f"{host} resolves to {reason}" if literal is None else reason)
    return Target(url, scheme, host, port, target, str(addresses[0]))
