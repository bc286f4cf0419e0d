"""Pictures of the Grafana dashboards after a chaos run: `python -m bench.dashboard_screenshots`.

Grafana is not a Debian package and cannot run here, so each dashboard's panels
(deploy/grafana/dashboards/*.json) are drawn with matplotlib from the answers of a real Prometheus
(Debian's) that scraped the API and the workers of `python -m devtools.chaos` every second
while it ran. Writes docs/dashboards/<dashboard uid>.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from devtools.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
OUT = ROOT / "docs" / "dashboards"
RATE_INTERVAL = "15s"  # what Grafana's $__rate_interval would be at a 1 s scrape interval


def prometheus_config(folder: Path, worker_ports: list[int]) -> Path:
    workers = ", ".join(f'"127.0.0.1:{port}"' for port in worker_ports)
    config = folder / "prometheus.yml"
    config.write_text(
        f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: paysaga-api
    file_sd_configs: [{{files: ["{folder / "api-targets.json"}"], refresh_interval: 1s}}]
  - job_name: paysaga-worker
    static_configs: [{{targets: [{workers}]}}]
"""
    )
    (folder / "api-targets.json").write_text("[]")
    return config


def two_free_ports() -> int:
    """A port whose next one is free too (the chaos run's two workers)."""
    while True:
        first = free_port()
        try:
            probe = socket.create_server(("127.0.0.1", first + 1))
        except OSError:
            continue
        probe.close()
        return first


def api_port_of(chaos: psutil.Process) -> str | None:
    """The chaos run's API port, read from its API process's environment."""
    for child in chaos.children(recursive=True):
        try:
            if child.cmdline()[-2:] == ["-m", "api"]:
                port: str | None = child.environ().get("PAYSAGA_API_PORT")
                return port
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def run_chaos(
    folder: Path, chaos_args: list[str], first_worker_port: int
) -> tuple[float, float, int]:
    """The chaos run, its API target written for Prometheus once known; (start, end, exit)."""
    env = {
        **os.environ,
        "PAYSAGA_CHAOS_WORKER_METRICS_ADDRESS": f"127.0.0.1:{first_worker_port}",
        "PAYSAGA_METRICS_REFRESH_SECONDS": "2",
    }
    started = time.time()
    with (folder / "chaos.log").open("wb") as log:
        chaos = subprocess.Popen(
            [sys.executable, "-m", "devtools.chaos", *chaos_args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        watched = psutil.Process(chaos.pid)
        while chaos.poll() is None:
            port = api_port_of(watched)
            if port:
                targets = [{"targets": [f"127.0.0.1:{port}"]}]
                (folder / "api-targets.json").write_text(json.dumps(targets))
                break
            time.sleep(0.5)
        status = chaos.wait()
    return started, time.time(), status


def query_range(prometheus: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    params: dict[str, str | float] = {
        "query": expr.replace("$__rate_interval", RATE_INTERVAL),
        "start": start,
        "end": end,
        "step": 2,
    }
    answer = httpx.get(f"{prometheus}/api/v1/query_range", params=params, timeout=30).json()
    if answer["status"] != "success":
        raise RuntimeError(f"{expr}: {answer}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()


def render(dashboard: dict[str, Any], prometheus: str, start: float, end: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = dashboard["panels"]
    rows = math.ceil(len(panels) / 2)
    figure, axes = plt.subplots(rows, 2, figsize=(14, 3.4 * rows), squeeze=False)
    for axis, panel in zip(axes.flat, panels, strict=False):
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        for target in panel["targets"]:
            for series in query_range(prometheus, target["expr"], start, end):
                times = [float(t) - start for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                axis.plot(times, values, label=legend(target["legendFormat"], series["metric"]))
        axis.set_title(panel["title"], fontsize=10)
        axis.set_xlabel("seconds into the chaos run", fontsize=8)
        axis.set_ylabel(unit, fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6, loc="upper left", ncol=2)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(f"{dashboard['title']} (from Prometheus, after a chaos run)")
    figure.tight_layout()
    figure.savefig(out, dpi=80)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=25, help="seconds of chaos load")
    parser.add_argument("--keep", action="store_true", help="keep the chaos run's data and logs")
    args = parser.parse_args()
    binary = shutil.which("prometheus")
    if binary is None:
        print("prometheus is missing: apt-get install prometheus", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="paysaga-dashboards-"))
    first = two_free_ports()
    config = prometheus_config(folder, [first, first + 1])
    address = f"127.0.0.1:{free_port()}"
    prometheus = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={address}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "prometheus.log").open("wb"),
    )
    try:
        chaos_args = ["--duration", str(args.duration), *(["--keep"] if args.keep else [])]
        start, end, status = run_chaos(folder, chaos_args, first)
        print((folder / "chaos.log").read_text(errors="replace")[-1500:])
        OUT.mkdir(parents=True, exist_ok=True)
        for path in sorted(DASHBOARDS.glob("*.json")):
            dashboard = json.loads(path.read_text())
            render(dashboard, f"http://{address}", start, end, OUT / f"{dashboard['uid']}.png")
            print(f"wrote {OUT / (dashboard['uid'] + '.png')}")
    finally:
        prometheus.terminate()
        prometheus.wait(15)
    print(f"chaos exit status {status}; Prometheus data and logs in {folder}")
    return status


if __name__ == "__main__":
    sys.exit(main())
