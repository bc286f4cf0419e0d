"""`python -m tests.providers.stripe_server`: serve the local Stripe API until SIGTERM/SIGINT."""

from __future__ import annotations

import uvicorn

from tests.providers.stripe_server.app import create_app
from tests.providers.stripe_server.settings import ServerSettings


def main() -> None:
    """Run the server with uvicorn on the configured loopback port."""
    settings = ServerSettings.from_environment()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=1,  # a stalled `pm_local_slow` answer must not hold it up
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
