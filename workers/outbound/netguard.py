"""The SSRF guard: webhooks reach public addresses only, and exactly the address that was checked.

Subscribers choose their URLs, so without a guard a webhook could be aimed at
the worker's own network: the cloud metadata service on 169.254.169.254, a
database on 10.x, an admin port on 127.0.0.1. Checking the URL before the
request is not enough: the name could resolve to a public address for the
check and to a private one for the connect (DNS rebinding). So the check lives
where the socket is opened, in httpcore's network backend:
:meth:`GuardedBackend.connect_tcp` resolves the name once, checks *every*
address it resolved to, and connects to one of those checked addresses. httpcore
still hands the original hostname to TLS (SNI and certificate verification) and
sends it in the Host header; only the socket uses the IP.

Every new connection is checked; a kept-alive connection from the pool was
checked when it was opened. ``HOOKLINE_ALLOWED_NETWORKS`` lets chosen private
networks through; ``HOOKLINE_ALLOW_PRIVATE_NETWORKS`` lifts the guard (development).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as ResolveTimeout
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import httpcore

from workers.errors import BlockedAddress
from workers.settings import Settings

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
# (host, port) -> the addresses the host resolves to, as text.
Resolver = Callable[[str, int], Sequence[str]]
# getaddrinfo has no timeout of its own: it runs on these threads, and the caller waits for it no
# longer than its connect budget. A lookup that hangs keeps its thread until the system resolver
# gives up, so the pool is bounded; while all are busy, lookups queue, still within their budget.
RESOLVER_THREADS = 8
_resolver_pool = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="resolve")

_PRIVATE = tuple(
    ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")  # fec0: site-local
)
_SHARED = ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
_DOCUMENTATION = tuple(
    ip_network(net) for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
_NAT64 = ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address

# The first class an address falls in names it in the refusal. Anything that
# ipaddress does not call global is refused, whichever class it is in.
_CLASSES: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),
    ("multicast", lambda ip: ip.is_multicast),
    ("private", lambda ip: any(ip in net for net in _PRIVATE)),
    ("shared (CGNAT)", lambda ip: ip in _SHARED),
    ("documentation", lambda ip: any(ip in net for net in _DOCUMENTATION)),
    ("reserved", lambda ip: ip.is_reserved),
    ("non-global", lambda ip: not ip.is_global),
)


def embedded_ipv4(ip: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), or None.

    A connect to ``::ffff:10.0.0.1`` reaches 10.0.0.1, so such an address is
    judged by the IPv4 address inside it.
    """
    if isinstance(ip, IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_class(ip: IPAddress) -> str | None:
    """The refused class ``ip`` is in ("loopback", "private", ...), or None for a global address."""
    target = embedded_ipv4(ip) or ip
    return next((name for name, member in _CLASSES if member(target)), None)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses a webhook may be delivered to."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        return cls(settings.allow_private_networks, settings.allowed_networks)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` may not be connected to (its address class), or None when it may."""
        if self.allow_private:
            return None
        forms = (ip, embedded_ipv4(ip) or ip)
        # A version mismatch is simply "not in": 10.0.0.1 is never in an IPv6 network.
        if any(form in network for form in forms for network in self.allowed_networks):
            return None
        return address_class(ip)


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, opening sockets only to addresses the policy allows."""

    def __init__(
        self,
        policy: AddressPolicy,
        resolver: Resolver = resolve,
        backend: httpcore.NetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._backend = backend or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        addresses = self.checked_addresses(host, port, timeout)
        failures: list[httpcore.ConnectError] = []
        # Like socket.create_connection: each address in turn, within one connect budget.
        for address in addresses:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise httpcore.ConnectTimeout(f"no connection to {host} within {timeout}s")
            try:
                return self._backend.connect_tcp(address, port, remaining, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failures.append(exc)
        raise failures[-1]

    def checked_addresses(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        """The addresses to connect to for ``host``; BlockedAddress if any of them is refused."""
        addresses = [host] if _is_ip_literal(host) else self._resolve(host, port, timeout)
        for address in addresses:
            refused = self._policy.refusal(ip_address(address))
            if refused is not None:
                # The host, not the URL: a path or query string may carry a token.
                shown = host if host == address else f"{host} ({address})"
                raise BlockedAddress(f"refused to deliver to {shown}: {refused} address")
        return addresses

    def _resolve(self, host: str, port: int, timeout: float | None) -> list[str]:
        try:
            return _some(self._lookup(host, port, timeout))
        except (socket.gaierror, UnicodeError) as exc:
            # As httpcore's own backend reports it: http._classify makes it a DnsFailure.
            raise httpcore.ConnectError(f"name resolution failed for {host}: {exc}") from exc

    def _lookup(self, host: str, port: int, timeout: float | None) -> Sequence[str]:
        with contextlib.suppress(ResolveTimeout):
            return _resolver_pool.submit(self._resolver, host, port).result(timeout)
        # Raised outside the except clause, so that it ends the chain: httpcore's pool re-raises the
        # ConnectError above `from None`, and http._classify finds this at the root of the chain.
        raise socket.gaierror(socket.EAI_AGAIN, f"no answer within {timeout:.3g}s")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _some(addresses: Sequence[str]) -> list[str]:
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, "no address")
    return list(addresses)


def _is_ip_literal(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True
