"""Where merchant webhooks may go: in production never to a loopback, private or link-local
address, however the name resolves when the dispatcher connects (DNS rebinding); in development
anywhere. A delivery refused or failed keeps a coarse error only, never the connection's words."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest

from devtools.stack import free_port
from paysaga.store import Store
from tests.events.conftest import (
    delivery_states,
    dispatching,
    emit,
    eventually,
    fast_settings,
    new_merchant,
)
from tests.events.receiver import MerchantEndpoint

pytestmark = pytest.mark.asyncio(loop_scope="session")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def resolver(names: dict[str, list[str]]) -> Callable[[str, int], Awaitable[list[Address]]]:
    """A DNS of the test's own: each name to the addresses given, as the dispatcher resolves."""

    async def resolve(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address(a) for a in names[host]]

    return resolve


async def first_attempt(store: Store, merchant_id: str) -> dict[str, Any]:
    """The merchant's first delivery once it has been tried at least once."""

    async def tried() -> dict[str, Any] | None:
        states = await delivery_states(store, merchant_id)
        return states[0] if states and states[0]["attempts"] >= 1 else None

    state: dict[str, Any] = await eventually(tried)
    return state


async def forget(store: Store, *merchant_ids: str) -> None:
    """The merchants' endpoints removed, so that later tests' dispatchers stop retrying them."""
    for merchant_id in merchant_ids:
        await store.set_merchant_webhook(merchant_id, None, None)


def on_name(url: str, name: str) -> str:
    """The URL with its host replaced by `name` (port and path kept)."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{name}:{parts.port}").geturl()


async def test_a_name_of_a_loopback_address_is_not_sent_to_in_production(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    """`localhost` is a name, not an address: only the connect-time check can refuse it."""
    merchant_id = await new_merchant(store, on_name(endpoint.url, "localhost"))
    await emit(store, merchant_id, 1)

    async with dispatching(store, fast_settings(environment="production")):
        state = await first_attempt(store, merchant_id)
    await forget(store, merchant_id)

    assert (state["status"], state["last_error"]) == ("pending", "address_not_allowed")
    assert endpoint.received() == []


async def test_a_name_resolving_to_a_private_address_when_sent_is_not_sent_to_in_production(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    """The name looked public when the merchant set it; at delivery it resolves to 10.x (and,
    for another merchant, to a public address and a private one): refused before any connect."""
    rebound = await new_merchant(store, on_name(endpoint.url, "hooks.rebound.example"))
    mixed = await new_merchant(store, on_name(endpoint.url, "hooks.mixed.example"))
    await emit(store, rebound, 1)
    await emit(store, mixed, 1)
    names = {
        "hooks.rebound.example": ["10.20.30.40"],
        "hooks.mixed.example": ["93.184.216.34", "169.254.169.254"],
    }

    settings = fast_settings(environment="production")
    async with dispatching(store, settings, resolve=resolver(names)):
        states = [await first_attempt(store, m) for m in (rebound, mixed)]
    await forget(store, rebound, mixed)

    assert [(s["status"], s["last_error"]) for s in states] == [
        ("pending", "address_not_allowed")
    ] * 2


async def test_development_sends_to_the_address_resolved_with_the_name_as_host(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    merchant_id = await new_merchant(store, on_name(endpoint.url, "hooks.merchant.example"))
    await emit(store, merchant_id, 1)
    names = {"hooks.merchant.example": ["127.0.0.1"]}

    async with dispatching(store, fast_settings(), resolve=resolver(names)):
        state = await first_attempt(store, merchant_id)

    assert (state["status"], state["last_error"]) == ("delivered", None)
    [request] = endpoint.received()
    assert request.host == f"hooks.merchant.example:{urlsplit(endpoint.url).port}"


@asynccontextmanager
async def garbage_server() -> AsyncIterator[str]:
    """A TCP server on loopback that answers anything with bytes that are not HTTP."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")  # the request read whole, then garbage
        length = [line for line in head.lower().split(b"\r\n") if b"content-length" in line]
        await reader.readexactly(int(length[0].split(b":")[1]) if length else 0)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        server.close()
        await server.wait_closed()


async def test_failed_deliveries_keep_a_coarse_error_never_the_connections_words(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    """What a merchant (or anyone who sets a URL) reads back tells a failure's kind only, not
    what a port answered: the endpoint is no port scanner."""
    slow = MerchantEndpoint(delay_seconds=5)
    slow.start()
    endpoint.answer(1, *[500] * 1000)
    try:
        async with garbage_server() as garbage:
            urls = {
                "connection_refused": f"http://127.0.0.1:{free_port()}/hooks",
                "http_500": endpoint.url,
                "timeout": slow.url,
                "invalid_response": garbage,
                "tls_error": endpoint.url.replace("http://", "https://"),
                "invalid_url": endpoint.url + "/\x14",
            }
            merchants = {error: await new_merchant(store, url) for error, url in urls.items()}
            for merchant_id in merchants.values():
                await emit(store, merchant_id, 1)
            settings = fast_settings(webhook_delivery_timeout_seconds=0.5)
            async with dispatching(store, settings):
                errors = {e: (await first_attempt(store, m)) for e, m in merchants.items()}
            await forget(store, *merchants.values())
    finally:
        slow.stop()

    assert {e: s["last_error"] for e, s in errors.items()} == {e: e for e in urls}
    assert {s["status"] for s in errors.values()} == {"pending"}


async def test_a_name_that_does_not_resolve_is_a_failed_attempt(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    merchant_id = await new_merchant(store, on_name(endpoint.url, "hooks.gone.example"))
    await emit(store, merchant_id, 1)

    async def no_such_name(host: str, port: int) -> list[Address]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with dispatching(store, fast_settings(environment="production"), resolve=no_such_name):
        state = await first_attempt(store, merchant_id)
    await forget(store, merchant_id)

    assert (state["status"], state["last_error"]) == ("pending", "dns_error")
