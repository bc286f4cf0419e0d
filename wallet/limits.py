"""The limits of the wallet's writers: how long they wait for the database, how many calls queue."""

from __future__ import annotations

from dataclasses import dataclass

from paysaga.settings import Settings


@dataclass(frozen=True)
class WriterLimits:
    """How long a writer waits for the database, and how many calls may wait for a writer.

    The time-outs are set on each writer's connection: a batch that waits longer for a row lock
    (another transaction holds one of its customers' accounts) or for any statement fails, and
    only its stuck customer's calls are answered `wallet_timeout` (see `wallet.engine`)."""

    lock_timeout_ms: int = 2_000
    statement_timeout_ms: int = 5_000
    connect_timeout_seconds: int = 5
    queue_max: int = 2_048  # calls waiting per writer; beyond, `wallet_busy`
    stop_grace_seconds: float = 10.0  # what `stop()` gives the queued calls to commit


def wallet_limits(settings: Settings) -> WriterLimits:
    """The writers' limits the settings give (`PAYSAGA_WALLET_*`)."""
    return WriterLimits(
        lock_timeout_ms=settings.wallet_lock_timeout_ms,
        statement_timeout_ms=settings.wallet_statement_timeout_ms,
        connect_timeout_seconds=settings.wallet_connect_timeout_seconds,
        queue_max=settings.wallet_queue_max,
    )
