"""Reconciliation: a provider's settlement report against the ledger's provider clearing entries.

For each payment (the reference on the provider's lines and the prefix of our ledger keys) and
currency, the provider's net (charges in, payouts and refunds out) must equal the ledger's net on
that provider's clearing account. A refund's keys start with its deposit's id, as the provider's
refund lines name the deposit: they net together. Payments still in flight (or with a refund in
flight) are skipped: their books may lag.

Runs go by settlement window. A run reads the provider's lines settled in (since, until], where
`since` is the end of the provider's last recorded window, adds them to the running net per
payment (`reconciliation_provider_nets`) and checks the payments they touched against the
ledger, by reference, whenever the ledger booked them. A payment the ledger booked whose lines
have not come is not a mismatch until it is overdue: its clearing transaction is checked once it
is `grace` old (booked in (since - grace, until - grace]), so a settlement up to `grace` later
than the booking matches. Any later ledger transaction of the payment is checked the same way.
A payment still in flight stays to be checked by the next runs until it ends.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.payments import PaymentKind, PaymentStatus
from paysaga.store.pages import Window, keyset_query
from paysaga.store.sql import TableRow
from providers.base import SETTLEMENT_DIRECTIONS, SettlementLine

# Each kind of settlement line moves money in or out of the provider clearing account.
SIGN = SETTLEMENT_DIRECTIONS


@dataclass(frozen=True)
class Mismatch:
    provider: str
    reference: str
    currency: str
    provider_amount: int
    ledger_amount: int


@dataclass(frozen=True)
class SettlementWindow:
    """The settlement times (since, until] a run covers; `since` None: from the start."""

    provider: str
    since: datetime | None
    until: datetime


@dataclass(frozen=True)
class RecordedRun(TableRow):
    """What a recorded run of `reconciliation_runs` answers when its key comes again."""

    provider: str
    lines_checked: int
    mismatches: int
    window_start: datetime | None
    window_end: datetime | None


@dataclass(frozen=True)
class RecordedMismatch(TableRow):
    """A row of `reconciliation_mismatches`, with the key of the run that found it."""

    id: int
    provider: str
    reference: str
    currency: str
    provider_amount: int
    ledger_amount: int
    found_at: datetime
    run_key: str


class WindowMoved(Exception):
    """Another run recorded a window of the provider since this one was opened: open it again."""


def provider_nets(lines: list[SettlementLine]) -> dict[tuple[str, str], int]:
    """Net money the provider moved for each (payment, currency): charges in, the rest out."""
    nets: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        nets[(line.reference, line.currency)] += SIGN[line.kind] * line.amount
    return dict(nets)


def find_mismatches(
    provider: str,
    provider_side: dict[tuple[str, str], int],
    ledger_side: dict[tuple[str, str], int],
    in_flight: set[str],
) -> list[Mismatch]:
    """Every (payment, currency) whose two nets differ, in a stable order."""
    return [
        Mismatch(provider, reference, currency, provider_side.get(key, 0), ledger_side.get(key, 0))
        for key in sorted(provider_side.keys() | ledger_side.keys())
        for reference, currency in [key]
        if reference not in in_flight and provider_side.get(key, 0) != ledger_side.get(key, 0)
    ]


class ReconciliationBooks:
    """The SQL side: the ledger's clearing nets, payments in flight, and the recorded results."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def ledger_nets(self, provider: str) -> dict[tuple[str, str], int]:
        """Net money on the provider's clearing accounts per (payment, currency), provider-signed."""
        async with self._pool.connection() as conn:
            return await _ledger_nets(conn, provider, None)

    async def last_window_end(self, provider: str) -> datetime | None:
        """Where the provider's next window starts: the end of its last recorded one."""
        async with self._pool.connection() as conn:
            return await _last_window_end(conn, provider)

    async def record_window(
        self, run_key: str, window: SettlementWindow, lines: list[SettlementLine], grace: timedelta
    ) -> int:
        """Add a window's lines to the running nets, check what is due, record the run once.

        The number of mismatches the run found (a retry of a recorded run answers the first one).
        """
        provider = window.provider
        async with self._pool.connection() as conn, conn.transaction():
            # One run of a provider at a time, so that windows follow each other exactly.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"reconciliation:{provider}",)
            )
            cur = await conn.execute(
                "SELECT mismatches FROM reconciliation_runs WHERE run_key = %s", (run_key,)
            )
            if (recorded := await cur.fetchone()) is not None:
                return int(recorded[0])
            if await _last_window_end(conn, provider) != window.since:
                raise WindowMoved(f"{provider}: a window was recorded since {window.since}")
            await _add_provider_nets(conn, provider, provider_nets(lines))
            await _mark_overdue(conn, window, grace)
            unbooked = await _unbooked_disputes(conn, provider, lines)
            mismatches = await _check_due(conn, provider, unbooked)
            await _insert_run(conn, run_key, provider, len(lines), mismatches, window)
            return len(mismatches)

    async def recorded_run(self, run_key: str) -> RecordedRun | None:
        """A run already recorded under this key: its window, lines and mismatches."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT provider, lines_checked, mismatches, window_start, window_end"
                " FROM reconciliation_runs WHERE run_key = %s",
                (run_key,),
            )
            row = await cur.fetchone()
        return None if row is None else RecordedRun.from_row(row)

    async def record_run(
        self, run_key: str, provider: str, lines_checked: int, mismatches: list[Mismatch]
    ) -> int:
        """Record a run and its mismatches once per run key; the number of mismatches recorded."""
        async with self._pool.connection() as conn, conn.transaction():
            return await _insert_run(conn, run_key, provider, lines_checked, mismatches, None)

    async def list_mismatches(
        self, merchant_id: str, provider: str | None, window: Window[int]
    ) -> tuple[list[RecordedMismatch], bool]:
        """A merchant's recorded mismatches (those of its payments), newest first, with the run
        that found them. A provider's line for no payment of ours is nobody's: the platform's
        operators find it in `reconciliation_mismatches`."""
        page = keyset_query(
            window,
            newest_first=True,
            key="m.id",
            cursor_key="%(cursor)s",
            order_by=("m.id",),
            created="m.found_at",
        )
        where = ["(%(provider)s::text IS NULL OR m.provider = %(provider)s)", *page.conditions]
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT m.id, m.provider, m.reference, m.currency, m.provider_amount,"
                " m.ledger_amount, m.found_at, r.run_key"
                " FROM reconciliation_mismatches m JOIN reconciliation_runs r ON r.id = m.run_id"
                " JOIN payments p ON p.id = m.reference AND p.merchant_id = %(merchant_id)s"
                f" WHERE {' AND '.join(where)} ORDER BY {page.order_by} LIMIT %(limit)s",
                {**page.params, "merchant_id": merchant_id, "provider": provider},
            )
            rows = [RecordedMismatch.from_row(row) for row in await cur.fetchall()]
        return page.rows(rows, window.limit)


Conn = AsyncConnection[Any]


async def _last_window_end(conn: Conn, provider: str) -> datetime | None:
    cur = await conn.execute(
        "SELECT max(window_end) FROM reconciliation_runs WHERE provider = %s", (provider,)
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def _ledger_nets(
    conn: Conn, provider: str, references: list[str] | None
) -> dict[tuple[str, str], int]:
    """The clearing nets per (payment, currency): of every payment, or of `references` only.

    The provider settles the whole installation: its clearing accounts of every merchant count.
    """
    # Two statements, not an OR: the payment's index serves only the second.
    of_references = (
        "" if references is None else " AND split_part(t.idempotency_key, ':', 1) = ANY(%s)"
    )
    cur = await conn.execute(
        "SELECT split_part(t.idempotency_key, ':', 1), a.currency, -SUM(e.amount)"
        " FROM ledger_entries e"
        " JOIN ledger_accounts a ON a.id = e.account_id"
        " JOIN ledger_transactions t ON t.id = e.transaction_id"
        " WHERE a.kind = 'provider_clearing' AND a.owner_id = %s"
        + of_references
        + " GROUP BY 1, 2",
        (provider,) if references is None else (provider, references),
    )
    return {(ref, currency): int(net) for ref, currency, net in await cur.fetchall()}


async def _add_provider_nets(conn: Conn, provider: str, nets: dict[tuple[str, str], int]) -> None:
    """Add a window's nets to the running ones; the payments they touch are to be checked."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO reconciliation_provider_nets (provider, reference, currency, net)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (provider, reference, currency)"
            " DO UPDATE SET net = reconciliation_provider_nets.net + EXCLUDED.net,"
            " needs_check = true",
            [(provider, ref, currency, net) for (ref, currency), net in nets.items()],
        )


