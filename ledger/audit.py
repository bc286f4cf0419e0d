"""`paysaga ledger audit`: recompute every balance from the entries and check the money rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ledger.engine import Ledger
from ledger.models import AuditQuery


async def run_audit_cli(database_url: str, extra_checks: Sequence[AuditQuery] = ()) -> int:
    """Print each audit check and a summary line; 0 if the ledger is clean, else 1.

    `extra_checks` are its users' checks (the service's: `paysaga.audit`), in the same snapshot.
    """
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url, min_size=1, max_size=2, open=False
    )
    await pool.open(wait=True)
    try:
        report = await Ledger(pool).audit(extra_checks)
    finally:
        await pool.close()
    print(report.format())
    return 0 if report.ok else 1
