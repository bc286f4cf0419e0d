"""`python -m api`: serve the API with uvicorn on the configured loopback address."""

from __future__ import annotations

import uvicorn

from paysaga.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run("api.main:create_app", factory=True, host=settings.api_host, port=settings.api_port)


if __name__ == "__main__":
    main()
