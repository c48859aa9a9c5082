"""Deploy hardening, offline: network policies, secrets as files, probes on every pod.

The manifests are read as Kubernetes reads them (label selectors with matchLabels and
matchExpressions, policies adding up); the settings that read the mounted files are run for
real in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from gateway_project.heartbeat import beat, is_fresh
from gateway_project.heartbeat import main as heartbeat_main

from .env_names import ROOT, collect
from .manifests import NAMESPACE, container_env, containers, k8s_documents, k8s_object

DOCS = (ROOT / "docs" / "deploy.md").read_text()
SECRET_DIR = "/run/secrets/gateway"
# What each workload must be able to reach, and nothing more.
DNS = ("kube-system", "k8s-app=kube-dns", 53)
POSTGRES = ("databases", "app.kubernetes.io/name=postgresql", 5432)
REDIS = ("databases", "app.kubernetes.io/name=redis", 6379)
UPSTREAMS = ("django-gateway/upstream=allowed", None, None)
EXPECTED_EGRESS = {
    "Deployment/api-gateway": {DNS, POSTGRES, REDIS, UPSTREAMS},
    "Deployment/api-gateway-healthcheck": {DNS, POSTGRES, REDIS, UPSTREAMS},
    "Job/api-gateway-migrate": {DNS, POSTGRES, REDIS},
}


def _workloads() -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod template) of every workload."""
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"])
        for _, doc in k8s_documents()
        if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob")
    ]


def _policies() -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_documents() if doc["kind"] == "NetworkPolicy"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector, as the API server evaluates it ({} selects everything)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _policies_for(labels: dict[str, str], direction: str) -> list[dict[str, Any]]:
    return [
        p
        for p in _policies()
        if direction in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], labels)
    ]


def _peer(peer: dict[str, Any]) -> tuple[str, str | None]:
    """A policy peer as (namespace, pod labels) in the `key=value` spelling of EXPECTED_EGRESS."""
    namespace = peer["namespaceSelector"]["matchLabels"]
    pods = peer.get("podSelector", {}).get("matchLabels")
    name = namespace.get("kubernetes.io/metadata.name")
    ns = name or ",".join(f"{k}={v}" for k, v in namespace.items())
    return ns, ",".join(f"{k}={v}" for k, v in pods.items()) if pods else None


def _egress(labels: dict[str, str]) -> set[tuple[str, str | None, int | None]]:
    allowed: set[tuple[str, str | None, int | None]] = set()
    for policy in _policies_for(labels, "Egress"):
        for rule in policy["spec"].get("egress", []):
            ports = {p["port"] for p in rule.get("ports", [])} or {None}
            for peer in rule["to"]:
                ns, pods = _peer(peer)
                allowed.update((ns, pods, port) for port in ports)
    return allowed


# --- network policies ------------------------------------------------------------------------


