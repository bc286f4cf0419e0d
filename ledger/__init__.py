"""The double-entry ledger: accounts, immutable entries, two-phase holds, idempotent writes, audit.

`ledger.models` and `ledger.errors` are pure Python (safe inside the Temporal workflow sandbox);
`ledger.engine` (the public `Ledger`), `ledger.postings` (the SQL of a write) and `ledger.audit`
talk to PostgreSQL and know nothing of Temporal; `ledger.tables` describes the tables.
"""
