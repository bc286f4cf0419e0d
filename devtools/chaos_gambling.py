"""`make chaos`'s players watched by the responsible-gambling rules (README, "Responsible
gambling"): one self-excluded after funding its wallet, one with a day's deposit and loss limits.

Through the faults, both keep depositing and betting at random moments; the limited one also
wins now and then. After the load: no deposit or bet of the excluded player was taken, and the
limited one's succeeded deposits and its losses (bets minus their wins, from the wallet's own
records) are within its limits.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from devtools.chaos_findings import Findings
from paysaga.database import open_pool

DEPOSIT_LIMIT = 12_000  # a day's, EUR minor units
LOSS_LIMIT = 3_000
FUNDS = 5_000  # the excluded player's wallet, funded before its exclusion
GAME = "chaos-slots"


@dataclass
class GamblingLoad:
    """The two players, and what the API answered them."""

    excluded: str = ""
    limited: str = ""
    answers: Counter[str] = field(default_factory=Counter)
    taken_from_excluded: list[str] = field(default_factory=list)

    async def open(self, api: httpx.AsyncClient, load: Any) -> None:
        """Create both players: fund the first, then exclude it; limit the second."""
        self.excluded = await _customer(api, "excluded")
        self.limited = await _customer(api, "limited")
        funding = await load.submit(
            "/v1/deposits",
            {
                "customer_id": self.excluded,
                "amount": FUNDS,
                "currency": "EUR",
                "payment_method": "pm_ok",
            },
        )
        if funding is None:
            raise RuntimeError("the excluded player's funding deposit was refused")
        await _answered(api, "put", f"/v1/customers/{self.limited}/limits", _limits(), expect=200)

    async def exclude(self, api: httpx.AsyncClient) -> None:
        """Once its funding deposit succeeded: the player excludes itself for 30 days."""
        await _answered(
            api, "post", f"/v1/customers/{self.excluded}/self-exclusion", {"days": 30}, expect=200
        )

    async def run(self, api: httpx.AsyncClient, load: Any, duration: float) -> None:
        """Deposits and bets of both players at random moments during the load."""
        started = time.monotonic()
        while time.monotonic() - started < duration:
            await asyncio.sleep(random.uniform(0.2, 0.8))
            amount = random.randint(500, 4_000)
            for player in (self.excluded, self.limited):
                body = {
                    "customer_id": player,
                    "amount": amount,
                    "currency": "EUR",
                    "payment_method": "pm_ok",
                }
                payment_id = await load.submit("/v1/deposits", body)
                if player == self.excluded and payment_id is not None:
                    self.taken_from_excluded.append(payment_id)
            await self._bet(api, self.excluded, random.randint(100, 1_500))
            await self._bet(api, self.limited, random.randint(100, 1_500))

    async def _bet(self, api: httpx.AsyncClient, player: str, amount: int) -> None:
        bet_id = f"chaos-bet-{uuid.uuid4().hex[:12]}"
        round_id = f"chaos-round-{uuid.uuid4().hex[:8]}"
        body = {
            "customer_id": player,
            "game_provider": GAME,
            "transaction_id": bet_id,
            "game_id": "slots",
            "round_id": round_id,
            "amount": amount,
            "currency": "EUR",
        }
        answer = await _wallet(api, "/v1/wallet/bets", body)
        who = "excluded" if player == self.excluded else "limited"
        self.answers[f"{who} bet {answer}"] += 1
        if player == self.excluded and answer == "200":
            self.taken_from_excluded.append(bet_id)
        if answer == "200" and random.random() < 0.5:
            win = {
                "customer_id": player,
                "game_provider": GAME,
                "transaction_id": f"{bet_id}-win",
                "bet_transaction_id": bet_id,
                "amount": random.randint(0, amount * 2),
                "round_closed": True,
            }
            self.answers[f"{who} win {await _wallet(api, '/v1/wallet/wins', win)}"] += 1

    async def check(
        self, database_url: str, final: dict[str, dict[str, Any]], findings: Findings
    ) -> None:
        """No deposit or bet of the excluded player; the limited one within its limits."""
        findings.checking(
            "taken from a self-excluded player",
            "deposits past a deposit limit",
            "losses past a loss limit",
        )
        for taken in self.taken_from_excluded:
            findings.found("taken from a self-excluded player", taken)
        deposited = sum(
            int(payment.get("amount", 0))
            for payment_id, payment in final.items()
            if payment_id.startswith("dep_")
            and payment.get("customer_id") == self.limited
            and payment["status"] == "succeeded"
        )
        if deposited > DEPOSIT_LIMIT:
            findings.found("deposits past a deposit limit", f"{self.limited} ({deposited})")
        pool = await open_pool(database_url, 1, 2)
        try:
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT COALESCE(SUM(amount - won), 0) FROM wallet_bets"
                    " WHERE customer_id = %s AND status IN ('open', 'settled')",
                    (self.limited,),
                )
                row = await cur.fetchone()
        finally:
            await pool.close()
        lost = int(row[0]) if row else 0
        if lost > LOSS_LIMIT:
            findings.found("losses past a loss limit", f"{self.limited} ({lost})")

    def summary(self) -> dict[str, int]:
        return dict(sorted(self.answers.items()))


def _limits() -> dict[str, Any]:
    return {
        "currency": "EUR",
        "deposit": {"day": DEPOSIT_LIMIT, "week": None, "month": None},
        "loss": {"day": LOSS_LIMIT, "week": None, "month": None},
    }


async def _customer(api: httpx.AsyncClient, name: str) -> str:
    body = {
        "external_id": f"chaos-{name}-{uuid.uuid4().hex[:6]}",
        "full_name": f"Player {name}",
        "birth_date": "1990-01-01",
        "country": "DE",
    }
    answer = await _answered(api, "post", "/v1/customers", body, expect=201)
    return str(answer["id"])


async def _answered(
    api: httpx.AsyncClient, method: str, path: str, body: dict[str, Any], expect: int
) -> dict[str, Any]:
    """Send until answered `expect` (the stack may be restarting a process); its body."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            response = await api.request(method, path, json=body)
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == expect:
            answer: dict[str, Any] = response.json()
            return answer
        if response is not None and response.status_code < 500:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{method} {path}: no answer")


async def _wallet(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    """A wallet call, sent again (same transaction id) until answered: its status and code."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            response = await api.post(path, json=body)
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code < 500:
            if response.status_code == 200:
                return "200"
            return f"{response.status_code} {response.json().get('code')}"
        await asyncio.sleep(0.3)
    return "no answer"