def test_a_default_deny_policy_covers_every_pod_both_ways():
    (deny,) = [p for p in _policies() if p["spec"]["podSelector"] == {}]
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    assert deny["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize(("workload", "template"), _workloads(), ids=lambda v: str(v)[:40])
def test_every_pod_is_selected_by_an_ingress_and_an_egress_policy(workload, template):
    labels = template["metadata"]["labels"]
    assert _policies_for(labels, "Ingress"), workload
    assert _policies_for(labels, "Egress"), workload


@pytest.mark.parametrize("workload", sorted(EXPECTED_EGRESS))
def test_each_workload_may_reach_exactly_what_it_needs(workload):
    template = dict(_workloads())[workload]
    assert _egress(template["metadata"]["labels"]) == EXPECTED_EGRESS[workload]


def test_every_workload_has_an_expected_egress_entry():
    assert {name for name, _ in _workloads()} == set(EXPECTED_EGRESS)


def test_dns_is_allowed_over_udp_and_tcp():
    (policy,) = [p for p in _policies() if p["metadata"]["name"].endswith("backing-stores")]
    dns_rule = next(r for r in policy["spec"]["egress"] if _peer(r["to"][0])[0] == "kube-system")
    assert {(p["protocol"], p["port"]) for p in dns_rule["ports"]} == {("UDP", 53), ("TCP", 53)}


def test_only_the_gateway_accepts_traffic_and_only_from_the_ingress_controller():
    for workload, template in _workloads():
        rules = [
            rule
            for policy in _policies_for(template["metadata"]["labels"], "Ingress")
            for rule in policy["spec"].get("ingress", [])
        ]
        if workload != "Deployment/api-gateway":
            assert rules == [], workload  # the health checker and the Job serve nothing
            continue
        (rule,) = rules
        (peer,) = rule["from"]
        assert _peer(peer) == ("ingress-nginx", "app.kubernetes.io/name=ingress-nginx")
        (port,) = rule["ports"]
        gateway = k8s_object("Deployment", "api-gateway")["spec"]["template"]["spec"]
        (container,) = gateway["containers"]
        assert port["port"] in {p["name"] for p in container["ports"]}


def test_no_rule_opens_everything():
    for policy in _policies():
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for rule in policy["spec"].get(direction, []):
                # An empty or missing peer list means "anywhere"; every peer names a namespace.
                assert rule.get(key), policy["metadata"]["name"]
                for peer in rule[key]:
                    assert "ipBlock" not in peer, policy["metadata"]["name"]
                    assert peer["namespaceSelector"].get("matchLabels"), policy["metadata"]["name"]


def test_every_placeholder_label_is_documented():
    for policy in _policies():
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for rule in policy["spec"].get(direction, []):
                for peer in rule[key]:
                    ns, pods = _peer(peer)
                    assert ns in DOCS, ns
                    if pods:
                        assert pods in DOCS, pods


# --- secrets as files -------------------------------------------------------------------------


def _secret_mounts(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, set[str]]:
    """Mount path -> the secret keys visible there, for `container`."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts: dict[str, set[str]] = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret:
            assert mount.get("readOnly") is True, mount
            assert secret["secretName"] == "api-gateway-secrets"
            assert secret["defaultMode"] & 0o007 == 0, "readable by every user of the node"
            mounts[mount["mountPath"]] = {item["path"] for item in secret["items"]}
    return mounts


@pytest.mark.parametrize(("workload", "template"), _workloads(), ids=lambda v: str(v)[:40])
def test_no_secret_reaches_a_container_as_an_environment_variable(workload, template):
    secret_keys = set(k8s_object("Secret", "api-gateway-secrets")["stringData"])
    for container in containers(template["spec"]):
        assert all("secretRef" not in source for source in container.get("envFrom", []))
        for item in container.get("env", []):
            assert "secretKeyRef" not in item.get("valueFrom", {}), (workload, item["name"])
        env = container_env(container)
        assert not secret_keys & set(env), (workload, container["name"])


@pytest.mark.parametrize(("workload", "template"), _workloads(), ids=lambda v: str(v)[:40])
def test_every_file_setting_names_a_mounted_secret_key_the_gateway_reads(workload, template):
    read = collect()
    for container in containers(template["spec"]):
        mounts = _secret_mounts(template["spec"], container)
        files = {k: v for k, v in container_env(container).items() if k.endswith("_FILE")}
        assert {"SECRET_KEY_FILE", "DATABASE_URL_FILE", "REDIS_URL_FILE"} <= set(files)
        for name, path in files.items():
            assert read.reads(name), f"{name} is not read through env_secret"
            directory, _, key = path.rpartition("/")
            assert key in mounts.get(directory, set()), (workload, name, path)
            assert key == name.removesuffix("_FILE")


def test_only_the_release_job_gets_the_admin_password():
    for workload, template in _workloads():
        for container in containers(template["spec"]):
            visible = set().union(*_secret_mounts(template["spec"], container).values())
            wanted = workload == "Job/api-gateway-migrate"
            assert ("GATEWAY_ADMIN_PASSWORD" in visible) is wanted, workload


def test_secret_files_are_read_by_the_settings(tmp_path):
    (tmp_path / "db").write_text("postgres://u:s3cret@db.example:5432/gw\n")
    (tmp_path / "redis").write_text("redis://:s3cret@redis.example:6379/0\n")
    (tmp_path / "key").write_text("file-secret-key\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="gateway_project.settings",
        DATABASE_URL_FILE=str(tmp_path / "db"),
        REDIS_URL_FILE=str(tmp_path / "redis"),
        SECRET_KEY_FILE=str(tmp_path / "key"),
        GATEWAY_VAR_DIR=str(tmp_path / "var"),
    )
    env.pop("SECRET_KEY", None)
    code = (
        "import django; from django.conf import settings; django.setup(); "
        "db = settings.DATABASES['default']; "
        "print(db['HOST'], db['PASSWORD'], settings.REDIS_URL, settings.SECRET_KEY)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [
        "db.example",
        "s3cret",
        "redis://:s3cret@redis.example:6379/0",
        "file-secret-key",
    ]


def test_a_redis_url_file_makes_gunicorn_run_one_worker_per_cpu_pair(tmp_path):
    # Without Redis the gateway runs one worker (exact in-process limits); REDIS_URL_FILE
    # must count as Redis, or a Kubernetes pod would serve with a single process.
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "GATEWAY_WORKERS")}
    env.update(REDIS_URL_FILE=str(tmp_path / "redis"), PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    code = "import runpy; print(runpy.run_path('gateway_project/gunicorn.conf.py')['workers'])"

    def workers(environment: dict[str, str]) -> int:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return int(result.stdout.split()[-1])

    without = {k: v for k, v in env.items() if k != "REDIS_URL_FILE"}
    assert workers(without) == 1
    assert workers(env) > 1  # CPUs + 1, at least 2


@pytest.mark.django_db
def test_the_admin_password_can_come_from_a_file(tmp_path, monkeypatch, django_user_model):
    (tmp_path / "pw").write_text("a file-borne passphrase 42\n")
    monkeypatch.delenv("GATEWAY_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("GATEWAY_ADMIN_PASSWORD_FILE", str(tmp_path / "pw"))
    monkeypatch.setenv("GATEWAY_ADMIN_USER", "file-admin")
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    assert "generated password" not in out.getvalue()
    assert django_user_model.objects.get(username="file-admin").check_password(
        "a file-borne passphrase 42"
    )


# --- probes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workload", "template"),
    [(name, template) for name, template in _workloads() if not name.startswith("Job/")],
    ids=lambda v: str(v)[:40],
)
def test_every_long_running_container_has_liveness_and_readiness_probes(workload, template):
    # A Job runs to completion and is not kept alive: every other workload is long-running.
    for container in template["spec"]["containers"]:
        assert container.get("livenessProbe"), (workload, container["name"])
        assert container.get("readinessProbe"), (workload, container["name"])
        assert container.get("startupProbe"), (workload, container["name"])


def test_the_health_checker_probe_reads_the_heartbeat_its_loop_writes():
    deployment = k8s_object("Deployment", "api-gateway-healthcheck")
    assert deployment["spec"]["replicas"] >= 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    heartbeat = command[command.index("--heartbeat") + 1]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        exec_command = container[probe]["exec"]["command"]
        assert exec_command[:3] == ["python", "-m", "gateway_project.heartbeat"]
        assert exec_command[3] == heartbeat
        # A pass probes with a timeout of seconds: a minute without one is a stuck loop.
        assert 30 <= float(exec_command[4]) <= 300
        assert container[probe]["timeoutSeconds"] >= 5  # the interpreter starts on a busy node
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert str(Path(heartbeat).parent) in writable


def test_the_heartbeat_probe_fails_when_stale_or_missing_and_passes_when_fresh(tmp_path):
    path = tmp_path / "alive"
    assert heartbeat_main(["heartbeat", str(path), "60"]) == 1  # missing
    beat(path)
    assert heartbeat_main(["heartbeat", str(path), "60"]) == 0
    stale = time.time() - 120
    os.utime(path, (stale, stale))
    assert not is_fresh(path, 60)
    assert heartbeat_main(["heartbeat", str(path), "60"]) == 1
    assert heartbeat_main(["heartbeat", str(path)]) == 2


@pytest.mark.django_db
def test_the_health_check_loop_beats_even_with_no_targets(tmp_path):
    # Runs the real command: it must touch the file on its own, with nothing to probe.
    path = tmp_path / "alive"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway_project.test_settings"}
    from tests.support.gateway_server import test_database_url

    env["DATABASE_URL"] = test_database_url()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "gateway", "healthcheck", "--heartbeat", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not path.exists():
            time.sleep(0.2)
        assert path.exists(), "no heartbeat within 60 s"
        first = path.stat().st_mtime_ns
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and path.stat().st_mtime_ns == first:
            time.sleep(0.2)
        assert path.stat().st_mtime_ns > first, "the heartbeat did not move"
    finally:
        process.terminate()
        process.wait(30)
