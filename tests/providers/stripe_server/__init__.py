"""A local server that follows Stripe's published API, for the Stripe adapter's tests.

What it serves (form-encoded requests, Stripe's object and error shapes, `Idempotency-Key`
replay, `Stripe-Signature` webhooks): `stripe_server.app`. How to run it: `python -m
tests.providers.stripe_server` with the `STRIPE_SERVER_*` variables of `stripe_server.settings`.
"""
