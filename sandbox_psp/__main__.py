"""`python -m sandbox_psp`: serve the sandbox PSP on psp_host:psp_port until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import uvicorn

from paysaga.settings import Settings
from sandbox_psp.app import create_app


def main() -> None:
    """Run the sandbox PSP with uvicorn (which handles SIGTERM and SIGINT gracefully)."""
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.psp_host,
        port=settings.psp_port,
        log_level="warning",
        # A stalled `pm_timeout` answer must not hold up a shutdown for long.
        timeout_graceful_shutdown=1,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
