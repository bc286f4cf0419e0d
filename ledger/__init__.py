"""The double-entry ledger: accounts, immutable entries, two-phase holds, idempotent writes, audit.

`ledger.models` and `ledger.errors` are pure Python (safe inside the Temporal workflow sandbox);
`ledger.engine` talks to PostgreSQL and knows nothing of Temporal.
"""
