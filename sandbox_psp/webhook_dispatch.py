"""Delivers the outbox's webhook events, signed, with exponential backoff, until answered 2xx."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from paysaga.settings import Settings
from providers.webhooks import SIGNATURE_HEADER, sign
from sandbox_psp.store import OperationStore, OutboxEvent

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 0.1
DELIVERY_TIMEOUT_SECONDS = 5.0
IDLE_WAKE_SECONDS = 1.0


def retry_delay(attempts: int, cap: float) -> float:
    """Seconds to wait after the `attempts`-th failed delivery of an event."""
    return float(min(RETRY_BASE_SECONDS * 2 ** (attempts - 1), cap))


class WebhookDispatcher:
    """The background loop that empties the outbox. Deliveries are sequential, in due order."""

    def __init__(
        self, settings: Settings, store: OperationStore, client: httpx.AsyncClient
    ) -> None:
        self._settings = settings
        self._store = store
        self._client = client
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New events were recorded: look at the outbox now."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver due events forever; cancel the task to stop."""
        while True:
            self._wake.clear()
            for event in self._store.due_events(time.time()):
                await self._deliver(event)
            next_due = self._store.next_due_at()
            pause = IDLE_WAKE_SECONDS if next_due is None else next_due - time.time()
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(pause, IDLE_WAKE_SECONDS))

    async def _deliver(self, event: OutboxEvent) -> None:
        url = f"{self._settings.psp_webhook_url.rstrip('/')}/{event.provider}"
        secret = self._settings.psp_webhook_secrets.get(event.provider)
        body = event.body.encode()
        error: str | None
        if secret is None:
            error = f"no webhook secret configured for {event.provider}"
        else:
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, body, int(time.time())),
            }
            try:
                response = await self._client.post(
                    url, content=body, headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS
                )
                error = None if response.is_success else f"answered {response.status_code}"
            except httpx.HTTPError as exc:
                error = repr(exc)
        now = time.time()
        if error is None:
            self._store.mark_delivered(event.seq, now)
            return
        delay = retry_delay(event.attempts + 1, self._settings.psp_webhook_retry_max_seconds)
        logger.info(
            "webhook %s to %s failed (%s); retry in %.1fs", event.event_id, url, error, delay
        )
        self._store.mark_failed(event.seq, now + delay, error)
