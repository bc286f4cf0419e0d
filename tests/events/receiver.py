"""A merchant's webhook endpoint for tests: records every request as it arrives, answers as told.

It runs in threads of its own, so it serves a dispatcher in the test's event loop and one in
another process alike. A request is recorded on arrival, before it is answered: a request whose
sender was killed while waiting for the answer still counts as received.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devtools.stack import free_port
from paysaga.webhook_delivery import EVENT_ID_HEADER, EVENT_SEQUENCE_HEADER, SIGNATURE_HEADER
from providers.webhooks import verify


@dataclass
class Received:
    """One request as the endpoint saw it, and what it answered (0 while unanswered)."""

    event_id: str
    sequence: int
    signature: str
    body: bytes
    answered: int = 0
    host: str = ""  # the Host header: the name the sender was given, whatever it connected to

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event

    def verify(self, secret: str) -> None:
        """Raise unless the signature is the secret's over this very body, signed just now."""
        verify(secret, self.signature, self.body, now=int(time.time()), tolerance_seconds=300)


@dataclass
class Script:
    """What the endpoint answers: per sequence, the next statuses to answer (then 200)."""

    statuses: dict[int, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    held: set[int] = field(default_factory=set)


class MerchantEndpoint:
    """`POST {url}`: webhooks recorded, answered 200 unless scripted otherwise."""

    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.delay_seconds = delay_seconds
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._script = Script()
        self._release = threading.Event()
        self.holding = threading.Event()  # set once a held request is waiting for its answer
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                endpoint._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/paysaga/webhooks"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def answer(self, sequence: int, *statuses: int) -> None:
        """Answer these statuses, in turn, to the next requests for this sequence."""
        with self._lock:
            self._script.statuses[sequence].extend(statuses)

    def hold(self, sequence: int) -> None:
        """Keep requests for this sequence waiting for their answer until `release()`."""
        with self._lock:
            self._script.held.add(sequence)

    def release(self) -> None:
        with self._lock:
            self._script.held.clear()
        self._release.set()

    def received(self) -> list[Received]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._received)

    def sequences(self) -> list[int]:
        return [r.sequence for r in self.received()]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        request = Received(
            handler.headers.get(EVENT_ID_HEADER, ""),
            int(handler.headers.get(EVENT_SEQUENCE_HEADER, "0")),
            handler.headers.get(SIGNATURE_HEADER, ""),
            body,
            host=handler.headers.get("Host", ""),
        )
        with self._lock:
            self._received.append(request)
            pending = self._script.statuses[request.sequence]
            status = pending.popleft() if pending else 200
            held = request.sequence in self._script.held
        if held:
            self.holding.set()
            self._release.wait(60)
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        try:
            handler.send_response(status)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        except OSError:  # the sender is gone (killed while waiting)
            return
        with self._lock:
            request.answered = status
