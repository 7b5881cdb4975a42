"""Outbound HTTP that cannot be pointed at our own network: checked on the resolved address.

A URL's host name says nothing about where a connection goes (DNS can answer 127.0.0.1 or the
cloud metadata address 169.254.169.254, and answer differently the second time). So the check
happens at connect time, inside httpcore's network backend: the name is resolved once, every
address it resolves to is checked, and the connection is made to a checked address. Redirects
open new connections and go through the same check.

Use `guarded_transport(policy)` as an httpx client's transport, with `trust_env=False` on the
client so that no proxy from the environment bypasses it.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class AddressRefused(httpcore.ConnectError):
    """The host resolved only to addresses the policy forbids; nothing was connected."""


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses outbound connections may reach.

    Public (globally routable) addresses always; loopback, link-local, private, shared, reserved
    and multicast addresses only with `allow_private`, or when listed in `allowed_networks`
    (CIDRs) or `allowed_hosts` (host names, matched exactly, case-insensitively; or wildcards
    such as `*.corp.example`). `allow_internal` also lets private ranges through (RFC 1918,
    unique-local IPv6) but never loopback, link-local, unspecified, multicast or reserved ones.
    With `only_listed`, nothing but the listed hosts and networks is reachable.
    """

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    allow_internal: bool = False
    only_listed: bool = False

    @classmethod
    def from_lists(
        cls,
        *,
        allow_private: bool = False,
        allow: Iterable[str] = (),
        allow_internal: bool = False,
        only_listed: bool = False,
    ) -> AddressPolicy:
        """A policy from allow-list entries, each a CIDR, an IP address, a host name or a
        wildcard host name."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in (e.strip() for e in allow):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(allow_private, tuple(networks), frozenset(hosts), allow_internal, only_listed)

    def allows_host(self, host: str) -> bool:
        """True when `host` is allow-listed by name (its addresses are then not checked)."""
        name = host.lower().rstrip(".")
        if name in self.allowed_hosts:
            return True
        return any(
            "*" in pattern and fnmatch.fnmatchcase(name, pattern) for pattern in self.allowed_hosts
        )

    def allows(self, address: IPAddress) -> bool:
        """True when a connection to `address` is permitted."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed_networks):
            return True
        if self.only_listed:
            return False
        if self.allow_private or is_public(address):
            return True
        return self.allow_internal and is_internal(address)


def is_internal(address: IPAddress) -> bool:
    """True for private-network unicast addresses (10/8, 172.16/12, 192.168/16, fc00::/7, …)
    that are neither loopback, link-local (cloud metadata), unspecified, multicast nor reserved."""
    return address.is_private and not (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    )


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses only."""
    return address.is_global and not (address.is_multicast or address.is_reserved)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, checks, then connects to a checked address."""

    def __init__(self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None):
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        if not self.policy.allows_host(host):
            addresses = [a for a in addresses if self.policy.allows(a)]
            if not addresses:
                raise AddressRefused(f"refused: {host} resolves only to non-public addresses")
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("refused: unix sockets are not reachable through the guard")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)

    async def _resolve(self, host: str, port: int, limit: float | None) -> list[IPAddress]:
        return await resolve(host, port, limit)


async def resolve(host: str, port: int, limit: float | None) -> list[IPAddress]:
    """Every address `host` resolves to (once, within `limit` seconds), in resolver order;
    httpcore.ConnectTimeout or ConnectError when it cannot be resolved."""
    try:
        with anyio.fail_after(limit):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
    except (OSError, UnicodeError, ValueError) as exc:  # IDNA-encoding a bad name raises too
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    seen: dict[IPAddress, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        # IPv6 scope ids ("fe80::1%eth0") are not part of the address.
        seen[ipaddress.ip_address(str(sockaddr[0]).split("%")[0])] = None
    return list(seen)


def guarded_transport(
    policy: AddressPolicy,
    *,
    ssl_context: ssl.SSLContext | None = None,
    limits: httpx.Limits = DEFAULT_LIMITS,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through `GuardedBackend(policy)`.

    It connects directly (no proxy: a proxy would connect on our behalf, unchecked).
    """
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx takes no network backend; its transport only forwards to `_pool`, so give it ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or ssl.create_default_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(policy),
    )
    return transport


def refused(exc: BaseException) -> bool:
    """True when `exc` (an httpx error) or what caused it is the guard's refusal."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AddressRefused):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
