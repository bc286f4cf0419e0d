"""The providers' circuit breakers in PostgreSQL: shared by every worker and API process.

A call asks `admit` first: a closed breaker lets it through; an open one whose time is up gives
it one of the half-open probe leases, taken by a conditional UPDATE so that however many workers
ask at once, at most `probe_calls` probes go out. The call's outcome comes back to `record`,
which applies the rules of providers/health.py under the row's lock. A change of state is logged
and announced as `provider.health_changed` in every merchant's feed (an account is
installation-wide today).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from paysaga.settings import Settings
from paysaga.store.events import append_event
from paysaga.store.sql import TableRow, Tables
from providers.health import (
    BreakerPolicy,
    BreakerState,
    Health,
    after_call,
    health,
    seconds_left_open,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderHealthRow(TableRow):
    """A row of `provider_health`."""

    provider_account: str
    state: str
    recent: str
    opened_at: datetime | None
    probes_leased: int
    probes_answered: int


@dataclass(frozen=True)
class Admission:
    """Whether a call may go to the account: `probe` if it holds a half-open lease; if not
    admitted, how long the breaker stays open (at least a moment)."""

    admitted: bool
    probe: bool = False
    seconds_left_open: float = 0.0


# Take a probe lease: an open breaker whose time is up turns half-open with the first lease; a
# half-open one gives leases until `probe_calls` are out, or again once they are stale (a probe
# whose worker died never reports: after another open period its lease is given back).
_TAKE_PROBE_LEASE = """
UPDATE provider_health AS breaker SET
    state = 'half_open',
    probes_leased = CASE WHEN state = 'open' OR probes_leased_at <= now() - %(open)s
        THEN 1 ELSE probes_leased + 1 END,
    probes_answered = CASE WHEN state = 'open' OR probes_leased_at <= now() - %(open)s
        THEN 0 ELSE probes_answered END,
    probes_leased_at = CASE WHEN state = 'open' OR probes_leased_at <= now() - %(open)s
        THEN now() ELSE probes_leased_at END,
    updated_at = now()
FROM (SELECT provider_account AS locked, state AS was FROM provider_health
      WHERE provider_account = %(account)s FOR UPDATE) AS before
WHERE breaker.provider_account = before.locked AND (
    (state = 'open' AND opened_at <= now() - %(open)s)
    OR (state = 'half_open'
        AND (probes_leased < %(probes)s OR probes_leased_at <= now() - %(open)s)))
