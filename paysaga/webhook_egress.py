"""Where merchant webhooks may go, and the coarse words a failed delivery is remembered by.

A merchant names the URL its webhooks go to, so without a guard it could make paysaga POST to
anything paysaga reaches (loopback, the cloud's metadata service at 169.254.169.254, the compose
network's databases) and read the error back: a port scanner. In production:

- `PATCH /v1/merchant` takes https URLs only, and refuses a host that is an IP literal outside
  the public internet or a `localhost` name (`webhook_url_refusal`);
- when a delivery connects, the name is resolved once, every address is checked, and the
  connection goes to a checked address (`PublicAddressBackend`): a name that resolves to a
  private address by then (DNS rebinding) is refused before any packet leaves. The request keeps
  the name for its Host header, and TLS checks the certificate against the name (httpcore takes
  the SNI name from the URL, not from the address connected to).

In development every address is allowed (the dev stack and tests deliver to 127.0.0.1), through
the same resolve-then-connect path. A delivery's stored error is one of a few words
(`delivery_error`), never the exception's text.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[list[Address]]]

ADDRESS_NOT_ALLOWED = "address_not_allowed"
NOT_ALLOWED_CODE = "webhook_url_not_allowed"  # the problem+json code of a refused PATCH
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressNotAllowed(httpx.TransportError):
    """The webhook's host is, or resolves to, an address paysaga does not send to."""


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_allowed(address: Address) -> bool:
    """A public unicast address: not private, loopback, link-local, unique-local, multicast,
    reserved, unspecified or shared (carrier-grade NAT), nor an IPv6 form of one of those."""
    inner = embedded_ipv4(address)
    if inner is not None and not address_allowed(inner):
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
    )


def webhook_url_refusal(url: str, production: bool) -> str | None:
    """Why a merchant may not set this webhook URL (None: it may), from the URL alone; a name is
    checked again, by its addresses, each time a delivery connects."""
    if not production:
        return None
    parsed = httpx.URL(url)
    if parsed.scheme != "https":
        return "webhook_url must use https in production"
    host = parsed.host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"webhook_url's host {host} is this machine"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not address_allowed(address):
        return f"webhook_url's host {host} is not a public internet address"
    return None


async def resolve_host(host: str, port: int) -> list[Address]:
    """Every address the system resolver gives for the host (an IP literal: itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    # An IPv6 link-local answer carries its zone ("fe80::1%eth0"): the address is before it.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


class PublicAddressBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend that resolves the host itself, checks every address, then
    connects to a checked one; `allow_any` (development) skips the check, not the path."""

    def __init__(self, allow_any: bool, resolve: Resolve | None = None) -> None:
        self._allow_any = allow_any
        self._resolve = resolve or resolve_host
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:  # socket.gaierror: httpx knows only httpcore's errors
            raise httpcore.ConnectError(f"{host} does not resolve") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        if not self._allow_any and not all(address_allowed(a) for a in addresses):
            raise AddressNotAllowed(ADDRESS_NOT_ALLOWED)
        failure: Exception | None = None
        for address in addresses:  # the checked addresses only, in the resolver's order
            try:
                return await self._network.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressNotAllowed(ADDRESS_NOT_ALLOWED)

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


def webhook_client(production: bool, resolve: Resolve | None = None) -> httpx.AsyncClient:
    """The HTTP client of merchant webhooks: every connection through `PublicAddressBackend`,
    no proxy from the environment (it would connect for us, unchecked), no redirects."""
    transport = httpx.AsyncHTTPTransport()
    # httpx builds its pool without a network backend of our choosing: the same pool, with one.
    # httpcore's own pool limit (10) would make lanes wait for each other: the dispatcher bounds
    # its sends itself (`webhook_delivery_concurrency`); keep-alive as httpx's defaults.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=None,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=PublicAddressBackend(allow_any=not production, resolve=resolve),
    )
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what caused it, and so on down (into exception groups too)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def delivery_error(exc: httpx.HTTPError) -> str:
    """The coarse word a failed request is stored and shown by: its kind, not its text."""
    causes = list(_causes(exc))
    if any(isinstance(c, AddressNotAllowed) for c in causes):
        return ADDRESS_NOT_ALLOWED
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return "invalid_url"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return "tls_error"
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "dns_error"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection_refused"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError | httpx.TooManyRedirects):
        return "invalid_response"
    return "connection_error"
