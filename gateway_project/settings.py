"""Django settings, read from the environment (see the settings table in README.md)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from accounts.jwt_issuers import parse_external_issuers
from accounts.jwt_settings import jwt_settings_from_env
from gateway_project.area_settings import AdminPlaneSettings, MetricsSettings
from gateway_project.env import (
    env_bool,
    env_choice,
    env_duration_ms,
    env_int,
    env_list,
    env_networks,
    env_public_url,
    env_secret,
    env_size,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("GATEWAY_VAR_DIR") or BASE_DIR / "var")

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else the one `make run` generated under var/."""
    key = env_secret("SECRET_KEY")
    if key:
        return key
    generated = VAR_DIR / "secret_key"
    if generated.exists():
        return generated.read_text().strip()
    if DEBUG:
        return "insecure-debug-only-key"
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE), or run `make run`, "
        f"which generates one into {generated}."
    )


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# The whole list, once. App order matters: ready() runs in this order (accounts, quotas and
# routing register their models with audit there), and templates resolve first-found.
INSTALLED_APPS = [
    "management.console_site.GatewayAdminConfig",  # django.contrib.admin, gateway sidebar
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "quotas",
    "routing",
    # identity and access (accounts/, docs/identity.md)
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "oauth2_provider",
    "axes",
    # django-simple-history records every config change; audit stamps each row with its change set
    "simple_history",
    "audit",
    # the management API, console pages and docs portal: above every app they manage
    "management",
    # console MFA (accounts/mfa.py, docs/console.md)
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
]

# The whole chain, once, in the order a request meets it (tests/test_settings.py pins it).
MIDDLEWARE = [
    # First: every answer, even a refusal below, carries the request id.
    "gateway_project.middleware.RequestIdMiddleware",
    # GATEWAY_ADMIN_ALLOWED_NETWORKS (not installed when empty): refuse before any other work.
    "gateway_project.admin_plane.AdminNetworkMiddleware",
    # Right after the request id, as in GATEWAY_PROXY_MIDDLEWARE: times and logs all the rest.
    "gateway_project.observability.ObservabilityMiddleware",
    "gateway_project.middleware.ConsoleSecurityMiddleware",
    "gateway_project.content_policy.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # OTPMiddleware marks sessions that passed the code step; the gate lets others reach only
    # it. Both need the authenticated user.
    "django_otp.middleware.OTPMiddleware",
    "accounts.mfa_middleware.MfaGateMiddleware",
    # Stamps history rows with the change set of the (now known, second-factor-checked) user.
    "audit.middleware.ChangeSetMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Axes turns a locked-out login into a 429; it must see every response, so it comes last
    # of the request-handling middleware.
    "axes.middleware.AxesMiddleware",
    "routing.startup.WorkerStartupMiddleware",
]
# Proxied requests (gateway_project/dispatch.py's lean handler) skip sessions, CSRF, messages,
# static files and login throttling: only what every proxied answer needs, in MIDDLEWARE's order.
GATEWAY_PROXY_MIDDLEWARE = [
    "gateway_project.middleware.RequestIdMiddleware",
    "gateway_project.observability.ObservabilityMiddleware",
    "gateway_project.middleware.AllowedHostMiddleware",
]
# The lean handler's URLconf: the proxy view only.
GATEWAY_PROXY_URLCONF = "routing.proxy_urls"

ROOT_URLCONF = "gateway_project.urls"
WSGI_APPLICATION = "gateway_project.wsgi.application"
# The proxy answers every unknown path itself; Django must never redirect them.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "libraries": {"traffic_dashboard": "gateway_project.dashboard_tags"},
        },
    },
]

# Both may carry a password: DATABASE_URL_FILE / REDIS_URL_FILE read them from a mounted file.
DATABASE_URL = env_secret("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {
            "default": dj_database_url.parse(
                DATABASE_URL, conn_max_age=600, conn_health_checks=True
            )
        }
    except ValueError as error:
        raise ImproperlyConfigured(f"DATABASE_URL: {error}") from None
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "gateway.sqlite3"),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_secret("REDIS_URL")


