"""Merchant webhooks from the event feed: each event POSTed, signed, until the merchant says 2xx.

Every worker process runs `WebhookDispatcher` beside its Temporal workers (`paysaga
deliver-webhooks` runs it alone); they share `event_deliveries` through leases (see
`paysaga.store.deliveries`). A merchant's events go one at a time in sequence order; merchants go
side by side, so one slow endpoint holds up its own events only. The body is the event exactly
as `GET /v1/events` shows it, signed like the providers' webhooks (`Paysaga-Signature:
t=<unix>,v1=<HMAC-SHA256 of "t.body">`, and a second `v1` by the secret a rotation replaced, for
its grace period), with `Paysaga-Event-Id` and `Paysaga-Event-Sequence`
so that a receiver can drop a duplicate before it parses the body.

An answer that says the request itself is wrong (a 4xx other than 408 and 429) is final: the
same bytes cannot do better, so the event is dead-lettered at once. Anything else (5xx, 408, 429,
a redirect, no answer, an address refused) is retried with exponential backoff and jitter, for up
to `webhook_delivery_give_up_days` after the event; then it is dead-lettered. An operator
redelivers a dead letter (`POST /v1/ops/notifications/dead-letters/{event_id}/redeliver`).

Requests go through `paysaga.webhook_egress`: in production only to public addresses, checked
when connecting. A failure is stored as a coarse word (`http_503`, `timeout`,
`address_not_allowed`...), never the exception's text, which would make the merchant's URL a
port scanner.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from domain.merchants import DEV_MERCHANT_ID
from paysaga.settings import Settings
from paysaga.store.deliveries import ClaimedDelivery, Deliveries
from paysaga.webhook_egress import Resolve, delivery_error, webhook_client
from providers.webhooks import sign

log = logging.getLogger("paysaga.webhooks")

SIGNATURE_HEADER = "Paysaga-Signature"
EVENT_ID_HEADER = "Paysaga-Event-Id"
EVENT_SEQUENCE_HEADER = "Paysaga-Event-Sequence"
RETRYABLE_4XX = (408, 429)


@dataclass(frozen=True)
class Endpoint:
    """Where a merchant's webhooks go and the secret they are signed with."""

    url: str
    secret: str
    previous_secret: str | None = None  # rotated out, still signing during its grace


@dataclass(frozen=True)
class Answer:
    """What came of one request: taken (2xx), refused for good, or to be tried again."""

    delivered: bool
    final: bool
    error: str | None


def endpoint_of(delivery: ClaimedDelivery, settings: Settings) -> Endpoint | str:
    """The merchant's own endpoint, or why it has none. The installation's
    `merchant_webhook_secret` stands in for the development merchant's secret only."""
    url, secret = delivery.webhook_url, delivery.webhook_secret
    if delivery.merchant_id == DEV_MERCHANT_ID:
        secret = secret or settings.merchant_webhook_secret
    if not url:
        return "the merchant has no webhook_url"
    if not secret:
        return "the merchant has a webhook_url but no webhook_secret: nothing is sent unsigned"
    return Endpoint(url, secret, delivery.previous_webhook_secret)


def retry_delay(
    attempts: int, initial_seconds: float, max_seconds: float, uniform: Callable[..., float]
) -> float:
    """Seconds before the next try after `attempts` failed ones: doubling from the first delay up
    to the cap, drawn from the upper half so that merchants' retries spread out but still grow."""
    ceiling = min(max_seconds, initial_seconds * 2 ** min(attempts, 62))
    return uniform(ceiling / 2, ceiling)


def request_of(
    delivery: ClaimedDelivery, endpoint: Endpoint, now: int
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery, signed at `now` (unix seconds) with the endpoint's
    secret and, during a rotation's grace, the one it replaced."""
    body = delivery.body.encode()
    previous = (endpoint.previous_secret,) if endpoint.previous_secret else ()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(endpoint.secret, body, now, *previous),
        EVENT_ID_HEADER: delivery.event_id,
        EVENT_SEQUENCE_HEADER: str(delivery.sequence),
    }
    return body, headers


