"""The HTTP API: starts payment sagas, answers about payments and balances, takes provider webhooks."""