def _sentinels() -> list[tuple[str, int]]:
    """REDIS_SENTINELS as (host, port) pairs; a malformed entry names the variable."""
    sentinels = []
    for entry in env_list("REDIS_SENTINELS", []):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(f"REDIS_SENTINELS: {entry!r} is not host:port.")
        sentinels.append((host.strip("[]"), int(port)))
    return sentinels


# Redis Sentinel: REDIS_URL names the monitored primary (redis://[:password@]mymaster/0) and
# REDIS_SENTINELS lists the sentinels (host:port,...); django-redis asks them where the primary
# is, so a failover needs no change here. REDIS_SENTINEL_PASSWORD is the sentinels' own password.
REDIS_SENTINELS = _sentinels()
if REDIS_SENTINELS and not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_SENTINELS is set but REDIS_URL is not; set REDIS_URL=redis://MASTER-NAME/0."
    )


def _redis_options() -> dict[str, Any]:
    """django-redis OPTIONS: short timeouts (a dead Redis must never hang a proxied request),
    and the sentinel client when REDIS_SENTINELS is set."""
    options: dict[str, Any] = {
        "SOCKET_CONNECT_TIMEOUT": env_duration_ms("REDIS_CONNECT_TIMEOUT", "250ms") / 1000,
        "SOCKET_TIMEOUT": env_duration_ms("REDIS_TIMEOUT", "250ms") / 1000,
    }
    if not REDIS_SENTINELS:
        return options
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": options["SOCKET_CONNECT_TIMEOUT"],
        "socket_timeout": options["SOCKET_TIMEOUT"],
    }
    sentinel_password = env_secret("REDIS_SENTINEL_PASSWORD")
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    return {
        **options,
        "CLIENT_CLASS": "django_redis.client.SentinelClient",
        "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
        "SENTINELS": REDIS_SENTINELS,
        "SENTINEL_KWARGS": sentinel_kwargs,
    }


if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": _redis_options(),
            "KEY_PREFIX": env_str("REDIS_KEY_PREFIX", "gw") or "gw",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# django-redis's default, set: it reads this with getattr() after every request, and an unset
# setting costs a raised and caught AttributeError each time (gateway_project/request_end.py).
DJANGO_REDIS_CLOSE_CONNECTION = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Cookies are Secure outside DEBUG; GATEWAY_SECURE_COOKIES=false only for plain-HTTP labs.
_SECURE_COOKIES = env_bool("GATEWAY_SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = _SECURE_COOKIES
CSRF_COOKIE_SECURE = _SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "gateway_project.errors.problem_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "gateway_project.errors.FirstRendererNegotiation",
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

LOG_LEVEL = (env_str("LOG_LEVEL", "INFO") or "INFO").upper()
if LOG_LEVEL not in logging.getLevelNamesMapping():
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a log level; use INFO, DEBUG...")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "access": {"format": "%(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        # Access log lines (JSON, stdout) follow LOG_LEVEL; TRACE_REQUESTS adds redacted headers.
        "access": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "access",
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "WARNING" if LOG_LEVEL == "INFO" else LOG_LEVEL},
        # Every proxied 4xx would be a warning line here; the access log records them instead.
        "django.request": {"level": "ERROR"},
        "gateway.access": {"handlers": ["access"], "level": LOG_LEVEL, "propagate": False},
    },
}

