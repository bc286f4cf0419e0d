"""Delivers the outbox's webhook events, signed, with exponential backoff, until answered 2xx."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict

import httpx

from sandbox_psp.records import OutboxEvent
from sandbox_psp.settings import SandboxSettings
from sandbox_psp.signing import SIGNATURE_HEADER, signature_header
from sandbox_psp.store import OperationStore

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 0.1
DELIVERY_TIMEOUT_SECONDS = 5.0
IDLE_WAKE_SECONDS = 1.0
CONCURRENT_DELIVERIES = 16


def retry_delay(attempts: int, cap: float) -> float:
    """Seconds to wait after the `attempts`-th failed delivery of an event."""
    return float(min(RETRY_BASE_SECONDS * 2 ** (attempts - 1), cap))


class WebhookDispatcher:
    """The background loop that empties the outbox, in due order within each operation/dispute."""

    def __init__(
        self, settings: SandboxSettings, store: OperationStore, client: httpx.AsyncClient
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
            try:
                await self._deliver_due()
                next_due = self._store.next_due_at()
            except Exception:
                # A broken round must not end deliveries for the life of the process.
                logger.exception("webhook dispatch round failed")
                next_due = time.time() + RETRY_BASE_SECONDS
            pause = IDLE_WAKE_SECONDS if next_due is None else next_due - time.time()
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(pause, IDLE_WAKE_SECONDS))

    async def _deliver_due(self) -> None:
        """One round: operations in parallel, each operation's events one after another in order."""
        by_operation: dict[str, list[OutboxEvent]] = defaultdict(list)
        for event in self._store.due_events(time.time()):
            by_operation[_operation_id(event)].append(event)
        limit = asyncio.Semaphore(CONCURRENT_DELIVERIES)

        async def deliver_in_order(events: list[OutboxEvent]) -> None:
            async with limit:
                for event in events:
                    if not await self._deliver(event):
                        return  # later events of this operation wait for the next round

        await asyncio.gather(*(deliver_in_order(events) for events in by_operation.values()))

    async def _deliver(self, event: OutboxEvent) -> bool:
        url = f"{self._settings.psp_webhook_url.rstrip('/')}/{event.provider}"
        secret = self._settings.psp_webhook_secrets.get(
            event.provider
        ) or self._store.account_secret(event.provider)
        body = event.body.encode()
        error: str | None
        if secret is None:
            error = f"no webhook secret configured for {event.provider}"
        else:
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature_header(secret, body, int(time.time())),
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
            return True
        delay = retry_delay(event.attempts + 1, self._settings.psp_webhook_retry_max_seconds)
        logger.info(
            "webhook %s to %s failed (%s); retry in %.1fs", event.event_id, url, error, delay
        )
        self._store.mark_failed(event.seq, now + delay, error)
        return False


def _operation_id(event: OutboxEvent) -> str:
    """What the event announces, an operation or a dispute: its events go out in order."""
    try:
        data = json.loads(event.body)["data"]
        return str((data["dispute"] if "dispute" in data else data["operation"])["id"])
    except (ValueError, KeyError, TypeError):
        return event.event_id
