"""paysaga: a payments core of Temporal sagas over a double-entry PostgreSQL ledger."""