async def _mark_overdue(conn: Conn, window: SettlementWindow, grace: timedelta) -> None:
    """Payments whose clearing transactions became `grace` old in the window: to be checked."""
    await conn.execute(
        "INSERT INTO reconciliation_provider_nets (provider, reference, currency, net)"
        " SELECT DISTINCT a.owner_id, split_part(t.idempotency_key, ':', 1), a.currency, 0"
        " FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " JOIN ledger_accounts a ON a.id = e.account_id"
        " WHERE a.kind = 'provider_clearing' AND a.owner_id = %(provider)s"
        " AND t.created_at > %(since)s AND t.created_at <= %(until)s"
        " ON CONFLICT (provider, reference, currency) DO UPDATE SET needs_check = true",
        {
            "provider": window.provider,
            "since": window.since - grace if window.since else datetime.min.replace(tzinfo=UTC),
            "until": window.until - grace,
        },
    )


async def _unbooked_disputes(conn: Conn, provider: str, lines: list[SettlementLine]) -> list[str]:
    """Deposits whose dispute lines name a dispute the ledger has not booked yet: its webhook is
    on its way, so they are in flight (a later run checks them).

    Only a deposit of ours at this provider waits: a dispute of anything else (no payment of
    ours, a payout, a deposit made at another provider) is acknowledged and left by the API
    (`api.routes.disputes.deliver_dispute_event`), so no saga will ever book it. Its lines are
    checked at once and reported as a mismatch, at platform level when no payment is ours.
    """
    disputed = {
        line.operation_id: line.reference for line in lines if line.kind.startswith("dispute")
    }
    if not disputed:
        return []
    cur = await conn.execute(
        "SELECT provider_dispute_id FROM disputes WHERE provider = %s"
        " AND provider_dispute_id = ANY(%s) AND withdrawn_at IS NOT NULL",
        (provider, sorted(disputed)),
    )
    booked = {row[0] for row in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT id FROM payments WHERE id = ANY(%s) AND kind = %s AND provider = %s",
        (sorted(set(disputed.values())), PaymentKind.DEPOSIT.value, provider),
    )
    ours = {row[0] for row in await cur.fetchall()}
    return sorted(
        {ref for dispute, ref in disputed.items() if dispute not in booked and ref in ours}
    )


