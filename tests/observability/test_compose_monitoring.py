"""docker-compose's monitoring: Prometheus' configuration is valid and scrapes what the services
serve, Grafana is provisioned with the dashboards' data source."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.observability.test_alert_rules import promtool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_prometheus_configuration_passes_promtool(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    # The container's paths, pointed at the files compose mounts there.
    mounts = {
        target: source
        for source, target, *_ in (
            str(v).split(":") for v in compose()["services"]["prometheus"]["volumes"]
        )
    }
    config["rule_files"] = [str(ROOT / mounts[path]) for path in config["rule_files"]]
    for job in config["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(
                DEPLOY / "prometheus" / "metrics-token.empty"
            )
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))

    done = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_scrapes_the_api_and_every_worker_where_they_listen() -> None:
    services = compose()["services"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    api_port = services["api"]["environment"]["PAYSAGA_API_PORT"]
    assert jobs["paysaga-api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    # Every replica's address (compose DNS), on the port the workers bind on every interface.
    worker_address = services["worker"]["environment"]["PAYSAGA_WORKER_METRICS_ADDRESS"]
    assert worker_address == "0.0.0.0:9464"
    (discovery,) = jobs["paysaga-worker"]["dns_sd_configs"]
    assert (discovery["names"], discovery["port"]) == (["worker"], 9464)


def test_grafana_is_provisioned_with_the_dashboards_data_source() -> None:
    grafana = DEPLOY / "grafana"
    sources = yaml.safe_load(
        (grafana / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uids = {source["uid"] for source in sources["datasources"]}
    used = {
        target["datasource"]["uid"]
        for path in (grafana / "dashboards").glob("*.json")
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    }
    assert used == {"prometheus"}
    assert used <= uids
    mounted = [str(v).split(":")[1] for v in compose()["services"]["grafana"]["volumes"]]
    provider = yaml.safe_load((grafana / "provisioning" / "dashboards" / "paysaga.yml").read_text())
    assert provider["providers"][0]["options"]["path"] in mounted
