"""For the API-key tests: the first answer to a revoked key once its revocation has been heard.

A revocation made by another process (another API process, the CLI) reaches an API process by
PostgreSQL NOTIFY, sent as the revocation commits but delivered asynchronously: on a loaded box a
request can arrive in the milliseconds before it. The process that revoked the key through the
API forgets it at once and needs no wait.
"""

from __future__ import annotations

import asyncio
import time

import httpx

HEARD_WITHIN_SECONDS = 10.0


async def answer_once_revocation_heard(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """GET `path` until it is refused (401) or `HEARD_WITHIN_SECONDS` pass; the last answer."""
    deadline = time.monotonic() + HEARD_WITHIN_SECONDS
    while True:
        answer = await client.get(path)
        if answer.status_code == 401 or time.monotonic() >= deadline:
            return answer
        await asyncio.sleep(0.02)
