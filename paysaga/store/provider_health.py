"""The providers' circuit breakers in PostgreSQL: shared by every worker and API process.

A call asks `admit` first, with its idempotency key, under a lock on that key. A key already
sent to this account (`provider_calls`) goes again whatever the breaker says: it may have landed
(a retry, a resend, a saga reset from the Temporal UI whose new run asks again as a first
attempt). A key sent to another account, which has not answered that it certainly did nothing
with it, is refused unsent: the saga must not charge twice. Otherwise the breaker decides: a
closed one lets it through; an open one whose time is up gives it one of the half-open probe
leases, taken by a conditional UPDATE so that however many workers ask at once, at most
`probe_calls` probes go out; a call let through is marked sent before `admit` returns. The
call's outcome comes back to `record`, which applies the rules of providers/health.py under the
row's lock (and marks the key refused by an account that certainly did nothing with it). A change of state is logged
and announced as `provider.health_changed` in the feed of every merchant that has the account: a
merchant's own account (`pa_...`) in its merchant's only, an installation's provider in all.
"""

from __future__ import annotations

import dataclasses
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
    """Whether a call may go to the account now.

    `probe`: it holds a half-open lease. Not admitted: `sent_elsewhere` names the account its
    key was sent to (it must go there, never here), else the breaker is open for
    `seconds_left_open` more (at least a moment). `turned_half_open`: this call's lease moved the
    breaker from open to half-open.
    """

    admitted: bool
    probe: bool = False
    seconds_left_open: float = 0.0
    sent_elsewhere: str | None = None
    turned_half_open: bool = False
    # Skipped, but sent here before and refused unprocessed: a resend that left no record.
    refused_here: bool = False


@dataclass(frozen=True)
class Recorded:
    """The breaker's state before and after one call's outcome was counted."""

    previous: BreakerState
    state: BreakerState

    @property
    def changed(self) -> bool:
        return self.previous != self.state


# The key's row is locked (by an advisory lock on the key, since it may not exist yet) for the
# whole decision: two attempts of one call (a stale one of a reset run, say) decide one at a time.
_LOCK_KEY = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
_SENT_TO = "SELECT provider_account, state FROM provider_calls WHERE idempotency_key = %s"
_MARK_SENT = """
INSERT INTO provider_calls (idempotency_key, provider_account, state) VALUES (%s, %s, 'sent')
ON CONFLICT (idempotency_key) DO UPDATE
SET provider_account = excluded.provider_account, state = 'sent', updated_at = now()
"""
_MARK_REFUSED = """
UPDATE provider_calls SET state = 'refused', updated_at = now()
WHERE idempotency_key = %s AND provider_account = %s AND state = 'sent'
"""
# A decision waits this long at most for the database: past it the call is not sent (and is
# retried), well within the provider call's own time-out.
DECISION_TIMEOUT_SECONDS = 5.0

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


# Whose feed hears of an account's breaker: a merchant's own account (`pa_...`), its merchant's
# only; an installation's provider (a built-in account of every merchant), every merchant's.
_FEEDS_OF_ACCOUNT = """
SELECT merchant_id FROM provider_accounts WHERE id = %(account)s AND NOT builtin
UNION
SELECT id FROM merchants WHERE NOT EXISTS
    (SELECT 1 FROM provider_accounts WHERE id = %(account)s AND NOT builtin)
ORDER BY 1
"""


class ProviderBreakers(Tables):
    """Each provider account's breaker, as `provider_health` keeps it."""

    def __init__(self, pool: Any, policy: BreakerPolicy) -> None:
        super().__init__(pool)
        self.policy = policy

    async def admit(self, account: str, idempotency_key: str) -> Admission:
        """Whether the call under `idempotency_key` may go to `account` now; if so, it is
        marked sent there before this returns (see the module doc)."""
        async with (
            self.pool.connection(timeout=DECISION_TIMEOUT_SECONDS) as conn,
            conn.transaction(),
        ):
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_LOCK_KEY, (idempotency_key,))
            await cur.execute(_SENT_TO, (idempotency_key,))
            sent = await cur.fetchone()
            if sent is not None and sent["state"] == "sent":
                if sent["provider_account"] != account:
                    return Admission(False, sent_elsewhere=sent["provider_account"])
                # Sent here before (a retry, a resend, a reset run): it may have landed, so it
                # goes again under its key, whatever the breaker says.
                return Admission(True)
            admission = await self._breaker_admits(conn, account)
            if admission.admitted:
                await cur.execute(_MARK_SENT, (idempotency_key, account))
            elif sent is not None and sent["provider_account"] == account:
                admission = dataclasses.replace(admission, refused_here=True)
        return admission

    async def sent_to(self, idempotency_key: str) -> str | None:
        """The account the call under `idempotency_key` was last sent to, if it was sent."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_SENT_TO, (idempotency_key,))
            row = await cur.fetchone()
        return str(row[0]) if row is not None and row[1] == "sent" else None

    async def _breaker_admits(self, conn: AsyncConnection[Any], account: str) -> Admission:
        """The breaker's answer alone, in the caller's transaction."""
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT state, opened_at, probes_leased_at, now() AS now FROM provider_health"
            " WHERE provider_account = %s",
            (account,),
        )
        row = await cur.fetchone()
        if row is None or row["state"] == BreakerState.closed:
            return Admission(True)
        lease = {
            "account": account,
            "open": self._open_interval(),
            "probes": self.policy.probe_calls,
        }
        await cur.execute(_TAKE_PROBE_LEASE, lease)
        taken = await cur.fetchone()
        if taken is not None:
            turned = taken["was"] == BreakerState.open
            if turned:
                await self._announce_in(conn, account, BreakerState.half_open)
            return Admission(True, probe=True, turned_half_open=turned)
        since = row["opened_at"] if row["state"] == BreakerState.open else row["probes_leased_at"]
        left = seconds_left_open(since or row["now"], row["now"], self.policy)
        return Admission(False, seconds_left_open=max(left, 1.0))

    async def admit_unkeyed(self, account: str) -> Admission:
        """The breaker's answer for a call that never fails over (a deposit's compensating
        refund): nothing is marked."""
        async with (
            self.pool.connection(timeout=DECISION_TIMEOUT_SECONDS) as conn,
            conn.transaction(),
        ):
            return await self._breaker_admits(conn, account)

    async def record(
        self,
        account: str,
        mark: str,
        *,
        probe: bool,
        refused_key: str | None = None,
    ) -> Recorded:
        """Count one call's outcome (`mark`); open, close or keep the breaker. `refused_key`:
        the call's key, which the account certainly did nothing with (another may take it)."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            if refused_key is not None:
                await cur.execute(_MARK_REFUSED, (refused_key, account))
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
            previous = BreakerState(row.state)
            state, recent, answered = after_call(
                previous, row.recent, row.probes_answered, mark, probe, self.policy
            )
            changed = state != previous
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
        return Recorded(previous, state)

    async def accounts_called(self) -> list[str]:
        """Every account whose breaker has counted a call."""
        rows = await self._all(
            ProviderHealthRow, "SELECT * FROM provider_health ORDER BY provider_account", ()
        )
        return [row.provider_account for row in rows]

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
        cur = await conn.execute(_FEEDS_OF_ACCOUNT, {"account": account})
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
