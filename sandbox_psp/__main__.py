"""`python -m sandbox_psp`: serve the sandbox PSP on psp_host:psp_port until SIGTERM/SIGINT."""

from __future__ import annotations

import uvicorn

from sandbox_psp.app import create_app
from sandbox_psp.logs import setup_logging
from sandbox_psp.settings import SandboxSettings


def main() -> None:
    """Run the sandbox PSP with uvicorn (which handles SIGTERM and SIGINT gracefully)."""
    settings = SandboxSettings()
    setup_logging(settings.log_format, settings.log_level)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.psp_host,
        port=settings.psp_port,
        log_level="warning",
        log_config=None,  # uvicorn's records go through setup_logging's handler
        # A stalled `pm_timeout` answer must not hold up a shutdown for long.
        timeout_graceful_shutdown=1,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
