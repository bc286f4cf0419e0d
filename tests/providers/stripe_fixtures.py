"""The local Stripe server as a real process, and a webhook endpoint recording Stripe's deliveries.

Fixtures (`tests/providers/conftest.py` makes them visible to the provider tests):
- `stripe_webhooks` (session): an HTTP endpoint in a thread recording each delivery;
- `stripe_server` (session): `python -m tests.providers.stripe_server` on a free loopback port,
  delivering to `stripe_webhooks`, stopped by its PID;
- `start_stripe_server` (function): extra servers with their own settings, stopped after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.stack import free_port
from tests.psp_fixtures import REPO_ROOT, STARTUP_TIMEOUT_SECONDS, STOP_TIMEOUT_SECONDS, wait_until

SECRET_KEY = "sk_test_paysaga_local"
WEBHOOK_SECRET = "whsec_paysaga_local_test"
STALL_SECONDS = 2.0  # `pm_local_slow`; the impatient adapters give up after 0.5 s


@dataclass(frozen=True)
class StripeDelivery:
    """One webhook delivery: its headers and its body, byte for byte."""

    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        """The delivered event, parsed."""
        event: dict[str, Any] = json.loads(self.body)
        return event

    @property
    def object_reference(self) -> str:
        """The paysaga reference in the object's metadata, or the object's id (disputes)."""
        obj = self.event["data"]["object"]
        return str((obj.get("metadata") or {}).get("paysaga_reference") or obj["id"])


class StripeWebhooks:
    """A webhook endpoint in a thread: every POST is recorded and answered 200."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deliveries: list[StripeDelivery] = []
        webhooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with webhooks._lock:
                    webhooks._deliveries.append(StripeDelivery(dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/stripe"

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, reference: str, event_type: str, timeout: float = 10.0) -> StripeDelivery:
        """The first delivery of `event_type` about the object with that reference (or id)."""

        def found() -> StripeDelivery | None:
            with self._lock:
                return next(
                    (
                        delivery
                        for delivery in self._deliveries
                        if delivery.event["type"] == event_type
                        and delivery.object_reference == reference
                    ),
                    None,
                )

        delivery: StripeDelivery = wait_until(found, timeout=timeout)
        return delivery


class StripeServerProcess:
    """The local Stripe server as a subprocess on a free loopback port."""

    def __init__(self, log_path: Path, webhook_url: str, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._env = {
            "STRIPE_SERVER_PORT": str(self.port),
            "STRIPE_SERVER_SECRET_KEY": SECRET_KEY,
            "STRIPE_SERVER_WEBHOOK_URL": webhook_url,
            "STRIPE_SERVER_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_SERVER_STALL_SECONDS": str(STALL_SECONDS),
            **{f"STRIPE_SERVER_{name.upper()}": value for name, value in settings.items()},
        }
        self._process: subprocess.Popen[bytes] | None = None

    def deliver_to(self, webhook_url: str, webhook_secret: str) -> None:
        """Send the webhooks to `webhook_url`, signed with `webhook_secret` (before `start`), as
        an endpoint configured in Stripe's dashboard."""
        self._env["STRIPE_SERVER_WEBHOOK_URL"] = webhook_url
        self._env["STRIPE_SERVER_WEBHOOK_SECRET"] = webhook_secret

    def start(self) -> None:
        """Start the process and wait until it answers."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.providers.stripe_server"],
                cwd=REPO_ROOT,
                env={**os.environ, **self._env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._healthy, timeout=STARTUP_TIMEOUT_SECONDS, interval=0.05)

    def _healthy(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            log = self.log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the Stripe server exited with {self._process.returncode}:\n{log}")
        try:
            return httpx.get(f"{self.url}/_test/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """SIGTERM to its PID, SIGKILL if it does not exit in time."""
        if self._process is None:
            return
        process, self._process = self._process, None
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_SECONDS)

    def control(self, path: str, **form: str) -> dict[str, Any]:
        """POST to one of the server's `/_test/` controls (the card network, the customer)."""
        response = httpx.post(
            f"{self.url}/_test/{path}",
            data=form,
            headers={"Authorization": f"Bearer {SECRET_KEY}"},
            timeout=5.0,
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


@pytest.fixture(scope="session")
def stripe_webhooks() -> Iterator[StripeWebhooks]:
    """The endpoint the local Stripe server delivers its webhooks to."""
    webhooks = StripeWebhooks()
    webhooks.start()
    yield webhooks
    webhooks.stop()


@pytest.fixture(scope="session")
def stripe_server(
    tmp_path_factory: pytest.TempPathFactory, stripe_webhooks: StripeWebhooks
) -> Iterator[StripeServerProcess]:
    """The session's local Stripe server."""
    log_path = tmp_path_factory.mktemp("stripe_server") / "server.log"
    server = StripeServerProcess(log_path, stripe_webhooks.url)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_stripe_server(
    tmp_path: Path, stripe_webhooks: StripeWebhooks
) -> Iterator[Callable[..., StripeServerProcess]]:
    """Starts local Stripe servers with other settings (`search_lag_seconds="0"`...)."""
    started: list[StripeServerProcess] = []

    def start(**settings: str) -> StripeServerProcess:
        server = StripeServerProcess(
            tmp_path / f"stripe{len(started)}.log", stripe_webhooks.url, **settings
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
