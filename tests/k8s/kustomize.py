"""A Kustomize-free build of deploy/k8s: the subset of Kustomize the manifests use.

`resources` (files and folders with a kustomization), `namespace`, `images`, `replicas` and
`patches` as JSON 6902 operations with a kind/name target. Anything else in a kustomization is
refused, so that the manifests cannot drift into what this build does not do; where `kubectl` is
installed, the tests compare this build with `kubectl kustomize`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}


def build(folder: Path) -> list[Resource]:
    """The resources of the kustomization in `folder`, as `kubectl kustomize folder` gives them."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise ValueError(f"{folder}: kustomization fields not supported here: {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            resources += build(path)
        else:
            resources += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for patch in spec.get("patches", []):
        operations = yaml.safe_load(
            (folder / patch["path"]).read_text() if "path" in patch else patch["patch"]
        )
        for resource in _targets(resources, patch["target"]):
            for operation in operations:
                _apply(resource, operation)
    for image in spec.get("images", []):
        for resource in resources:
            _set_image(resource, image)
    for replicas in spec.get("replicas", []):
        for resource in resources:
            if resource["metadata"]["name"] == replicas["name"] and "replicas" in resource["spec"]:
                resource["spec"]["replicas"] = replicas["count"]
    if "namespace" in spec:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = spec["namespace"]
    return resources


def _targets(resources: list[Resource], target: dict[str, str]) -> list[Resource]:
    found = [
        r
        for r in resources
        if all(
            r["kind"] == value if key == "kind" else r["metadata"]["name"] == value
            for key, value in target.items()
        )
    ]
    if not found:
        raise ValueError(f"patch target {target} matches no resource")
    return found


def _apply(resource: Resource, operation: dict[str, Any]) -> None:
    """One JSON 6902 operation (add, replace, remove)."""
    *parents, last = [
        part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]
    ]
    node: Any = resource
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del node[index]
        else:
            raise ValueError(f"JSON patch operation {op} not supported here")
    elif op in ("add", "replace"):
        if op == "replace" and last not in node:
            raise ValueError(f"replace of a missing {operation['path']}")
        node[last] = copy.deepcopy(operation["value"])
    elif op == "remove":
        del node[last]
    else:
        raise ValueError(f"JSON patch operation {op} not supported here")


def image_name(image: str) -> str:
    """`registry/name:tag@digest` -> `registry/name`."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _set_image(node: Any, image: dict[str, str]) -> None:
    if isinstance(node, list):
        for item in node:
            _set_image(item, image)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers"):
                for container in value:
                    if image_name(container["image"]) == image["name"]:
                        container["image"] = _new_image(container["image"], image)
            else:
                _set_image(value, image)


def _new_image(current: str, image: dict[str, str]) -> str:
    name = image.get("newName", image_name(current))
    if "digest" in image:
        return f"{name}@{image['digest']}"
    if "newTag" in image:
        return f"{name}:{image['newTag']}"
    return name + current[len(image_name(current)) :]
