"""`make dev` as a user runs it: everything comes up, Ctrl-C stops it all, data survives a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from devtools.stack import free_port
from paysaga.settings import DEV_MERCHANT_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]


class DevStack:
    """`make dev` (`python -m devtools`) in a child process, on free ports, with its data under a test folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.api_port, self.psp_port = free_port(), free_port()
        self.temporal_port, self.ui_port = free_port(), free_port()
        self.demo_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.env = {
            **os.environ,
            "PAYSAGA_DATA_DIR": str(data_dir),
            "PAYSAGA_API_PORT": str(self.api_port),
            "PAYSAGA_PSP_PORT": str(self.psp_port),
            "PAYSAGA_TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
            "PAYSAGA_TEMPORAL_UI_PORT": str(self.ui_port),
            "PAYSAGA_DEMO_PORT": str(self.demo_port),
            # Not the default 9464, which a `make dev` running beside the tests holds.
            "PAYSAGA_WORKER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        }
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devtools"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 180
        for line in self.process.stdout:
            self.output.append(line)
            if "paysaga is running" in line:
                return
            assert time.monotonic() < deadline, "".join(self.output)
        raise AssertionError("make dev exited:\n" + "".join(self.output))

    def processes(self) -> list[psutil.Process]:
        """Every process the stack runs: its children and the PostgreSQL server."""
        assert self.process is not None
        children = psutil.Process(self.process.pid).children(recursive=True)
        postgres = [
            p
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"]
            and str(self.env["PAYSAGA_DATA_DIR"]) in " ".join(p.info["cmdline"])
        ]
        return [*children, *postgres]

    def interrupt(self) -> int:
        """Ctrl-C, as a user would press it; the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=60)
        self.output.append(out)
        return self.process.returncode


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[DevStack]:
    stack = DevStack(tmp_path / "data")
    yield stack
    if stack.process is not None and stack.process.poll() is None:
        stack.interrupt()


def test_dev_stack_runs_stops_and_keeps_its_data(dev_stack: DevStack) -> None:
    dev_stack.start()
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_KEY}"}
    assert httpx.get(f"{dev_stack.api}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{dev_stack.api}/docs").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{dev_stack.ui_port}/").status_code == 200
    demo = httpx.get(f"http://127.0.0.1:{dev_stack.demo_port}/")  # the demo checkout's form
    assert demo.status_code == 200 and 'value="pm_3ds_required"' in demo.text
    # The local Temporal UI sends no key; in development it may decode through the codec.
    decoded = httpx.post(f"{dev_stack.api}/codec/decode", json={"payloads": []})
    assert decoded.status_code == 200, decoded.text
    created = httpx.post(
        f"{dev_stack.api}/v1/customers",
        headers=headers,
        json={
            "external_id": "dev-1",
            "full_name": "Ada",
            "birth_date": "1990-01-01",
            "country": "DE",
        },
    )
    assert created.status_code == 201, created.text
    running = dev_stack.processes()
    assert len(running) >= 6  # temporal, psp, worker, api, demo, postgres (+ its helpers)

    worker = next(p for p in running if "worker" in " ".join(p.cmdline()))
    # A worker still importing dies of a SIGTERM as any process does (status -15): on a busy
    # machine the API can answer before the worker polls, so wait for the worker to say it does.
    worker_log = dev_stack.data_dir / "logs" / "worker-1.log"
    deadline = time.monotonic() + 60
    while "worker polling task queue" not in worker_log.read_text(errors="replace"):
        assert time.monotonic() < deadline, worker_log.read_text(errors="replace")[-2000:]
        time.sleep(0.1)
    worker.send_signal(signal.SIGTERM)  # a worker leaves gracefully; the stack carries on
    worker.wait(30)  # not our child: its status shows in the dev stack's output below
    time.sleep(1)
    assert dev_stack.process is not None and dev_stack.process.poll() is None
    assert httpx.get(f"{dev_stack.api}/healthz").status_code == 200

    assert dev_stack.interrupt() == 0
    assert "worker-1 exited with status 0" in "".join(dev_stack.output)
    # The stack is development: nothing to warn of.
    assert "warning" not in "".join(dev_stack.output)
    psutil.wait_procs(running, timeout=10)
    assert [p.pid for p in running if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []

    dev_stack.start()
    again = httpx.get(f"{dev_stack.api}/v1/customers/{created.json()['id']}", headers=headers)
    assert again.status_code == 200
    assert again.json()["external_id"] == "dev-1"


def test_each_worker_of_the_dev_stack_gets_its_own_metrics_port() -> None:
    from devtools.stack import worker_metrics_address

    assert [worker_metrics_address("127.0.0.1:9464", n) for n in range(3)] == [
        "127.0.0.1:9464",
        "127.0.0.1:9465",
        "127.0.0.1:9466",
    ]
    assert worker_metrics_address("", 2) == ""
