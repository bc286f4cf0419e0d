"""Pytest plugin: the sandbox PSP as a real process, and a webhook receiver that records deliveries.

Fixtures:
- `webhook_receiver` (session): an in-test HTTP server recording every delivery.
- `psp_webhook_url` (session): where `sandbox_psp` delivers webhooks; the receiver by default.
  Override it (in tests/conftest.py, so that the whole session agrees) to target the real API.
- `sandbox_psp` (session): the PSP process delivering to `psp_webhook_url`.
- `receiving_psp` (session): a PSP process that always delivers to `webhook_receiver`, for the
  PSP's own tests, whatever `psp_webhook_url` is.
- `start_sandbox_psp` (function): starts extra PSP processes (restart tests), stopped at teardown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.stack import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0
# Fast but not instant, so a charge is still `pending` in its HTTP answer.
TEST_ENV = {
    "PAYSAGA_ENVIRONMENT": "development",
    "PAYSAGA_PSP_WEBHOOK_DELAY_SECONDS": "0.05",
    "PAYSAGA_PSP_STALL_SECONDS": "2",
    "PAYSAGA_PSP_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
    # A dispute's verdict follows its evidence this fast (due dates stay at their default).
    "PAYSAGA_PSP_DISPUTE_DECISION_SECONDS": "0.1",
}


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll `predicate` until it returns something truthy (returned); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class Delivery:
    """One webhook delivery as the receiver saw it, and how it answered."""

    provider: str
    signature: str
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        """The JSON event."""
        event: dict[str, Any] = json.loads(self.body)
        return event

    @property
    def reference(self) -> str | None:
        """The announced operation's or dispute's merchant reference (or payment id, for
        merchant events)."""
        try:
            data = self.event["data"]
            if "payment" in data:
                return str(data["payment"]["id"])
            return str((data["dispute"] if "dispute" in data else data["operation"])["reference"])
        except (ValueError, KeyError, TypeError):
            return None


class WebhookReceiver:
    """A webhook endpoint in a thread: `POST {url}/{provider}` deliveries are recorded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._failures: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                signature = self.headers.get("Sandbox-Signature") or self.headers.get(
                    "Paysaga-Signature", ""
                )
                signature = signature or ""
                receiver._record(self.path, signature, body, self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks"

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def fail_reference(self, reference: str, times: int) -> None:
        """Answer 500 to the next `times` deliveries about operations with this reference."""
        with self._lock:
            self._failures[reference] = times

    def deliveries(self, reference: str | None = None) -> list[Delivery]:
        """Deliveries so far (about `reference` only, if given), in arrival order."""
        with self._lock:
            return [d for d in self._deliveries if reference is None or d.reference == reference]

    def wait_for(self, reference: str, count: int = 1, timeout: float = 10.0) -> list[Delivery]:
        """Wait for at least `count` deliveries answered 2xx about `reference`; all of them."""

        def enough() -> list[Delivery] | None:
            found = self.deliveries(reference)
            return found if sum(d.answered < 300 for d in found) >= count else None

        result: list[Delivery] = wait_until(enough, timeout=timeout)
        return result

    def _record(
        self, path: str, signature: str, body: bytes, handler: BaseHTTPRequestHandler
    ) -> None:
        delivery = Delivery(path.rstrip("/").rsplit("/", 1)[-1], signature, body, 200)
        with self._lock:
            remaining = self._failures.get(delivery.reference or "", 0)
            if remaining > 0:
                self._failures[delivery.reference or ""] = remaining - 1
                delivery.answered = 500
            self._deliveries.append(delivery)
        handler.send_response(delivery.answered)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


class SandboxPSPProcess:
    """`python -m sandbox_psp` as a subprocess on a free loopback port, with its own database."""

    def __init__(
        self,
        database_path: Path,
        webhook_url: str,
        *,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.database_path = database_path
        self.webhook_url = webhook_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or database_path.with_suffix(".log")
        self._extra_env = env or {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self._process is not None, "the sandbox PSP is not running"
        return self._process.pid

    def start(self) -> None:
        """Start the process and wait until `/healthz` answers."""
        env = {
            **os.environ,
            **TEST_ENV,
            "PAYSAGA_PSP_HOST": "127.0.0.1",
            "PAYSAGA_PSP_PORT": str(self.port),
            "PAYSAGA_PSP_DATABASE_PATH": str(self.database_path),
            "PAYSAGA_PSP_WEBHOOK_URL": self.webhook_url,
            **self._extra_env,
        }
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "sandbox_psp"],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._healthy, timeout=STARTUP_TIMEOUT_SECONDS, interval=0.05)

    def _healthy(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            log = self.log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"sandbox PSP exited with {self._process.returncode}:\n{log}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), killing the process if it does not exit in time."""
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_SECONDS)

    def crash(self) -> None:
        """Kill the process at once (SIGKILL), as a crash would."""
        if self._process is None:
            return
        process, self._process = self._process, None
        os.kill(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT_SECONDS)

    def restart(self, *, crash: bool = True) -> None:
        """Kill (or stop) and start again on the same port with the same database."""
        if crash:
            self.crash()
        else:
            self.stop()
        self.start()


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """An in-test webhook endpoint recording deliveries; it can be told to fail some."""
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def psp_webhook_url(webhook_receiver: WebhookReceiver) -> str:
    """Base URL `sandbox_psp` delivers webhooks to (`{url}/{provider}`); override to retarget."""
    return webhook_receiver.url


def _session_psp(
    tmp_path_factory: pytest.TempPathFactory, webhook_url: str, name: str
) -> Iterator[SandboxPSPProcess]:
    psp = SandboxPSPProcess(tmp_path_factory.mktemp(name) / "sandbox_psp.sqlite3", webhook_url)
    psp.start()
    try:
        yield psp
    finally:
        psp.stop()


@pytest.fixture(scope="session")
def sandbox_psp(
    tmp_path_factory: pytest.TempPathFactory, psp_webhook_url: str
) -> Iterator[SandboxPSPProcess]:
    """The session's sandbox PSP process, delivering webhooks to `psp_webhook_url`."""
    yield from _session_psp(tmp_path_factory, psp_webhook_url, "sandbox_psp")


@pytest.fixture(scope="session")
def receiving_psp(
    tmp_path_factory: pytest.TempPathFactory, webhook_receiver: WebhookReceiver
) -> Iterator[SandboxPSPProcess]:
    """A sandbox PSP process that always delivers webhooks to `webhook_receiver`."""
    yield from _session_psp(tmp_path_factory, webhook_receiver.url, "receiving_psp")


@pytest.fixture
def start_sandbox_psp(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> Iterator[Callable[[], SandboxPSPProcess]]:
    """A factory of extra PSP processes (own database, webhooks to the receiver), stopped after."""
    started: list[SandboxPSPProcess] = []

    def start() -> SandboxPSPProcess:
        psp = SandboxPSPProcess(tmp_path / f"psp{len(started)}.sqlite3", webhook_receiver.url)
        started.append(psp)
        psp.start()
        return psp

    yield start
    for psp in started:
        psp.stop()
