"""Fixtures of the provider tests: the local Stripe server and its webhook endpoint."""

from tests.providers.stripe_fixtures import (  # noqa: F401 (fixtures)
    start_stripe_server,
    stripe_server,
    stripe_webhooks,
)
