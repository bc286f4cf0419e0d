"""The local stack: every process of paysaga on loopback, for `make dev`, `make chaos`, bench and tests."""