async def _check_due(
    conn: Conn, provider: str, unbooked: list[str] | None = None
) -> list[Mismatch]:
    """Match the payments to be checked; those that ended are done, matched or not. A deposit
    with a refund or a dispute in flight is in flight."""
    unbooked = unbooked or []
    cur = await conn.execute(
        "SELECT reference, currency, net FROM reconciliation_provider_nets"
        " WHERE provider = %s AND needs_check",
        (provider,),
    )
    due = {(ref, currency): int(net) for ref, currency, net in await cur.fetchall()}
    references = sorted({ref for ref, _ in due})
    ledger = await _ledger_nets(conn, provider, references)
    terminal = [s.value for s in PaymentStatus if s.is_terminal]
    # A deposit with a refund in flight is in flight too: the provider may have refunded it
    # before the ledger posts the refund (whose keys start with the deposit's id).
    cur = await conn.execute(
        "SELECT id FROM payments WHERE id = ANY(%(refs)s) AND status <> ALL(%(terminal)s)"
        " UNION SELECT payment_id FROM refunds WHERE payment_id = ANY(%(refs)s)"
        " AND status IN ('processing', 'requires_intervention')"
        " UNION SELECT payment_id FROM disputes WHERE payment_id = ANY(%(refs)s)"
        " AND status NOT IN ('won', 'lost')"
        " UNION SELECT reference FROM unnest(%(unbooked)s::text[]) AS u(reference)",
        {"refs": references, "terminal": terminal, "unbooked": unbooked},
    )
    in_flight = [row[0] for row in await cur.fetchall()]
    await conn.execute(
        "UPDATE reconciliation_provider_nets SET needs_check = false"
        " WHERE provider = %s AND needs_check AND reference <> ALL(%s)",
        (provider, in_flight),
    )
    return find_mismatches(provider, due, ledger, set(in_flight))


async def _insert_run(
    conn: Conn,
    run_key: str,
    provider: str,
    lines_checked: int,
    mismatches: list[Mismatch],
    window: SettlementWindow | None,
) -> int:
    cur = await conn.execute(
        "INSERT INTO reconciliation_runs"
        " (run_key, provider, lines_checked, mismatches, window_start, window_end)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_key) DO NOTHING RETURNING id",
        (
            run_key,
            provider,
            lines_checked,
            len(mismatches),
            window.since if window else None,
            window.until if window else None,
        ),
    )
    row = await cur.fetchone()
    if row is None:  # a retry of a run already recorded
        cur = await conn.execute(
            "SELECT mismatches FROM reconciliation_runs WHERE run_key = %s", (run_key,)
        )
        again = await cur.fetchone()
        return int(again[0]) if again else 0
    async with conn.cursor() as c:
        await c.executemany(
            "INSERT INTO reconciliation_mismatches"
            " (run_id, provider, reference, currency, provider_amount, ledger_amount)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            # Recorded once: a later run that sees the same mismatch adds nothing.
            " ON CONFLICT (provider, reference, currency, provider_amount, ledger_amount)"
            " DO NOTHING",
            [
                (row[0], m.provider, m.reference, m.currency, m.provider_amount, m.ledger_amount)
                for m in mismatches
            ],
        )
    return len(mismatches)
