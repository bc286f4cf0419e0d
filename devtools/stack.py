"""`make dev`: the whole stack on this machine (PostgreSQL, Temporal, sandbox PSP, workers, API)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from domain import search_attributes
from paysaga.backup import streaming_enabled
from paysaga.database import run_migrations, start_embedded_postgres
from paysaga.settings import (
    DEV_MERCHANT_2_KEY,
    DEV_MERCHANT_KEY,
    DEV_OPS_KEY,
    DEV_PLATFORM_KEY,
    Settings,
    get_settings,
)

# SQLite in WAL mode and faster history polling: about 2.5x the workflow throughput of the
# dev server's defaults on a 2-core machine, at a fifth of the latency.
TEMPORAL_DEV_SERVER_FLAGS = [
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=normal",
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=2000",
    "--dynamic-config-value",
    "history.timerProcessorMaxPollRPS=2000",
]


DEMO_CHECKOUT = "devtools.demo_checkout"


class StackError(RuntimeError):
    """A component of the stack did not come up."""


@dataclass
class ProcessGroup:
    """Child processes started by us, stopped by PID in reverse order of start."""

    log_dir: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            list(argv),
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
        )
        self.processes.append((name, process))
        return process

    def first_exited(self) -> tuple[str, int] | None:
        for name, process in self.processes:
            code = process.poll()
            if code is not None:
                return name, code
        return None

    def forget(self, name: str) -> None:
        """Stop watching a child that has exited."""
        self.processes = [e for e in self.processes if e[0] != name]

    def stop(self, name: str, timeout: float = 15.0) -> None:
        for entry in [e for e in self.processes if e[0] == name]:
            _terminate(entry[1], timeout)
            self.processes.remove(entry)

    def stop_all(self, timeout: float = 15.0) -> None:
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _name, process in reversed(self.processes):
            _terminate(process, timeout)
        self.processes.clear()


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now (for stacks on free ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise StackError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise StackError(f"{url} does not answer after {timeout:.0f}s")


def installed_binary(name: str) -> str:
    """A command installed by a wheel into this Python's bin folder (or else found on PATH)."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise StackError(
            f"{name} is not installed: it is a development tool (the `dev` extra); run `make dev`"
            " or `make test`, or pip install 'paysaga[dev]'"
        )
    return found


def temporal_dev_server_argv(
    *,
    port: int,
    ui_port: int,
    db_file: Path,
    headless: bool = False,
    codec_endpoint: str | None = None,
) -> list[str]:
    """`temporal server start-dev` on loopback with the project's search attributes."""
    argv = [
        installed_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str(db_file),
        "--log-level",
        "warn",
        *search_attributes.dev_server_flags(),
        *TEMPORAL_DEV_SERVER_FLAGS,
    ]
    argv += ["--headless"] if headless else ["--ui-port", str(ui_port)]
    if codec_endpoint and not headless:
        argv += ["--ui-codec-endpoint", codec_endpoint]
    return argv


def service_env(settings: Settings, database_url: str) -> dict[str, str]:
    """The environment every paysaga process of the stack shares."""
    return {
        # Said explicitly: the stack runs with the public development keys and secrets.
        "PAYSAGA_ENVIRONMENT": "development",
        "PAYSAGA_DATABASE_URL": database_url,
        "PAYSAGA_TEMPORAL_ADDRESS": settings.temporal_address,
        "PAYSAGA_TEMPORAL_NAMESPACE": settings.temporal_namespace,
        # The stack's own dev server: plain, whatever Temporal profile this machine has.
        "PAYSAGA_TEMPORAL_TLS": "false",
        "PAYSAGA_TEMPORAL_API_KEY": "",
        "PAYSAGA_TASK_QUEUE": settings.task_queue,
        "PAYSAGA_DATA_DIR": str(settings.data_dir.resolve()),
        "PAYSAGA_PSP_URL": settings.psp_url,
        "PAYSAGA_PSP_PORT": str(settings.psp_port),
        "PAYSAGA_PSP_WEBHOOK_URL": settings.psp_webhook_url,
        "PYTHONUNBUFFERED": "1",
        # The local Temporal UI sends no API key: let it decode payloads from loopback.
        "PAYSAGA_CODEC_OPEN_TO_LOCAL_UI": "true",
    }


