"""Loading the deployment files the way their tools read them, for the static checks."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
NAMESPACE = "api-gateway"
# Services of the compose file that run the gateway image (the others are stock images).
GATEWAY_COMPOSE_SERVICES = ("migrate", "gateway", "healthcheck")


@cache
def _parsed_k8s_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    documents = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path.name, document))
    return tuple(documents)


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every non-empty document of every manifest, with its file name (a copy to change)."""
    return copy.deepcopy(list(_parsed_k8s_documents()))


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    """The one manifest object of `kind` named `name` (a copy to change)."""
    found = [
        doc
        for _, doc in _parsed_k8s_documents()
        if doc["kind"] == kind and doc["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return copy.deepcopy(found[0])


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload in the manifests."""
    for _, doc in _parsed_k8s_documents():
        if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers and containers of a pod spec."""
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container gets: ConfigMap/Secret `envFrom` first, then its `env`."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(k8s_object("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            env.update(k8s_object("Secret", source["secretRef"]["name"])["stringData"])
    for item in container.get("env", []):
        env[item["name"]] = str(item.get("value", ""))
    return env


def compose() -> dict[str, Any]:
    """The compose file (anchors and merge keys resolved by PyYAML)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def dockerfile() -> DockerfileParser:
    """The Dockerfile, parsed."""
    return DockerfileParser(path=str(DOCKERFILE), cache_content=True)


def dockerfile_stages() -> list[list[dict[str, Any]]]:
    """The Dockerfile's instructions, one list per stage (comments left out)."""
    stages: list[list[dict[str, Any]]] = []
    for instruction in dockerfile().structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages and instruction["instruction"] != "COMMENT":
            stages[-1].append(instruction)
    return stages