class WebhookDispatcher:
    """Claims due deliveries and sends them, until told to stop; its HTTP client is its own
    (`webhook_client`), closed when it stops. `resolve` replaces the system's DNS (tests)."""

    def __init__(
        self,
        deliveries: Deliveries,
        settings: Settings,
        uniform: Callable[..., float] = random.uniform,
        resolve: Resolve | None = None,
    ) -> None:
        self._deliveries = deliveries
        self._http = webhook_client(settings.environment == "production", resolve)
        self._settings = settings
        self._uniform = uniform

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then each merchant's send in flight finishes and the rest
        of its claim is given back."""
        lanes: set[asyncio.Task[None]] = set()
        stopped = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                for lane in await self._claim(
                    self._settings.webhook_delivery_concurrency - len(lanes)
                ):
                    task = asyncio.create_task(self.deliver_lane(lane, stop))
                    lanes.add(task)
                    task.add_done_callback(lanes.discard)
                # Claim again when a lane is done (its merchant may have more), or at the next poll.
                await asyncio.wait(
                    {stopped, *lanes},
                    timeout=self._settings.webhook_delivery_poll_interval_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            if lanes:
                await asyncio.wait(
                    lanes, timeout=self._settings.webhook_delivery_timeout_seconds + 5
                )
        finally:
            stopped.cancel()
            for task in lanes:
                task.cancel()  # its leases run out: sent again later, never lost
            await asyncio.gather(*lanes, return_exceptions=True)
            await self._http.aclose()

    async def _claim(self, free_lanes: int) -> list[list[ClaimedDelivery]]:
        """Claim up to `free_lanes` merchants' due deliveries; one list per merchant."""
        if free_lanes <= 0:
            return []
        try:
            claimed = await self._deliveries.claim_deliveries(
                free_lanes,
                self._settings.webhook_delivery_batch_size,
                self._settings.webhook_delivery_lease_seconds,
            )
        except Exception:  # the database away: try again at the next poll
            log.exception("could not claim webhook deliveries")
            return []
        return [list(lane) for _, lane in itertools.groupby(claimed, lambda d: d.merchant_id)]

    async def deliver_lane(self, lane: list[ClaimedDelivery], stop: asyncio.Event) -> None:
        """Send one merchant's claimed deliveries in sequence order; stop at a failure that will
        be retried, so that no later event overtakes it. A cursor's lease, shared by the lane,
        goes forward with each renewal and is given back when the lane ends."""
        endpoint = endpoint_of(lane[0], self._settings)
        lease = lane[0].lease_until
        try:
            if isinstance(endpoint, str):
                await self._deliveries.mark_no_endpoint(lane, endpoint)
                return
            for index, delivery in enumerate(lane):
                if delivery.cursor:
                    delivery = dataclasses.replace(delivery, lease_until=lease)
                if stop.is_set():
                    await self._release(lane[index:], lease)
                    return
                if index > 0:  # the claim's lease may be old by now: extend it, or give up the lane
                    renewed = await self._deliveries.renew_lease(
                        delivery, self._settings.webhook_delivery_lease_seconds
                    )
                    if renewed is None:
                        await self._release(lane[index + 1 :], lease)
                        return
                    delivery = dataclasses.replace(delivery, lease_until=renewed)
                    lease = renewed if delivery.cursor else lease
                if not await self._deliver(delivery, endpoint):
                    await self._release(lane[index + 1 :], lease)
                    return
            await self._release(lane[-1:], lease)  # a cursor's lane done: free it for the next
        except Exception:  # the database away: the leases run out, the events are sent again
            log.exception("webhook delivery to merchant %s interrupted", lane[0].merchant_id)

    async def _release(self, rest: list[ClaimedDelivery], lease: datetime) -> None:
        """Give back what a lane did not send: a cursor's lease (as last renewed), or the rows'."""
        if rest and rest[0].cursor:
            rest = [dataclasses.replace(rest[0], lease_until=lease)]
        elif rest and not rest[0].cursor:
            rest = [d for d in rest if not d.cursor]
        if rest:
            await self._deliveries.release_deliveries(rest)

    async def _deliver(self, delivery: ClaimedDelivery, endpoint: Endpoint) -> bool:
        """Send one delivery and record what came of it; whether the lane may go on."""
        answer = await self.send(delivery, endpoint)
        if answer.delivered:
            await self._deliveries.mark_delivered(delivery)
            return True
        error = answer.error or "connection_error"
        if answer.final:
            if await self._deliveries.mark_dead(delivery, error):
                self._gave_up(delivery, error)
            return True
        delay = retry_delay(
            delivery.attempts,
            self._settings.webhook_delivery_retry_initial_seconds,
            self._settings.webhook_delivery_retry_max_seconds,
            self._uniform,
        )
        outcome = await self._deliveries.schedule_retry(
            delivery, error, delay, self._settings.webhook_delivery_give_up_days
        )
        if outcome is not None and outcome.status == "dead":
            self._gave_up(delivery, outcome.last_error or error)
            return True
        return False

    async def send(self, delivery: ClaimedDelivery, endpoint: Endpoint) -> Answer:
        """POST the event; never raises for what the merchant's side does."""
        body, headers = request_of(delivery, endpoint, int(time.time()))
        try:
            response = await self._http.post(
                endpoint.url,
                content=body,
                headers=headers,
                timeout=self._settings.webhook_delivery_timeout_seconds,
            )
        except httpx.InvalidURL:  # retried: the merchant may correct it in time
            return Answer(False, False, "invalid_url")
        except httpx.HTTPError as exc:
            return Answer(False, False, delivery_error(exc))
        status = response.status_code
        if 200 <= status < 300:
            return Answer(True, False, None)
        final = 400 <= status < 500 and status not in RETRYABLE_4XX
        return Answer(False, final, f"http_{status}")

    def _gave_up(self, delivery: ClaimedDelivery, reason: str) -> None:
        log.warning(
            "webhook given up: merchant %s, event %s (sequence %d): %s",
            delivery.merchant_id,
            delivery.event_id,
            delivery.sequence,
            reason,
        )


async def deliver_webhooks(settings: Settings, database_url: str) -> None:
    """`paysaga deliver-webhooks`: the dispatcher alone, in the foreground, until SIGTERM/SIGINT."""
    from paysaga.database import open_pool
    from paysaga.settings import refuse_default_secrets

    refuse_default_secrets(settings)
    pool = await open_pool(database_url, settings.database_pool_min, settings.database_pool_max)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        log.info("delivering merchant webhooks")
        await WebhookDispatcher(Deliveries(pool), settings).run(stop)
    finally:
        with contextlib.suppress(Exception):
            await pool.close()
