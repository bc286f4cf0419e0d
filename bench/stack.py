"""The benchmark's own stack: PostgreSQL, Temporal, sandbox PSP, worker(s) and API on free ports."""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.stack import (
    ProcessGroup,
    free_port,
    service_env,
    temporal_dev_server_argv,
    wait_for_http,
    wait_for_port,
)
from paysaga.database import run_migrations, start_embedded_postgres
from paysaga.settings import Settings

# The bench measures paysaga, not the sandbox's business rules: no velocity refusals under load.
BENCH_SERVICE_ENV = {
    "PAYSAGA_VELOCITY_MAX_PAYMENTS": "1000000000",
    "PYTHONUNBUFFERED": "1",
}


@dataclass
class BenchStack:
    """A stack started for one bench run; everything is stopped and its data removed on stop."""

    api_url: str
    temporal_address: str
    database_url: str
    data_dir: Path
    group: ProcessGroup
    postgres: Any = None
    worker_metrics: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # the services' environment

    def pids(self) -> dict[str, int]:
        """Name -> PID of every process we started (PostgreSQL's postmaster included)."""
        pids = {name: p.pid for name, p in self.group.processes if p.poll() is None}
        postmaster = postgres_pid(self.data_dir / "postgres")
        if postmaster is not None:
            pids["postgres"] = postmaster
        return pids

    def stop(self, keep_data: bool = False) -> None:
        self.group.stop_all()
        if self.postgres is not None:
            self.postgres.cleanup()
            self.postgres = None
        if not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def postgres_pid(pg_dir: Path) -> int | None:
    """The postmaster's PID from its pid file (its backends are its children)."""
    for pid_file in pg_dir.rglob("postmaster.pid"):
        try:
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    return None


def start_stack(
    *, workers: int = 1, api_workers: int = 1, psp_webhook_delay: float = 0.0, log: Any = print
) -> BenchStack:
    """Start the whole stack in a fresh temp data dir; on failure, stop what did start."""
    data_dir = Path(tempfile.mkdtemp(prefix="paysaga-bench-"))
    group = ProcessGroup(data_dir / "logs")
    api_port, psp_port, temporal_port = free_port(), free_port(), free_port()
    settings = Settings(
        data_dir=data_dir,
        temporal_address=f"127.0.0.1:{temporal_port}",
        api_port=api_port,
        psp_port=psp_port,
    )
    stack = BenchStack(
        api_url=f"http://127.0.0.1:{api_port}",
        temporal_address=settings.temporal_address,
        database_url="",
        data_dir=data_dir,
        group=group,
    )
    try:
        log("[bench] PostgreSQL: starting the embedded server")
        stack.postgres, stack.database_url = start_embedded_postgres(data_dir / "postgres")
        run_migrations(stack.database_url)

        log("[bench] Temporal: starting the dev server")
        group.start(
            "temporal",
            temporal_dev_server_argv(
                port=temporal_port, ui_port=0, db_file=data_dir / "temporal.db", headless=True
            ),
            {},
        )
        wait_for_port("127.0.0.1", temporal_port, timeout=60)

        env = {
            **service_env(settings, stack.database_url),
            **BENCH_SERVICE_ENV,
            "PAYSAGA_API_PORT": str(api_port),
            "PAYSAGA_API_WORKERS": str(api_workers),  # processes, each with its wallet engine
            "PAYSAGA_PSP_WEBHOOK_DELAY_SECONDS": str(psp_webhook_delay),
        }
        stack.env = env
        log("[bench] sandbox PSP, worker(s), API: starting")
        group.start("sandbox-psp", [sys.executable, "-m", "sandbox_psp"], env)
        wait_for_http(f"{settings.psp_url}/healthz")
        for n in range(1, workers + 1):
            metrics = f"127.0.0.1:{free_port()}"
            stack.worker_metrics.append(metrics)
            worker_env = {**env, "PAYSAGA_WORKER_METRICS_ADDRESS": metrics}
            group.start(f"worker-{n}", [sys.executable, "-m", "worker"], worker_env)
        group.start("api", [sys.executable, "-m", "api"], env)
        wait_for_http(f"{stack.api_url}/healthz", timeout=60)
    except BaseException:
        stack.stop(keep_data=True)
        log(f"[bench] the stack did not come up; logs in {group.log_dir}/")
        raise
    return stack
