"""`python -m api`: serve the API with uvicorn on the configured loopback address."""

from __future__ import annotations

import uvicorn

from paysaga.observability.logs import setup_logging
from paysaga.settings import get_settings


def main() -> None:
    settings = get_settings()
    setup_logging(settings.log_format, settings.log_level)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        timeout_graceful_shutdown=int(settings.api_shutdown_seconds),
        log_config=None,  # uvicorn's records go through setup_logging's handler
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
