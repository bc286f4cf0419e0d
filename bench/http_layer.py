"""`python -m bench.http_layer`: the API's own CPU per game call, without the engine or a socket.

The app (its middleware, routing, key check, validation, answer) is called in-process as uvicorn
would call it, with a wallet engine that answers at once: the CPU per request is the HTTP
layer's alone, whatever the box's load (process CPU time, every thread counted). uvicorn's
parsing and the engine's batches come on top in a real process (`bench.api_cpu`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import MutableMapping
from typing import Any

from api.deps import KeyCache
from api.main import create_app
from domain.merchants import DEV_MERCHANT_ID
from paysaga.settings import DEV_MERCHANT_KEY, Settings
from wallet.models import Decision

BET = {
    "customer_id": "cus_1",
    "game_provider": "bench-provider",
    "transaction_id": "t1",
    "game_id": "g",
    "round_id": "r1",
    "amount": 100,
    "currency": "EUR",
}
CREDIT = {**BET, "type": "promo_win"}  # /v1/wallet/credits: still a FastAPI route, to compare
ANSWER = {
    **{k: BET[k] for k in ("transaction_id", "amount", "currency", "customer_id", "round_id")},
    "type": "bet",
    "game_provider": BET["game_provider"],
    "cash_part": 100,
    "bonus_part": 0,
    "balance": {"cash": 900, "bonus": 0, "total": 900},
    "bet_transaction_id": None,
}


class AnsweringEngine:
    """Accepts every call at once."""

    async def submit(self, _call: Any) -> Decision:
        return Decision("accepted", ANSWER)


class MerchantBooks:
    merchant_id = DEV_MERCHANT_ID

    async def get_customer(self, customer_id: str) -> object:
        return object()  # a credit asks whether its customer exists


class Store:
    """What a FastAPI route's dependencies ask of the store for a game call."""

    def for_merchant(self, _merchant_id: str) -> MerchantBooks:
        return MerchantBooks()


class Services:
    """What a game call reads of the app's services."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.key_cache = KeyCache()
        self.wallet = AnsweringEngine()
        self.store = Store()


async def cpu_us_per_request(path: str, requests: int) -> tuple[int, float]:
    settings = Settings(environment="development")  # the dev keys: no secret of a real one
    app = create_app(settings)
    app.state.services = Services(settings)
    body = json.dumps(CREDIT if path.endswith("/credits") else BET).encode()
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"authorization", f"Bearer {DEV_MERCHANT_KEY}".encode()),
    ]
    statuses: list[int] = []

    async def one() -> None:
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                await asyncio.Event().wait()  # the client stays; never reached
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": list(headers),
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        await app(scope, receive, send)

    for _ in range(200):  # warm-up: imports, caches
        await one()
    started = time.process_time()
    for _ in range(requests):
        await one()
    elapsed = time.process_time() - started
    return statuses[-1], 1e6 * elapsed / requests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_layer", description=__doc__)
    parser.add_argument("--path", default="/v1/wallet/bets")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args(argv)
    status, cpu_us = asyncio.run(cpu_us_per_request(args.path, args.requests))
    print(json.dumps({"path": args.path, "status": status, "cpu_us_per_request": round(cpu_us, 1)}))


if __name__ == "__main__":
    main()
