"""`paysaga ledger audit`: recompute every balance from the entries and check the money rules."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from ledger.engine import Ledger


async def run_audit_cli(database_url: str) -> int:
    """Print each audit check and a summary line; 0 if the ledger is clean, else 1."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url, min_size=1, max_size=2, open=False
    )
    await pool.open(wait=True)
    try:
        report = await Ledger(pool).audit()
    finally:
        await pool.close()
    print(report.format())
    return 0 if report.ok else 1
