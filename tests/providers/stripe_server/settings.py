"""The local Stripe server's settings, read from `STRIPE_SERVER_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSettings:
    """What a test chooses: the key it accepts, where webhooks go, how slow `pm_local_slow` is."""

    host: str = "127.0.0.1"
    port: int = 0
    secret_key: str = "sk_test_paysaga_local"
    webhook_url: str = ""  # no delivery when empty
    webhook_secret: str = "whsec_paysaga_local"
    stall_seconds: float = 2.0  # `pm_local_slow`: the PaymentIntent is made, its answer waits
    # An object shows in search this long after it was made (Stripe: under a minute usually, up
    # to an hour in an outage). Lists show it at once.
    search_lag_seconds: float = 60.0

    @classmethod
    def from_environment(cls) -> ServerSettings:
        """The settings from `STRIPE_SERVER_<FIELD>` variables, defaults for the others."""
        env = os.environ
        defaults = cls()
        return cls(
            host=env.get("STRIPE_SERVER_HOST", defaults.host),
            port=int(env.get("STRIPE_SERVER_PORT", defaults.port)),
            secret_key=env.get("STRIPE_SERVER_SECRET_KEY", defaults.secret_key),
            webhook_url=env.get("STRIPE_SERVER_WEBHOOK_URL", defaults.webhook_url),
            webhook_secret=env.get("STRIPE_SERVER_WEBHOOK_SECRET", defaults.webhook_secret),
            stall_seconds=float(env.get("STRIPE_SERVER_STALL_SECONDS", defaults.stall_seconds)),
            search_lag_seconds=float(
                env.get("STRIPE_SERVER_SEARCH_LAG_SECONDS", defaults.search_lag_seconds)
            ),
        )
