"""Tables of the payments service around the ledger, one module per part: merchants, customers,
payments, refunds and disputes (`payments`); what callers send and use (`access`); events
(`events`); the game wallet's calls, bets, tombstones, rounds and bonuses (`wallet`).

Importing this package registers them all on `SQLModel.metadata` (the migrations' env does).
"""

from paysaga.schema import access, events, payments, wallet

__all__ = ["access", "events", "payments", "wallet"]