# --- The gateway's own settings -------------------------------------------------------------
GATEWAY_CONFIG_POLL_MS = env_duration_ms("GATEWAY_CONFIG_POLL", "1s")
GATEWAY_MAX_BODY_SIZE = env_size("GATEWAY_MAX_BODY_SIZE", "10MiB")
GATEWAY_TRUSTED_PROXIES = env_networks("GATEWAY_TRUSTED_PROXIES", [])
GATEWAY_CONNECT_TIMEOUT_MS = env_duration_ms("GATEWAY_CONNECT_TIMEOUT", "5s")
GATEWAY_DEFAULT_TIMEOUT_MS = env_duration_ms("GATEWAY_DEFAULT_TIMEOUT", "30s")
GATEWAY_UPSTREAM_POOL_SIZE = env_int("GATEWAY_UPSTREAM_POOL_SIZE", 32, minimum=1)
GATEWAY_RETRY_BACKOFF_MS = env_duration_ms("GATEWAY_RETRY_BACKOFF", "50ms")
AUTH_USER_MODEL = "accounts.User"

# --- limits and quotas (docs/limits.md) ------------------------------------------------------
# What a request gets when the limit store (Redis) fails: open = passes, closed = 503.
GATEWAY_LIMITS_ON_REDIS_FAILURE = env_choice(
    "GATEWAY_LIMITS_ON_REDIS_FAILURE", "open", ("open", "closed")
)
# At most one warning log line per interval while the store keeps failing.
GATEWAY_LIMITS_WARN_INTERVAL_MS = env_duration_ms("GATEWAY_LIMITS_WARN_INTERVAL", "60s")
# Count requests per consumer, route and UTC day for the usage history.
GATEWAY_USAGE_TRACKING = env_bool("GATEWAY_USAGE_TRACKING", True)
# How often each serving process moves pending usage counts into the database (0: never;
# then run `manage.py flush_usage` from a scheduler).
GATEWAY_USAGE_FLUSH_INTERVAL_MS = env_duration_ms("GATEWAY_USAGE_FLUSH_INTERVAL", "60s")

# --- observability ---
TRACE_REQUESTS = env_bool("TRACE_REQUESTS", False)
# /metrics: open unless a token and/or address list is set (each one set must then pass).
GATEWAY_METRICS = MetricsSettings.from_env()
# How often each worker flushes its dashboard aggregates (to Redis, or in-process without).
GATEWAY_TRAFFIC_FLUSH_MS = env_duration_ms("GATEWAY_TRAFFIC_FLUSH", "5s")
# OpenTelemetry export happens only when an endpoint is set; the SDK is never imported otherwise.
OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT") or None
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or None
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "api-gateway") or "api-gateway"

