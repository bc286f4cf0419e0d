"""The game wallet: bets, wins, rollbacks and bonuses, answered in milliseconds from the ledger.

`wallet.rules` is the contract's rules as pure functions (read it first); `wallet.engine` runs
them against PostgreSQL, many calls per database transaction (group commit). Neither knows of
Temporal or HTTP.
"""
