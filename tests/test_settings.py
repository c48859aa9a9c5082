"""Settings come from the environment; a wrong value stops the start with its name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Load the production settings in a fresh interpreter with `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "SECRET_KEY"))}
    clean.update(DJANGO_SETTINGS_MODULE="gateway_project.settings", GATEWAY_VAR_DIR=str(tmp_path))
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "name, value",
    [
        ("GATEWAY_MAX_BODY_SIZE", "lots"),
        ("GATEWAY_CONFIG_POLL", "often"),
        ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("GATEWAY_UPSTREAM_POOL_SIZE", "zero"),
        ("DEBUG", "maybe"),
        ("LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "nosuchdb://x"),
    ],
)
def test_a_wrong_value_fails_the_start_naming_the_variable(tmp_path, name, value):
    result = _start(tmp_path, SECRET_KEY="k", **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


def test_secret_key_is_required_outside_debug(tmp_path):
    result = _start(tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_secret_key_can_come_from_a_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    result = _start(tmp_path, SECRET_KEY_FILE=str(secret))
    assert result.stdout.strip() == "started", result.stderr


def test_generated_secret_key_under_var_is_used(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "gateway_project.bootstrap"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SECRET_KEY")},
            "GATEWAY_VAR_DIR": str(tmp_path),
        },
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    result = _start(tmp_path)
    assert result.stdout.strip() == "started", result.stderr


# The chain a request meets, pinned: reordering it changes behaviour (see settings.py's notes).
EXPECTED_MIDDLEWARE = [
    "gateway_project.middleware.RequestIdMiddleware",
    "gateway_project.admin_plane.AdminNetworkMiddleware",
    "gateway_project.observability.ObservabilityMiddleware",
    "gateway_project.middleware.ConsoleSecurityMiddleware",
    "gateway_project.content_policy.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.mfa_middleware.MfaGateMiddleware",
    "audit.middleware.ChangeSetMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "routing.startup.WorkerStartupMiddleware",
]


def test_middleware_order_is_the_intended_one():
    from django.conf import settings

    assert settings.MIDDLEWARE == EXPECTED_MIDDLEWARE


def test_the_request_id_comes_first_and_observability_right_after_it_in_both_stacks():
    from django.conf import settings

    for chain in (settings.MIDDLEWARE, settings.GATEWAY_PROXY_MIDDLEWARE):
        assert chain[0] == "gateway_project.middleware.RequestIdMiddleware"
    assert (
        settings.GATEWAY_PROXY_MIDDLEWARE[1]
        == "gateway_project.observability.ObservabilityMiddleware"
    )
    # The lean stack is MIDDLEWARE's order, restricted, plus the host check.
    shared = [name for name in settings.MIDDLEWARE if name in settings.GATEWAY_PROXY_MIDDLEWARE]
    assert [
        *shared,
        "gateway_project.middleware.AllowedHostMiddleware",
    ] == settings.GATEWAY_PROXY_MIDDLEWARE


def test_the_second_factor_and_change_sets_see_the_authenticated_user():
    from django.conf import settings

    chain = settings.MIDDLEWARE
    auth = chain.index("django.contrib.auth.middleware.AuthenticationMiddleware")
    otp = chain.index("django_otp.middleware.OTPMiddleware")
    gate = chain.index("accounts.mfa_middleware.MfaGateMiddleware")
    stamp = chain.index("audit.middleware.ChangeSetMiddleware")
    assert auth < otp < gate < stamp


def test_apps_load_in_the_intended_order():
    from django.conf import settings

    apps = settings.INSTALLED_APPS
    assert len(apps) == len(set(apps))
    # accounts, quotas and routing register with audit in ready(): audit's own models first.
    assert apps.index("accounts") < apps.index("quotas") < apps.index("routing")
    assert apps.index("simple_history") < apps.index("audit")
    # management guards every app's model pages in ready(): after all of them and the admin.
    assert max(apps.index(app) for app in ("routing", "audit", "oauth2_provider")) < apps.index(
        "management"
    )


def test_settings_declare_each_list_once_and_import_only_at_the_top():
    """MIDDLEWARE and INSTALLED_APPS are one literal each; no import hides mid-file."""
    import ast

    tree = ast.parse((ROOT / "gateway_project" / "settings.py").read_text())
    assigned: dict[str, int] = {}
    seen_code = False
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            assert not seen_code, f"import on line {node.lineno} after the first setting"
            continue
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            seen_code = True
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name):
                assigned[target.id] = assigned.get(target.id, 0) + 1
    for name in (
        "MIDDLEWARE",
        "INSTALLED_APPS",
        "GATEWAY_PROXY_MIDDLEWARE",
        "LOGGING",
        "TEMPLATES",
    ):
        assert assigned.get(name) == 1, name
    # Nothing mutates a setting after the fact (.insert, .append, .update, item assignment).
    mutators = {"insert", "append", "extend", "update", "remove", "pop", "setdefault"}
    for part in ast.walk(tree):
        if isinstance(part, ast.Call) and isinstance(part.func, ast.Attribute):
            owner = part.func.value
            if part.func.attr in mutators and isinstance(owner, ast.Name) and owner.id.isupper():
                raise AssertionError(f"{owner.id}.{part.func.attr}() on line {part.lineno}")
        if isinstance(part, ast.Subscript) and isinstance(part.ctx, ast.Store):
            root: ast.expr = part.value
            while isinstance(root, ast.Subscript):
                root = root.value
            if isinstance(root, ast.Name) and root.id.isupper():
                raise AssertionError(f"{root.id}[...] assigned on line {part.lineno}")


@pytest.mark.parametrize(
    "name, value",
    [("GATEWAY_METRICS_ALLOWED_NETWORKS", "10.0.0.0/33"), ("GATEWAY_ADMIN_ALLOWED_NETWORKS", "x")],
)
def test_area_settings_refuse_a_bad_value_naming_the_variable(tmp_path, name, value):
    result = _start(tmp_path, SECRET_KEY="k", **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


def test_area_settings_read_the_same_variables_and_defaults(monkeypatch, tmp_path):
    from ipaddress import ip_network

    from gateway_project.area_settings import AdminPlaneSettings, MetricsSettings

    for name in ("GATEWAY_METRICS_TOKEN", "GATEWAY_METRICS_ALLOWED_NETWORKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GATEWAY_ADMIN_ALLOWED_NETWORKS", raising=False)
    assert MetricsSettings.from_env() == MetricsSettings(token=None, allowed_networks=())
    assert AdminPlaneSettings.from_env() == AdminPlaneSettings(allowed_networks=())
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("GATEWAY_METRICS_TOKEN_FILE", str(secret))
    monkeypatch.setenv("GATEWAY_METRICS_ALLOWED_NETWORKS", "10.0.0.0/8, 192.0.2.1")
    monkeypatch.setenv("GATEWAY_ADMIN_ALLOWED_NETWORKS", "::1")
    assert MetricsSettings.from_env() == MetricsSettings(
        token="from-a-file",
        allowed_networks=(ip_network("10.0.0.0/8"), ip_network("192.0.2.1/32")),
    )
    assert AdminPlaneSettings.from_env().allowed_networks == (ip_network("::1/128"),)