RETURNING before.was
"""


class ProviderBreakers(Tables):
    """Each provider account's breaker, as `provider_health` keeps it."""

    def __init__(self, pool: Any, policy: BreakerPolicy) -> None:
        super().__init__(pool)
        self.policy = policy

    async def admit(self, account: str) -> Admission:
        """Whether a call may go to `account` now (see the module doc)."""
        row = await self._fetch_one(
            "SELECT state, opened_at, probes_leased_at, now() AS now FROM provider_health"
            " WHERE provider_account = %s",
            (account,),
        )
        if row is None or row["state"] == BreakerState.closed:
            return Admission(True)
        if await self._take_probe_lease(account):
            return Admission(True, probe=True)
        since = row["opened_at"] if row["state"] == BreakerState.open else row["probes_leased_at"]
        left = seconds_left_open(since or row["now"], row["now"], self.policy)
        return Admission(False, seconds_left_open=max(left, 1.0))

    async def _take_probe_lease(self, account: str) -> bool:
        """Whether a half-open probe lease was ours; the first one turns the breaker half-open,
        announced in the same transaction."""
        lease = {
            "account": account,
            "open": self._open_interval(),
            "probes": self.policy.probe_calls,
        }
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_TAKE_PROBE_LEASE, lease)
            taken = await cur.fetchone()
            if taken is not None and taken["was"] == BreakerState.open:
                await self._announce_in(conn, account, BreakerState.half_open)
        return taken is not None

    async def record(self, account: str, mark: str, *, probe: bool) -> BreakerState:
        """Count one call's outcome (`mark`); open, close or keep the breaker. Its new state."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "INSERT INTO provider_health (provider_account) VALUES (%s)"
                " ON CONFLICT (provider_account) DO NOTHING",
                (account,),
            )
            await cur.execute(
                "SELECT * FROM provider_health WHERE provider_account = %s FOR UPDATE", (account,)
            )
            found = await cur.fetchone()
            assert found is not None
            row = ProviderHealthRow.from_row(found)
            state, recent, answered = after_call(
                BreakerState(row.state), row.recent, row.probes_answered, mark, probe, self.policy
            )
            changed = state != row.state
            await cur.execute(
                "UPDATE provider_health SET state = %s, recent = %s, probes_answered = %s,"
                " opened_at = CASE WHEN %s THEN now() WHEN %s THEN NULL ELSE opened_at END,"
                " updated_at = now() WHERE provider_account = %s",
                (
                    state,
                    recent,
                    answered,
                    changed and state == BreakerState.open,
                    state == BreakerState.closed,
                    account,
                ),
            )
            if changed:
                await self._announce_in(conn, account, state)
        return state

    async def health_of(self, accounts: list[str]) -> dict[str, Health]:
        """Each account's health as shown (a closed, empty breaker for one never called)."""
        rows = await self._all(
            ProviderHealthRow,
            "SELECT * FROM provider_health WHERE provider_account = ANY(%s)",
            (accounts,),
        )
        now = await self._now()
        by_account = {row.provider_account: row for row in rows}
        shown = {}
        for account in accounts:
            row = by_account.get(account)
            if row is None:
                shown[account] = health(BreakerState.closed, "", None, now, self.policy)
            else:
                state = BreakerState(row.state)
                shown[account] = health(state, row.recent, row.opened_at, now, self.policy)
        return shown

    async def _now(self) -> datetime:
        row = await self._fetch_one("SELECT now() AS now", ())
        assert row is not None
        now: datetime = row["now"]
        return now

    def _open_interval(self) -> timedelta:
        return timedelta(seconds=self.policy.open_seconds)

    async def _announce_in(
        self, conn: AsyncConnection[Any], account: str, state: BreakerState
    ) -> None:
        """Log the change and write `provider.health_changed` to every merchant's feed, in the
        transaction that made it."""
        log.warning("provider %s breaker is now %s", account, state)
        shown = (await self._health_in(conn, account)) or {}
        cur = await conn.execute("SELECT id FROM merchants ORDER BY id")
        for (merchant_id,) in await cur.fetchall():
            await append_event(
                conn, merchant_id, "provider.health_changed", "provider", account, shown
            )

    async def _health_in(self, conn: AsyncConnection[Any], account: str) -> dict[str, Any] | None:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT *, now() AS now FROM provider_health WHERE provider_account = %s", (account,)
        )
        found = await cur.fetchone()
        if found is None:
            return None
        row = ProviderHealthRow.from_row(found)
        shown = health(
            BreakerState(row.state), row.recent, row.opened_at, found["now"], self.policy
        )
        return {"id": account, "name": account, "health": health_object(shown)}


def health_object(shown: Health) -> dict[str, Any]:
    """An account's `health` as the API and the events show it."""
    return {
        "state": shown.state.value,
        "failure_rate": shown.failure_rate,
        "calls": shown.calls,
        "opened_at": shown.opened_at.isoformat() if shown.opened_at else None,
    }


def breaker_policy(settings: Settings) -> BreakerPolicy:
    """The breakers' numbers as the settings give them."""
    return BreakerPolicy(
        window_calls=settings.breaker_window_calls,
        minimum_calls=settings.breaker_minimum_calls,
        failure_rate_to_open=settings.breaker_failure_rate,
        open_seconds=settings.breaker_open_seconds,
        probe_calls=settings.breaker_probe_calls,
    )
