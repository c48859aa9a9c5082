"""Settings for the test suite: the base settings plus fast hashing and a fixed test key."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-only-key-not-used-anywhere-else")

from gateway_project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# A private Redis namespace per test run, so parallel runs and the dev server never mix.
if REDIS_URL:  # noqa: F405
    CACHES["default"]["KEY_PREFIX"] = f"gwtest{os.getpid()}"  # noqa: F405
# Steady state by default: tests that exercise polling lower it themselves.
GATEWAY_CONFIG_POLL_MS = 60_000
GATEWAY_RETRY_BACKOFF_MS = 1
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - WhiteNoise warns when missing

# SQLite: a file-backed test database, so e2e gunicorn subprocesses can share it.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
