"""deploy/k8s renders, is valid against the Kubernetes schemas, and agrees with the code.

No cluster needed: the base and the example overlay are built (tests/k8s/kustomize.py, and
`kubectl kustomize` where installed, which must give the same), each document is checked against
the schemas of the oldest and the newest Kubernetes that kubernetes-validate bundles, and what the
manifests name (commands, probes, settings, files, selectors, grace periods) is checked against
paysaga itself.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from api.main import create_app
from paysaga.cli.main import build_parser
from paysaga.settings import Settings
from tests.k8s.kustomize import Resource, build, image_name

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
TARGETS = {"base": K8S / "base", "example": K8S / "overlays" / "example"}
KUBERNETES_VERSIONS = ["1.29.0", "1.37.0"]
SECRET_SETTINGS = {
    "database_url",
    "api_keys",
    "codec_keys",
    "data_keys",
    "psp_webhook_secrets",
    "merchant_webhook_secret",
    "decision_signing_keys",
    "metrics_token",
}


def key(resource: Resource) -> tuple[str, str]:
    return resource["kind"], resource["metadata"]["name"]


@pytest.fixture(scope="module", params=sorted(TARGETS))
def rendered(request: pytest.FixtureRequest) -> dict[tuple[str, str], Resource]:
    return {key(r): r for r in build(TARGETS[request.param])}


@pytest.fixture(scope="module")
def example() -> dict[tuple[str, str], Resource]:
    return {key(r): r for r in build(TARGETS["example"])}


def pod_specs(resources: dict[tuple[str, str], Resource]) -> dict[str, dict[str, Any]]:
    return {
        name: r["spec"]["template"]["spec"]
        for (kind, name), r in resources.items()
        if kind in ("Deployment", "Job")
    }


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def env_of(container: dict[str, Any], resources: dict[tuple[str, str], Resource]) -> dict[str, str]:
    """The container's environment: its ConfigMaps, then its own variables (secrets as '<secret>')."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= resources["ConfigMap", source["configMapRef"]["name"]]["data"]
    for variable in container.get("env", []):
        env[variable["name"]] = variable.get("value", "<secret>")
    return env


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_build_is_the_one_of_kubectl_kustomize(target: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(TARGETS[target])], check=True, capture_output=True, text=True
    ).stdout
    theirs = {key(r): r for r in yaml.safe_load_all(out) if r}

    assert {key(r): r for r in build(TARGETS[target])} == theirs


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_is_valid_against_the_kubernetes_schemas(
    rendered: dict[tuple[str, str], Resource], version: str
) -> None:
    invalid = {}
    for name, resource in rendered.items():
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            invalid[name] = exc.message
    assert invalid == {}


def test_the_deployments_jobs_hpa_and_budgets_are_there(
    rendered: dict[tuple[str, str], Resource],
) -> None:
    assert {
        ("Deployment", "paysaga-api"),
        ("Deployment", "paysaga-worker"),
        ("Service", "paysaga-api"),
        ("Job", "paysaga-migrate"),
        ("HorizontalPodAutoscaler", "paysaga-worker"),
        ("PodDisruptionBudget", "paysaga-api"),
        ("PodDisruptionBudget", "paysaga-worker"),
    } <= set(rendered)


def test_commands_exist_in_the_project(rendered: dict[tuple[str, str], Resource]) -> None:
    subcommands = {
        name
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices or ()
    }
    for pod in pod_specs(rendered).values():
        for container in containers(pod):
            argv = container["command"]
            if argv[:2] == ["python", "-m"]:
                assert (ROOT / f"{argv[2]}.py").exists() or (ROOT / argv[2]).is_dir(), argv
            else:
                assert argv[0] == "paysaga" and argv[1] in subcommands, shlex.join(argv)


def test_api_probes_are_the_shallow_routes_of_its_port(
    rendered: dict[tuple[str, str], Resource],
) -> None:
    (api,) = pod_specs(rendered)["paysaga-api"]["containers"]
    paths = set(create_app(Settings(environment="development")).openapi()["paths"])
    port = api["ports"][0]

    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert {"/readyz", "/livez"} <= paths
    assert env_of(api, rendered)["PAYSAGA_API_PORT"] == str(port["containerPort"])
    assert env_of(api, rendered)["PAYSAGA_API_HOST"] == "0.0.0.0"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"]["port"] == port["name"]


def test_shutdown_fits_in_the_grace_period(rendered: dict[tuple[str, str], Resource]) -> None:
    pods = pod_specs(rendered)
    api_pod, worker_pod = pods["paysaga-api"], pods["paysaga-worker"]
    (api,), (worker,) = api_pod["containers"], worker_pod["containers"]
    pre_stop = int(api["lifecycle"]["preStop"]["exec"]["command"][1])
    api_drain = float(env_of(api, rendered)["PAYSAGA_API_SHUTDOWN_SECONDS"])
    worker_drain = float(env_of(worker, rendered)["PAYSAGA_WORKER_SHUTDOWN_SECONDS"])

    assert pre_stop + api_drain < api_pod["terminationGracePeriodSeconds"]
    assert worker_drain < worker_pod["terminationGracePeriodSeconds"]