def run_dev_stack(settings: Settings, workers: int = 1) -> int:
    """Start everything, print where it is, and stop it all on Ctrl-C. Data stays in data_dir."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    group = ProcessGroup(data_dir / "logs")
    postgres = None
    interrupted = False

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a shell that starts us in the background may have ignored SIGINT.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        step("PostgreSQL", "starting the embedded server")
        if settings.database_url:
            database_url = settings.database_url
        else:
            postgres, database_url = start_embedded_postgres(data_dir / "postgres")
        # The migrations run in this process: as the stack's own processes, in development (the
        # data-at-rest migration would otherwise warn about sealing with the development key).
        os.environ["PAYSAGA_ENVIRONMENT"] = "development"
        get_settings.cache_clear()
        if postgres is not None and streaming_enabled(database_url):
            # `paysaga backup enable` was run: commits (the migrations' too) wait for the
            # receiver, so it runs first.
            step("Backup", "receiving the WAL (paysaga backup stream)")
            stream = [sys.executable, "-m", "paysaga.cli", "backup", "stream"]
            group.start("wal-receiver", stream, {"PAYSAGA_DATA_DIR": str(data_dir)})
        run_migrations(database_url)

        host, _, port = settings.temporal_address.rpartition(":")
        api = f"http://{settings.api_host}:{settings.api_port}"
        step("Temporal", "starting the dev server")
        group.start(
            "temporal",
            temporal_dev_server_argv(
                port=int(port),
                ui_port=settings.temporal_ui_port,
                db_file=data_dir / "temporal.db",
                codec_endpoint=f"{api}/codec",
            ),
            {},
        )
        wait_for_port(host, int(port), timeout=60)

        env = service_env(settings, database_url)
        step("Sandbox PSP", "starting")
        group.start("sandbox-psp", [sys.executable, "-m", "sandbox_psp"], env)
        wait_for_http(f"{settings.psp_url}/healthz")

        for n in range(workers):
            step("Worker", f"starting worker {n + 1}")
            metrics = worker_metrics_address(settings.worker_metrics_address, n)
            worker_env = {**env, "PAYSAGA_WORKER_METRICS_ADDRESS": metrics}
            group.start(f"worker-{n + 1}", [sys.executable, "-m", "worker"], worker_env)

        step("API", "starting")
        group.start("api", [sys.executable, "-m", "api"], env)
        wait_for_http(f"{api}/healthz", timeout=60)

        # A merchant's checkout page, apart from the API: README, "Try a 3-D Secure deposit".
        step("Demo checkout", "starting")
        demo = f"http://127.0.0.1:{settings.demo_port}"
        demo_argv = ["--port", str(settings.demo_port), "--api-url", api]
        group.start("demo-checkout", [sys.executable, "-m", DEMO_CHECKOUT, *demo_argv], env)
        wait_for_http(demo)

        print(
            f"""
paysaga is running. Ctrl-C stops everything; data stays in {data_dir}.

  API            {api}           (docs: {api}/docs)
  Temporal UI    http://127.0.0.1:{settings.temporal_ui_port}
  Codec endpoint {api}/codec     (decrypts payloads: {DEV_PLATFORM_KEY}, or the local UI)
  Temporal gRPC  {settings.temporal_address}
  Sandbox PSP    {settings.psp_url}
  Demo checkout  {demo}           (a deposit through 3-D Secure or pay by bank, in a browser)
  PostgreSQL     {database_url}
  Workers        {workers} on task queue {settings.task_queue}; metrics from {settings.worker_metrics_address}
  Logs           {group.log_dir}/
  API keys       mer_dev: {DEV_MERCHANT_KEY} (payments), {DEV_OPS_KEY} (payments + ops)
                 mer_dev_2: {DEV_MERCHANT_2_KEY} (payments + ops); platform: {DEV_PLATFORM_KEY}
""",
            flush=True,
        )
        while True:
            time.sleep(0.5)
            exited = group.first_exited()
            if exited is None:
                continue
            name, code = exited
            print(f"{name} exited with status {code}; see {group.log_dir / name}.log", flush=True)
            if not name.startswith("worker-"):
                return 1
            # Workers come and go (a rolling restart, a SIGTERM to try graceful shutdown): the
            # others carry on with the work; start one by hand with `python -m worker`.
            group.forget(name)
    except KeyboardInterrupt:
        interrupted = True
        return 0
    except StackError as exc:
        print(f"paysaga dev: {exc}; logs in {group.log_dir}/", file=sys.stderr)
        return 1
    finally:
        if interrupted:
            print("\nstopping...", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        group.stop_all()
        if postgres is not None:
            postgres.cleanup()
        if interrupted:
            print("stopped.", flush=True)


def worker_metrics_address(first: str, n: int) -> str:
    """The metrics address of the n-th worker (from 0): the next ports after the first's."""
    host, _, port = first.rpartition(":")
    if not port or int(port) == 0:
        return first  # metrics off, or an ephemeral port: nothing to spread
    return f"{host}:{int(port) + n}"


def step(component: str, message: str) -> None:
    print(f"[{component}] {message}", flush=True)
