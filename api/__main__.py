"""`python -m api`: serve the API with uvicorn on the configured loopback address."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from paysaga.observability.logs import setup_logging
from paysaga.settings import get_settings


def create_logged_app() -> FastAPI:
    """The app of one API process, its logging set up first: with `api_workers` > 1 each
    process is a fresh interpreter (spawned by uvicorn) with its own engine and pool."""
    from api.main import create_app  # after the logging: the app logs as it is built

    settings = get_settings()
    setup_logging(settings.log_format, settings.log_level)
    return create_app(settings)


def main() -> None:
    settings = get_settings()
    setup_logging(settings.log_format, settings.log_level)
    uvicorn.run(
        "api.__main__:create_logged_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        timeout_graceful_shutdown=int(settings.api_shutdown_seconds),
        log_config=None,  # uvicorn's records go through setup_logging's handler
        access_log=settings.api_access_log,
        workers=settings.api_workers,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