def test_every_variable_is_a_setting_and_every_secret_a_file(
    rendered: dict[tuple[str, str], Resource],
) -> None:
    fields = set(Settings.model_fields)
    for pod in pod_specs(rendered).values():
        for container in containers(pod):
            env = env_of(container, rendered)
            for name, value in env.items():
                if not name.startswith("PAYSAGA_"):
                    continue
                setting = name.removeprefix("PAYSAGA_").removesuffix("_FILE").lower()
                assert setting in fields, name
                assert value != "<secret>", f"{name}: secrets are files (PAYSAGA_X_FILE)"
            secret_files = {
                name.removeprefix("PAYSAGA_").removesuffix("_FILE").lower()
                for name in env
                if name.startswith("PAYSAGA_") and name.endswith("_FILE")
            }
            assert secret_files == SECRET_SETTINGS


def test_every_file_a_container_reads_is_mounted(
    rendered: dict[tuple[str, str], Resource],
) -> None:
    for pod in pod_specs(rendered).values():
        for container in containers(pod):
            env = env_of(container, rendered)
            mounts = [m["mountPath"] for m in container["volumeMounts"]]
            files = [v for n, v in env.items() if n.startswith("PAYSAGA_") and n.endswith("_FILE")]
            if container["command"][-1] != "migrate":  # the migration needs no Temporal
                files.append(env["TEMPORAL_CONFIG_FILE"])
                profile = rendered["ConfigMap", "paysaga-temporal"]["data"]["temporal.toml"]
                files += [
                    line.split("=", 1)[1].strip().strip('"')
                    for line in profile.splitlines()
                    if line.strip().endswith(('.crt"', '.key"'))
                ]
            for path in files:
                assert any(path.startswith(mount + "/") for mount in mounts), path
            assert (
                env["TEMPORAL_CONFIG_FILE"].rsplit("/", 1)[1]
                in (rendered["ConfigMap", "paysaga-temporal"]["data"])
            )


def test_selectors_reach_their_pods(rendered: dict[tuple[str, str], Resource]) -> None:
    labels = {
        name: r["spec"]["template"]["metadata"]["labels"]
        for (kind, name), r in rendered.items()
        if kind == "Deployment"
    }
    service = rendered["Service", "paysaga-api"]["spec"]["selector"]
    assert service.items() <= labels["paysaga-api"].items()
    for name in ("paysaga-api", "paysaga-worker"):
        budget = rendered["PodDisruptionBudget", name]["spec"]["selector"]["matchLabels"]
        assert budget.items() <= labels[name].items()
        deployment = rendered["Deployment", name]["spec"]["selector"]["matchLabels"]
        assert deployment.items() <= labels[name].items()
    target = rendered["HorizontalPodAutoscaler", "paysaga-worker"]["spec"]["scaleTargetRef"]
    assert ("Deployment", target["name"]) in rendered


def test_every_container_has_resources_and_runs_as_the_image_user(
    rendered: dict[tuple[str, str], Resource],
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for pod in pod_specs(rendered).values():
        assert f"--uid {pod['securityContext']['runAsUser']}" in dockerfile
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in containers(pod):
            assert container["resources"]["requests"]["cpu"]
            assert container["resources"]["limits"]["memory"]


def test_metrics_are_scraped_on_the_ports_the_processes_serve(
    rendered: dict[tuple[str, str], Resource],
) -> None:
    for name in ("paysaga-api", "paysaga-worker"):
        template = rendered["Deployment", name]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        (container,) = template["spec"]["containers"]
        ports = {str(p["containerPort"]) for p in container["ports"]}
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] in ports
    (worker,) = rendered["Deployment", "paysaga-worker"]["spec"]["template"]["spec"]["containers"]
    address = env_of(worker, rendered)["PAYSAGA_WORKER_METRICS_ADDRESS"]
    assert address == f"0.0.0.0:{worker['ports'][0]['containerPort']}"


def test_example_overlay_pins_the_image_and_reaches_temporal_cloud(
    example: dict[tuple[str, str], Resource], tmp_path: Path
) -> None:
    for pod in pod_specs(example).values():
        for container in containers(pod):
            assert image_name(container["image"]) == "registry.example.com/payments/paysaga"
            assert not container["image"].endswith(":latest")
    profile = tmp_path / "temporal.toml"
    profile.write_text(example["ConfigMap", "paysaga-temporal"]["data"]["temporal.toml"])
    from temporalio.envconfig import ClientConfigProfile

    loaded = ClientConfigProfile.load(
        config_source=profile, override_env_vars={"TEMPORAL_API_KEY": "key"}
    )
    config = loaded.to_client_connect_config()
    assert config["target_host"].endswith(".api.temporal.io:7233")
    assert config["tls"] is True