# --- identity and access (accounts/, routing/authorization.py; see docs/identity.md) ---------
AUTHENTICATION_BACKENDS = [
    "accounts.backends.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "/o/login/"  # where /o/authorize/ sends people who are not logged in

_jwt = jwt_settings_from_env(secret_key=SECRET_KEY)
JWT_ALGORITHM = _jwt.algorithm
JWT_SIGNING_KEY = _jwt.signing_key  # HMAC secret, or None for RS/ES/PS/EdDSA
JWT_PRIVATE_KEY = _jwt.private_key
JWT_PUBLIC_KEY = _jwt.public_key
JWT_JWKS_URL = env_str("JWT_JWKS_URL") or None
JWT_JWKS_ALGORITHMS = _jwt.jwks_algorithms
JWT_JWKS_CACHE_TTL_MS = env_duration_ms("JWT_JWKS_CACHE_TTL", "10m")
JWT_JWKS_MIN_REFETCH_MS = env_duration_ms("JWT_JWKS_MIN_REFETCH", "30s")
JWT_JWKS_TIMEOUT_MS = env_duration_ms("JWT_JWKS_TIMEOUT", "3s")
JWT_ISSUER = env_str("JWT_ISSUER") or None
JWT_AUDIENCE = env_str("JWT_AUDIENCE") or None
JWT_LEEWAY_MS = env_duration_ms("JWT_LEEWAY", "10s")
JWT_ACCESS_TOKEN_LIFETIME_MS = env_duration_ms("JWT_ACCESS_TOKEN_LIFETIME", "5m")
JWT_REFRESH_TOKEN_LIFETIME_MS = env_duration_ms("JWT_REFRESH_TOKEN_LIFETIME", "24h")
JWT_ROLES_CLAIM = env_str("JWT_ROLES_CLAIM", "roles") or "roles"
JWT_PERMISSIONS_CLAIM = env_str("JWT_PERMISSIONS_CLAIM", "permissions") or "permissions"
JWT_CACHE_SIZE = env_int("JWT_CACHE_SIZE", 10_000)
# The gateway's URL as clients reach it: the `servers` of service documents and SDKs.
GATEWAY_PUBLIC_URL = env_public_url("GATEWAY_PUBLIC_URL")
# The gateway's own tokens vs external issuers (accounts/jwt_issuers.py, docs/identity.md).
GATEWAY_JWT_ISSUER = env_str("GATEWAY_JWT_ISSUER") or None
GATEWAY_JWT_AUDIENCE = env_str("GATEWAY_JWT_AUDIENCE") or None
GATEWAY_JWT_EXTERNAL_ISSUERS = parse_external_issuers(
    env_secret("GATEWAY_JWT_EXTERNAL_ISSUERS"),
    default_algorithms=JWT_JWKS_ALGORITHMS,
    gateway_iss=GATEWAY_JWT_ISSUER,
)
GATEWAY_CREDENTIAL_CACHE_TTL_MS = env_duration_ms("GATEWAY_CREDENTIAL_CACHE_TTL", "30s")

SIMPLE_JWT = {
    "ALGORITHM": JWT_ALGORITHM,
    "SIGNING_KEY": JWT_SIGNING_KEY or JWT_PRIVATE_KEY or "",
    "VERIFYING_KEY": JWT_PUBLIC_KEY or "",
    "AUDIENCE": JWT_AUDIENCE,
    "ISSUER": JWT_ISSUER,
    "LEEWAY": JWT_LEEWAY_MS / 1000,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
}

OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER = {
    "SCOPES_BACKEND_CLASS": "accounts.oauth_scopes.PermissionScopes",
    "ACCESS_TOKEN_EXPIRE_SECONDS": env_duration_ms("OAUTH_ACCESS_TOKEN_LIFETIME", "1h") // 1000,
    "REFRESH_TOKEN_EXPIRE_SECONDS": env_duration_ms("OAUTH_REFRESH_TOKEN_LIFETIME", "720h") // 1000,
    "ROTATE_REFRESH_TOKEN": True,
    "PKCE_REQUIRED": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": env_list("OAUTH_REDIRECT_URI_SCHEMES", ["https"]),
    "ALLOWED_SCHEMES": env_list("OAUTH_REDIRECT_URI_SCHEMES", ["https"]),
    # django-oauth-toolkit's RFC 9700 (OAuth 2.0 Security BCP) behaviour, ahead of its 4.0
    # default: no implicit or password grant, PKCE S256 only, tokens never in the query string,
    # `iss` in authorization responses, tokens stored hashed, a replayed refresh token revokes
    # its family.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
}

# Login throttling (django-axes), keyed by account and client address together.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(milliseconds=env_duration_ms("LOGIN_COOLOFF", "15m"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.login_throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "accounts.login_throttle.client_address"
AXES_VERBOSE = False

# --- resilience and service discovery (see docs/resilience.md) ---
# How often each process re-reads the shared health/ejection/lease/breaker state from Redis.
GATEWAY_STATE_POLL_MS = env_duration_ms("GATEWAY_STATE_POLL", "500ms")
GATEWAY_BREAKER_HALF_OPEN_PROBES = env_int("GATEWAY_BREAKER_HALF_OPEN_PROBES", 1, minimum=1)
# Passive health: this many consecutive failures eject a target for the ejection time (0: off).
GATEWAY_OUTLIER_CONSECUTIVE_FAILURES = env_int("GATEWAY_OUTLIER_CONSECUTIVE_FAILURES", 5)
GATEWAY_OUTLIER_EJECTION_MS = env_duration_ms("GATEWAY_OUTLIER_EJECTION", "30s")
GATEWAY_HEALTHCHECK_TIMEOUT_MS = env_duration_ms("GATEWAY_HEALTHCHECK_TIMEOUT", "2s")
GATEWAY_HEALTHCHECK_CONCURRENCY = env_int("GATEWAY_HEALTHCHECK_CONCURRENCY", 8, minimum=1)
GATEWAY_HEALTHCHECK_UNHEALTHY_AFTER = env_int("GATEWAY_HEALTHCHECK_UNHEALTHY_AFTER", 2, minimum=1)
GATEWAY_HEALTHCHECK_HEALTHY_AFTER = env_int("GATEWAY_HEALTHCHECK_HEALTHY_AFTER", 1, minimum=1)
# Without Redis the checks must run inside the (single) gunicorn worker to be seen by it.
GATEWAY_HEALTHCHECK_IN_PROCESS = env_bool("GATEWAY_HEALTHCHECK_IN_PROCESS", not REDIS_URL)
GATEWAY_REGISTRATION_TOKEN = env_secret("GATEWAY_REGISTRATION_TOKEN")
GATEWAY_REGISTRATION_TTL_MS = env_duration_ms("GATEWAY_REGISTRATION_TTL", "30s")
GATEWAY_DNS_REFRESH_MS = env_duration_ms("GATEWAY_DNS_REFRESH", "30s")

# --- deployment ---
# --- management API and docs portal ---
# The management API's authentication, in order; token classes join this one list.
# The credential class comes first: its Bearer challenge makes an anonymous call a 401.
GATEWAY_API_AUTHENTICATION_CLASSES = [
    "accounts.authentication.CredentialAuthentication",
    "rest_framework.authentication.SessionAuthentication",
]
# The largest management API body (bytes or with a unit); larger is 413, before parsing.
GATEWAY_MAX_API_BODY_SIZE = env_size("GATEWAY_MAX_API_BODY_SIZE", "5MiB")
# OAuth 2.0 client ids allowed to call /o/introspect/ (and to be granted the `introspection`
# scope); empty: no client introspects.
GATEWAY_OAUTH_INTROSPECTION_CLIENTS = env_list("GATEWAY_OAUTH_INTROSPECTION_CLIENTS", [])
GATEWAY_DOCS_FETCH_TIMEOUT_MS = env_duration_ms("GATEWAY_DOCS_FETCH_TIMEOUT", "5s")
GATEWAY_DOCS_MAX_SIZE = env_size("GATEWAY_DOCS_MAX_SIZE", "5MiB")
# Config documents (command, console upload, API import): larger ones are refused unparsed.
GATEWAY_MAX_CONFIG_SIZE = env_size("GATEWAY_MAX_CONFIG_SIZE", "5MiB")
# The console's import preview carries the document over to "apply" in a form field, which
# Django bounds by this; a document up to the limit must fit (management/console_upload.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2_621_440, GATEWAY_MAX_CONFIG_SIZE + 64 * 1024)
GATEWAY_DOCS_CACHE_TTL_MS = env_duration_ms("GATEWAY_DOCS_CACHE_TTL", "5m")
SPECTACULAR_SETTINGS = {
    # Operation ids and tags relative to /api/ (e.g. gateway_routes_list), whatever else is served.
    "SCHEMA_PATH_PREFIX": r"/api/",
    "TITLE": "Django Gateway API",
    "DESCRIPTION": "Manage the gateway's services, routes, roles, permissions, users and quotas; "
    "import and export its config; explain how a request would be handled. Every change is "
    "versioned and reaches every gateway node within GATEWAY_CONFIG_POLL. Errors are "
    "application/problem+json (RFC 9457). The services' own APIs, as clients reach them "
    "through the gateway, are in the definition selector at the top of /api/docs.",
    "VERSION": "1.0.0",
    # The gateway as clients reach it, for `make sdk` and Swagger's "Try it out".
    "SERVERS": [{"url": GATEWAY_PUBLIC_URL}] if GATEWAY_PUBLIC_URL else [],
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["management.api.schema.exclude_proxy"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "management.api.schema.add_security_schemes",
        "management.api.schema.shown_once_not_required",
    ],
    "ENUM_NAME_OVERRIDES": {
        "HttpMethodEnum": "routing.configfile.validate.HTTP_METHODS",
        "AuthenticationModeEnum": "routing.configfile.validate.AUTHENTICATION_MODES",
    },
    "TAGS": [
        {"name": "services", "description": "Upstream services and their targets."},
        {"name": "routes", "description": "Path patterns leading to services, with policies."},
        {"name": "roles", "description": "Named groups of permissions."},
        {"name": "permissions", "description": "Capabilities roles grant and routes require."},
        {"name": "users", "description": "People who call or administer the gateway."},
        {"name": "quotas", "description": "Daily and monthly allowances."},
        {"name": "config", "description": "The whole config as the YAML file."},
        {"name": "explain", "description": "Dry runs of the proxy's checks."},
        {"name": "developer portal", "description": "The services' own documents."},
    ],
}

# --- console MFA (django-otp; accounts/mfa.py, docs/console.md) ---
# true: superusers without a confirmed device are sent to enrolment after the password.
GATEWAY_ADMIN_REQUIRE_MFA = env_bool("GATEWAY_ADMIN_REQUIRE_MFA", False)
OTP_TOTP_ISSUER = "Gateway console"

# --- security (SECURITY.md, docs/security.md) ---
# Upstream addresses refused at validation and at connect time (routing/upstream_guard.py).
GATEWAY_UPSTREAM_BLOCKED_NETWORKS = env_networks(
    "GATEWAY_UPSTREAM_BLOCKED_NETWORKS",
    ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32"],
)
GATEWAY_UPSTREAM_ALLOWED_NETWORKS = env_networks("GATEWAY_UPSTREAM_ALLOWED_NETWORKS", [])
# This gateway's own addresses: a service URL naming one is refused (it would loop). gunicorn
# reads the same variable (gunicorn.conf.py). The Via name marks forwarded requests so a request
# that comes back is answered 508 (routing/loops.py): GATEWAY_NODE_NAME, else a pseudonym
# derived from SECRET_KEY (the same on every node of a deployment, reveals no host name).
GATEWAY_BIND = env_str("GATEWAY_BIND", "127.0.0.1:8000") or "127.0.0.1:8000"
GATEWAY_NODE_NAME = env_str("GATEWAY_NODE_NAME", "") or ""
# Source addresses that may reach the console, the management API and the API docs
# (gateway_project/admin_plane.py); empty = any address (credentials still required).
GATEWAY_ADMIN_PLANE = AdminPlaneSettings.from_env()
# HSTS on the gateway's own pages (never on proxied answers): on by default outside DEBUG,
# like the Secure cookies; GATEWAY_HSTS_SECONDS=0 for plain-HTTP labs (browsers ignore HSTS
# over http anyway, but a lab reached once over https would be pinned to it).
SECURE_HSTS_SECONDS = env_int("GATEWAY_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("GATEWAY_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = False
# The gateway terminates plain HTTP itself or sits behind a TLS proxy that redirects; a
# redirect here would also redirect proxied API calls.
SECURE_SSL_REDIRECT = env_bool("GATEWAY_SSL_REDIRECT", False)
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SILENCED_SYSTEM_CHECKS = [
    # security.W001: the headers come from ConsoleSecurityMiddleware, a SecurityMiddleware
    # subclass that leaves proxied answers alone; Django's check only knows the class by name.
    # tests/security/test_admin_plane.py checks the headers on the wire instead.
    "security.W001",
    # security.W008: SECURE_SSL_REDIRECT stays off - it would redirect proxied API traffic;
    # TLS is terminated (and http redirected) in front of the gateway. See SECURITY.md.
    "security.W008",
    # security.W021: HSTS preload is a one-way commitment for a whole domain: the operator's.
    "security.W021",
]
