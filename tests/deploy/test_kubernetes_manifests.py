"""The Kubernetes manifests: valid objects that fit together and fit what the gateway serves."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
from django.urls import resolve

from gateway_project import health
from gateway_project.probe import PROBE_HOST_HEADER, probe_port

from .manifests import (
    K8S_DIR,
    NAMESPACE,
    container_env,
    containers,
    k8s_documents,
    k8s_object,
    pod_specs,
)

# The oldest Kubernetes we promise (native sidecars, PodDisruptionBudget v1, HPA v2).
KUBERNETES_VERSION = "1.29.0"
PROBE_VIEWS = {
    "livenessProbe": health.liveness,
    "startupProbe": health.liveness,
    "readinessProbe": health.readiness,
}
PLACEHOLDER = "REPLACE_ME"


def _gateway() -> dict[str, Any]:
    deployment = k8s_object("Deployment", "api-gateway")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _named_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_every_manifest_parses_into_objects_with_kind_and_name():
    documents = k8s_documents()
    kinds = {doc["kind"] for _, doc in documents}
    assert {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "Ingress",
        "Job",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    } <= kinds
    for file_name, doc in documents:
        if doc["kind"] != "Kustomization":
            assert doc.get("apiVersion") and doc["metadata"].get("name"), file_name


@pytest.mark.parametrize(
    ("file_name", "document"),
    [
        pytest.param(f, d, id=f"{f}:{d['kind']}")
        for f, d in k8s_documents()
        if d["kind"] != "Kustomization"  # kustomize's own file: test_kustomization_lists_...
    ],
)
def test_manifest_is_valid_against_the_kubernetes_schema(file_name, document):
    # strict: an unknown field (a typo such as `readinesProbe`) is an error, not ignored.
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_schema_validation_rejects_a_misspelt_field():
    deployment = k8s_object("Deployment", "api-gateway")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_namespaced_object_lives_in_the_gateway_namespace():
    for file_name, doc in k8s_documents():
        if doc["kind"] in ("Namespace", "Kustomization"):
            continue
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{file_name}: {doc['kind']}"


def test_kustomization_lists_every_long_lived_object():
    kustomization = next(doc for _, doc in k8s_documents() if doc["kind"] == "Kustomization")
    listed = set(kustomization["resources"])
    # The Job runs once per release and the Secret is a template: both are applied by hand.
    expected = {p.name for p in K8S_DIR.glob("*.yaml")} - {
        "kustomization.yaml",
        "job-migrate.yaml",
        "secret.yaml",
    }
    assert listed == expected
    images = {image["name"] for image in kustomization["images"]}
    for _, pod in pod_specs():
        for container in containers(pod):
            assert container["image"].rsplit(":", 1)[0] in images


@pytest.mark.parametrize("probe", sorted(PROBE_VIEWS))
def test_probe_path_resolves_to_the_health_view_not_the_proxy(probe):
    container = _gateway()
    path = container[probe]["httpGet"]["path"]
    assert resolve(path).func is PROBE_VIEWS[probe]


@pytest.mark.parametrize("probe", sorted(PROBE_VIEWS))
def test_probe_port_is_the_port_the_gateway_binds(probe):
    container = _gateway()
    bind = container_env(container)["GATEWAY_BIND"]
    assert _named_port(container, container[probe]["httpGet"]["port"]) == probe_port(bind)


@pytest.mark.parametrize("probe", sorted(PROBE_VIEWS))
def test_probe_host_header_is_an_allowed_host(probe):
    container = _gateway()
    headers = {h["name"]: h["value"] for h in container[probe]["httpGet"]["httpHeaders"]}
    allowed = container_env(container)["ALLOWED_HOSTS"].split(",")
    # Without it Django answers the kubelet's Host: <pod IP> with 400 and the pod never starts.
    assert headers["Host"] == PROBE_HOST_HEADER
    assert PROBE_HOST_HEADER in allowed


@pytest.mark.django_db
@pytest.mark.parametrize("probe", sorted(PROBE_VIEWS))
def test_probe_request_as_the_kubelet_sends_it_answers_200(probe, client, settings):
    container = _gateway()
    settings.ALLOWED_HOSTS = container_env(container)["ALLOWED_HOSTS"].split(",")
    get = container[probe]["httpGet"]
    headers = {h["name"]: h["value"] for h in get["httpHeaders"]}
    response = client.get(get["path"], HTTP_HOST=headers["Host"])
    assert response.status_code == 200, response.content


def test_service_and_ingress_lead_to_the_gateway_port():
    container = _gateway()
    deployment = k8s_object("Deployment", "api-gateway")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = k8s_object("Service", "api-gateway")
    assert _labels_match(service["spec"]["selector"], pod_labels)
    (port,) = service["spec"]["ports"]
    assert _named_port(container, port["targetPort"]) == probe_port(
        container_env(container)["GATEWAY_BIND"]
    )
    ingress = k8s_object("Ingress", "api-gateway")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert (
                backend["port"].get("name") == port["name"]
                or backend["port"].get("number") == port["port"]
            )
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts <= set(container_env(container)["ALLOWED_HOSTS"].split(","))


def test_deployment_selector_hpa_and_pdb_select_the_gateway_pods():
    deployment = k8s_object("Deployment", "api-gateway")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _labels_match(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    hpa = k8s_object("HorizontalPodAutoscaler", "api-gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "api-gateway",
    }
    assert hpa["spec"]["minReplicas"] >= 2, "one pod is not a multi-node gateway"
    pdb = k8s_object("PodDisruptionBudget", "api-gateway")
    assert _labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    # A rollout or a node drain never leaves fewer ready pods than the HPA's floor minus one.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pdb["spec"]["maxUnavailable"] == 1


def test_gateway_container_has_resources_and_its_secrets_as_files():
    container = _gateway()
    assert {"requests", "limits"} <= set(container["resources"])
    sources = {next(iter(source)) for source in container["envFrom"]}
    assert sources == {"configMapRef"}  # secrets come as files (tests/deploy/test_hardening.py)
    env = container_env(container)
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        assert name in k8s_object("Secret", "api-gateway-secrets")["stringData"], name
        assert name not in k8s_object("ConfigMap", "api-gateway-config")["data"], name
        assert name not in env, name
        assert env[f"{name}_FILE"] == f"/run/secrets/gateway/{name}"


@pytest.mark.parametrize(("workload", "pod"), [pytest.param(n, p, id=n) for n, p in pod_specs()])
def test_pods_run_non_root_with_a_read_only_root_filesystem(workload, pod):
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    for container in containers(pod):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]


@pytest.mark.parametrize(("workload", "pod"), [pytest.param(n, p, id=n) for n, p in pod_specs()])
def test_every_path_the_gateway_writes_is_a_writable_volume(workload, pod):
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for container in containers(pod):
        mounts = {
            m["mountPath"]: m["name"]
            for m in container["volumeMounts"]
            if m["name"] in empty_dirs and not m.get("readOnly")
        }
        env = container_env(container)
        writable = [env.get("GATEWAY_VAR_DIR", "/var/lib/gateway"), "/tmp"]
        if "PROMETHEUS_MULTIPROC_DIR" in env:
            writable.append(env["PROMETHEUS_MULTIPROC_DIR"])
        for path in writable:
            assert any(path == m or path.startswith(m + "/") for m in mounts), (
                container["name"],
                path,
            )
        # The static files collected into the image (/app/var/static) must not be hidden.
        assert not any("/app/var/static".startswith(m) for m in mounts), mounts


def test_termination_grace_covers_pre_stop_drain_and_graceful_timeout():
    deployment = k8s_object("Deployment", "api-gateway")
    pod = deployment["spec"]["template"]["spec"]
    container = _gateway()
    env = container_env(container)
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = int(re.fullmatch(r"(\d+)s", env["GATEWAY_DRAIN"])[1])  # type: ignore[index]
    needed = int(pre_stop[1]) + drain + int(env["GATEWAY_GRACEFUL_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > needed


def test_migration_job_runs_the_release_step_with_the_routes_file():
    job = k8s_object("Job", "api-gateway-migrate")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "gateway_project.release"]
    assert container["image"] == _gateway()["image"]
    env = container_env(container)
    config_path = env["GATEWAY_CONFIG"]
    mount = next(m for m in container["volumeMounts"] if config_path.startswith(m["mountPath"]))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    routes = k8s_object("ConfigMap", volume["configMap"]["name"])
    assert config_path.rsplit("/", 1)[1] in routes["data"]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1


def test_gateway_pods_wait_for_the_migrations_of_their_image():
    deployment = k8s_object("Deployment", "api-gateway")
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert init["image"] == _gateway()["image"]
    assert init["command"][:4] == ["python", "manage.py", "migrate", "--check"]


def test_secret_template_holds_placeholders_only():
    secret = k8s_object("Secret", "api-gateway-secrets")
    assert "data" not in secret, "base64 values would hide what they are"
    for name, value in secret["stringData"].items():
        assert PLACEHOLDER in value, name
        # Whatever is not the placeholder is structure (scheme, user, host), not key material.
        rest = value.replace(PLACEHOLDER, "")
        assert not re.search(r"[A-Za-z0-9+/_=-]{20,}", rest), name
