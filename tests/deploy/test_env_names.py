"""Every environment variable the deployment files set is one the gateway really reads."""

from __future__ import annotations

import pytest

from .env_names import collect
from .manifests import (
    GATEWAY_COMPOSE_SERVICES,
    compose,
    containers,
    dockerfile,
    k8s_object,
    pod_specs,
)

READ = collect()


def _k8s_names() -> list[tuple[str, str]]:
    names = [
        ("ConfigMap/api-gateway-config", n)
        for n in k8s_object("ConfigMap", "api-gateway-config")["data"]
    ]
    names += [
        ("Secret/api-gateway-secrets", n)
        for n in k8s_object("Secret", "api-gateway-secrets")["stringData"]
    ]
    for workload, pod in pod_specs():
        for container in containers(pod):
            names += [
                (f"{workload}/{container['name']}", e["name"]) for e in container.get("env", [])
            ]
    return names


def _compose_names() -> list[tuple[str, str]]:
    services = compose()["services"]
    return [
        (f"compose:{service}", name)
        for service in GATEWAY_COMPOSE_SERVICES
        for name in services[service]["environment"]
    ]


def _dockerfile_names() -> list[tuple[str, str]]:
    return [("Dockerfile", name) for name in dockerfile().envs]


SET_NAMES = _k8s_names() + _compose_names() + _dockerfile_names()


@pytest.mark.parametrize(
    ("where", "name"), [pytest.param(w, n, id=f"{w}:{n}") for w, n in SET_NAMES]
)
def test_variable_set_for_the_gateway_is_read_by_it(where, name):
    assert READ.reads(name), f"{where} sets {name}, which nothing in the gateway reads"


@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("GATEWAY_CONFIG_POLL", True),
        ("GATEWAY_CONFIG_POL", False),  # a typo is caught, not silently ignored
        ("SECRET_KEY_FILE", True),  # env_secret's file variant
        ("DATABASE_URL_FILE", True),  # the URL holds a password: env_secret
        ("ALLOWED_HOSTS_FILE", False),  # not a secret setting
        ("GATEWAY_SERVICE_RD_SERVICE_URL", True),  # the per-service URL override
        ("GATEWAY_SERVICE_URL", False),
        ("GATEWAY_DRAIN", True),  # gunicorn.conf.py
        ("GATEWAY_ADMIN_PASSWORD", True),  # ensure_admin
        ("GATEWAY_CONFIG", True),  # the Makefile and the release step
        ("REDIS_HOST", False),  # the design document's name; the gateway uses REDIS_URL
    ],
)
def test_name_collection_knows_what_the_gateway_reads(name, read):
    assert READ.reads(name) is read
