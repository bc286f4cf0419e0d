"""Temporal activities: thin adapters from the sagas to the ledger, providers, rules and records."""
